"""Bad input, one clear line each: corrupt, truncated, empty, foreign and oversized files, pixel types the model
cannot take, bad model folders. Training skips an unreadable file (or stops on it with `data.strict`), `deblur` and
`evaluate` report it and go on, and outputs stay inside `--out`. Ends with a fuzz test: a few hundred mutated image
files through the training data pipeline and `deblur`."""

import io
import itertools
import json
import logging
import shutil
import warnings

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from torch.utils.data import DataLoader

from cycledeblur.cli import main
from cycledeblur.config import DataConfig, load_config
from cycledeblur.data import CropDataset, EpochSampler, load_image_source, read_image
from cycledeblur.errors import ConfigError, ImageFileError, UserError
from cycledeblur.image_files import PIXEL_LIMIT_VARIABLE, apply_pixel_limit_from_environment, write_pixels
from cycledeblur.models import ResnetGenerator
from cycledeblur.training import train
from cycledeblur.training.tracking import read_metrics

from .conftest import photo


def encoded(pixels: np.ndarray, suffix: str) -> bytes:
    """`pixels` as the bytes of a PNG or JPEG file (Pillow) or an RGB TIFF file (tifffile)."""
    buffer = io.BytesIO()
    if suffix == ".tif":
        tifffile.imwrite(buffer, pixels, photometric="rgb")
    else:
        Image.fromarray(pixels).save(buffer, format={".png": "PNG", ".jpg": "JPEG"}[suffix])
    return buffer.getvalue()


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    """A tiny untrained generator folder (config.json + model.safetensors), as `train` delivers one."""
    folder = tmp_path_factory.mktemp("model") / "generator"
    torch.manual_seed(0)
    ResnetGenerator(base_channels=4, n_blocks=1).save_pretrained(folder)
    return folder


def write_bad_files(folder) -> dict[str, str]:
    """Files that cannot be used, by name, each with what its error message says."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = photo("coffee", 32)
    files = {
        "empty.png": (b"", "the file is empty"),
        "text.jpg": (b"Dear diary, today I saved a note with the wrong extension.\n", "not an image file"),
        "truncated.jpg": (encoded(rgb, ".jpg")[:400], "truncated"),
        "truncated.png": (encoded(rgb, ".png")[:300], "truncated"),
        "truncated.tif": (encoded(rgb.astype(np.uint16) * 257, ".tif")[:300], "truncated.tif"),
        "wrong_header.png": (b"\x89PNG\r\n\x1a\n" + encoded(rgb, ".jpg"), "wrong_header.png"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    # Decodable, but not as an image the model can take.
    tifffile.imwrite(folder / "int32.tif", rgb.astype(np.int32), photometric="rgb")
    nan = rgb[:, :, 0].astype(np.float32) / 255
    nan[3, 4] = np.nan
    tifffile.imwrite(folder / "nan.tif", nan)
    tifffile.imwrite(folder / "stack.tif", np.zeros((20, 32, 32), np.uint8))
    write_pixels(np.zeros((32, 32, 5), np.uint8), folder / "five_bands.tif")
    write_pixels(rgb.astype(np.uint16) * 257, folder / "rgb16.png")  # a 16-bit RGB PNG (pypng's path) cut short
    (folder / "truncated16.png").write_bytes((folder / "rgb16.png").read_bytes()[:200])
    (folder / "rgb16.png").unlink()
    return {name: message for name, (_, message) in files.items()} | {
        "int32.tif": "pixel type int32 is not supported",
        "nan.tif": "NaN or infinite",
        "stack.tif": "20 values per pixel",
        "five_bands.tif": "has 5 channels",
        "truncated16.png": "truncated16.png",
    }


def test_every_bad_file_is_one_line_naming_it(tmp_path):
    for name, message in write_bad_files(tmp_path).items():
        with pytest.raises(ImageFileError) as error:
            read_image(tmp_path / name, channels=3)
        text = str(error.value)
        assert name in text and message in text, text
        assert "\n" not in text and " at 0x" not in text, text  # no object reprs from the decoders


def test_modes_beyond_the_usual_are_read(tmp_path):
    """1-bit TIFF (fax, scanned documents) and 16-bit gray+alpha PNG (alpha dropped, gray repeated): converted too."""
    tifffile.imwrite(tmp_path / "bilevel.tif", photo("camera", 32) > 128)
    image, image_format = read_image(tmp_path / "bilevel.tif", channels=3)
    assert image.shape == (3, 32, 32) and set(image.unique().tolist()) == {0.0, 1.0}
    assert image_format.bit_depth == 8
    gray_alpha = np.dstack([photo("camera", 32), np.full((32, 32), 255, np.uint8)]).astype(np.uint16) * 257
    write_pixels(gray_alpha, tmp_path / "la16.png")
    image, image_format = read_image(tmp_path / "la16.png", channels=3)
    assert image.shape == (3, 32, 32) and (image_format.bit_depth, image_format.channels) == (16, 2)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".16.png"])
@pytest.mark.parametrize("side", [40, 64])  # 1.6x the limit, where Pillow only warns, and 4x, where it refuses
def test_images_over_the_pixel_limit_are_refused(tmp_path, monkeypatch, suffix, side):
    pixels = photo("rocket", side)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 32 * 32)
    path = tmp_path / f"scene{suffix}"
    write_pixels(pixels.astype(np.uint16) * 257 if suffix in (".tif", ".16.png") else pixels, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a refusal, not a warning
        with pytest.raises(ImageFileError, match=rf"scene{suffix}: .*{PIXEL_LIMIT_VARIABLE}"):
            read_image(path, channels=3)


def test_the_pixel_limit_can_be_raised_for_trusted_scenes(tmp_path, monkeypatch):
    Image.fromarray(photo("rocket", 40)).save(tmp_path / "scene.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 32 * 32)
    monkeypatch.setenv(PIXEL_LIMIT_VARIABLE, "2000")
    apply_pixel_limit_from_environment()
    assert read_image(tmp_path / "scene.png", channels=3)[0].shape == (3, 40, 40)
    monkeypatch.setenv(PIXEL_LIMIT_VARIABLE, "0")
    apply_pixel_limit_from_environment()
    assert Image.MAX_IMAGE_PIXELS is None
    monkeypatch.setenv(PIXEL_LIMIT_VARIABLE, "lots")
    with pytest.raises(UserError, match=f"{PIXEL_LIMIT_VARIABLE}='lots' must be a number of pixels"):
        apply_pixel_limit_from_environment()


# Training: skip (and count) what cannot be read, or stop on it with data.strict.


@pytest.fixture
def blur_with_corrupt_file(unpaired, tmp_path):
    """The unpaired blurred photos plus one truncated PNG."""
    folder = tmp_path / "blur"
    shutil.copytree(unpaired / "blur", folder)
    (folder / "corrupt.png").write_bytes(next(folder.iterdir()).read_bytes()[:200])
    return folder


def test_an_unreadable_training_image_is_replaced_by_the_next(blur_with_corrupt_file, caplog):
    source = load_image_source(str(blur_with_corrupt_file))
    paths = [record["path"] for record in source["image"]]
    bad = next(index for index, path in enumerate(paths) if path.endswith("corrupt.png"))
    dataset = CropDataset(source, DataConfig(crop_size=32), seed=0)
    with caplog.at_level(logging.WARNING):
        crop, skipped = dataset[(0, bad)]
        dataset[(1, bad)]
    assert skipped == 1 and torch.equal(crop, dataset.crops(0, bad, dataset.load((bad + 1) % len(dataset)))[0])
    warning = f"skipping an unusable training image (data.strict=false): cannot read image {paths[bad]}: image file"
    assert [record.getMessage() for record in caplog.records] == [f"{warning} is truncated"]  # once, naming it
    # A pure function of (seed, epoch, index): a fresh copy (another process, a resumed run) gives the same item.
    assert torch.equal(dataset[(3, bad)][0], CropDataset(source, DataConfig(crop_size=32), seed=0)[(3, bad)][0])
    assert [dataset[(0, index)][1] for index in range(len(dataset)) if index != bad] == [0] * (len(dataset) - 1)
    strict = CropDataset(source, DataConfig(crop_size=32, strict=True), seed=0)
    with pytest.raises(ImageFileError, match="corrupt.png"):
        strict[(0, bad)]


def test_a_folder_of_unreadable_images_is_an_error(tmp_path):
    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    dataset = CropDataset(load_image_source(str(tmp_path)), DataConfig(crop_size=32), seed=0)
    with pytest.raises(UserError, match=r"none of the 2 images could be read, e.g. cannot read image .*b.jpg"):
        dataset[(0, 1)]


def test_training_counts_skipped_files_and_strict_stops(tiny_config, blur_with_corrupt_file):
    config = tiny_config(f"data.blur={blur_with_corrupt_file}", "train.max_steps=2")  # 4 images, batch 2: one epoch
    train(config)
    counts = [entry["data/skipped_files"] for entry in read_metrics(config.output_dir)]
    assert counts[-1] == 1, counts
    strict = tiny_config(f"data.blur={blur_with_corrupt_file}", "train.max_steps=2", "data.strict=true", run="strict")
    with pytest.raises(ImageFileError, match=r"corrupt.png: image file is truncated"):
        train(strict)


def test_strict_stops_in_one_line_from_a_loader_worker_too(blur_with_corrupt_file, capsys):
    """torch re-raises a worker's exception with the worker's traceback in its message: the CLI prints one line."""
    from cycledeblur.cli import print_error

    dataset = CropDataset(load_image_source(str(blur_with_corrupt_file)), DataConfig(crop_size=32, strict=True), seed=0)
    with pytest.raises(ImageFileError) as error:
        list(DataLoader(dataset, batch_size=4, sampler=EpochSampler(len(dataset), seed=0), num_workers=1))
    assert "Traceback" in str(error.value)
    capsys.readouterr()
    print_error(error.value)
    printed = capsys.readouterr().err
    assert printed.startswith("error: cannot read image ") and "corrupt.png: image file is truncated" in printed
    assert len(printed.strip().splitlines()) == 1, printed


def test_data_strict_is_a_typed_key():
    assert load_config(None, ["data.strict=true"]).data.strict is True
    with pytest.raises(ConfigError, match="data.strict has the wrong type: expected bool, got 'maybe'"):
        load_config(None, ["data.strict=maybe"])


# deblur and evaluate: a bad file is reported, the others are processed, the exit code tells.


@pytest.fixture
def photos_with_bad_ones(tmp_path):
    folder = tmp_path / "in"
    write_bad_files(folder / "bad")
    for name in ("coffee", "chelsea"):
        Image.fromarray(photo(name, 32)).save(folder / f"{name}.png")
    return folder


def test_deblur_reports_bad_files_and_deblurs_the_rest(generator_dir, photos_with_bad_ones, tmp_path, capsys):
    out = tmp_path / "out"
    bad = sorted(path.name for path in (photos_with_bad_ones / "bad").iterdir())
    assert main(["deblur", "--model", str(generator_dir), str(photos_with_bad_ones), "--out", str(out)]) == 3
    assert sorted(path.name for path in out.rglob("*") if path.is_file()) == ["chelsea.png", "coffee.png"]
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == len(bad) and all(name in line for name, line in zip(bad, errors)), errors
    assert f"2 of {len(bad) + 2} images deblurred into {out}, {len(bad)} failed" in captured.out
    assert "Traceback" not in captured.err


def test_deblur_keeps_existing_outputs_unless_overwrite(generator_dir, tmp_path, capsys):
    Image.fromarray(photo("coffee", 32)).save(tmp_path / "coffee.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "coffee.png").write_bytes(b"an earlier result")
    arguments = ["deblur", "--model", str(generator_dir), str(tmp_path / "coffee.png"), "--out", str(out)]
    assert main(arguments) == 0
    assert (out / "coffee.png").read_bytes() == b"an earlier result"
    captured = capsys.readouterr()
    assert f"{out / 'coffee.png'} exists (--overwrite replaces it)" in captured.err
    assert "0 of 1 images deblurred" in captured.out and "1 skipped" in captured.out
    assert main([*arguments, "--overwrite"]) == 0
    assert read_image(out / "coffee.png", channels=3)[0].shape == (3, 32, 32)
    assert [path.name for path in out.iterdir()] == ["coffee.png"]  # no temporary file left behind


def test_deblur_outputs_cannot_escape_the_output_folder(generator_dir, tmp_path, capsys):
    inputs, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    for folder in (inputs / "sub", out, elsewhere):
        folder.mkdir(parents=True)
    for name in ("sub/a.png", "b.png", "c.png"):
        Image.fromarray(photo("coffee", 32)).save(inputs / name)
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)  # out/sub/a.png would land in elsewhere/
    (out / "b.png").symlink_to(elsewhere / "b.png")  # a dangling link: writing through it would create elsewhere/b.png
    assert main(["deblur", "--model", str(generator_dir), str(inputs), "--out", str(out), "--overwrite"]) == 3
    assert list(elsewhere.iterdir()) == []
    assert (out / "c.png").is_file()
    errors = capsys.readouterr().err
    assert f"{out / 'sub' / 'a.png'} would be written outside --out" in errors
    assert f"{out / 'b.png'} would be written outside --out" in errors


@pytest.mark.parametrize(
    ("make_inputs", "message"),
    [
        (lambda folder: [folder / "missing.png"], "input not found: "),
        (lambda folder: [(folder / "empty").mkdir() or folder / "empty"], "contains no images"),
        (lambda folder: [folder / "a", folder / "b"], "would both be written to"),
    ],
)
def test_deblur_argument_errors_stop_before_any_work(generator_dir, tmp_path, capsys, make_inputs, message):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(photo("coffee", 32)).save(tmp_path / name / "x.png")
    out = tmp_path / "out"
    assert main(["deblur", "--model", str(generator_dir), *map(str, make_inputs(tmp_path)), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_reports_bad_files_and_scores_the_rest(generator_dir, paired, tmp_path, capsys):
    blur = tmp_path / "blur"
    shutil.copytree(paired / "blur", blur)
    (blur / "coffee.png").write_bytes(b"")
    scores = tmp_path / "scores.json"
    arguments = ["evaluate", "--model", str(generator_dir), "--blur", str(blur), "--sharp", str(paired / "sharp")]
    assert main([*arguments, "--json", str(scores)]) == 3
    report = json.loads(scores.read_text())
    assert (report["n_images"], report["n_failed"]) == (5, 1)
    assert report["failed"] == {"coffee": f"cannot read image {blur / 'coffee.png'}: the file is empty"}
    captured = capsys.readouterr()
    assert "coffee.png: the file is empty" in captured.err and "1 image could not be scored" in captured.out
    assert main(["evaluate", "--model", str(generator_dir), "--blur", str(blur)]) == 3  # no reference: the same
    for path in blur.iterdir():
        path.write_bytes(b"")
    assert main(arguments) == 2
    assert f"none of the 6 images in --blur {blur} could be scored" in capsys.readouterr().err


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "generator" / "model.safetensors").unlink(), "generator has no model.safetensors"),
        (lambda folder: (folder / "generator" / "config.json").unlink(), "generator has no config.json"),
        (lambda folder: shutil.rmtree(folder / "generator") or (folder / "checkpoints").mkdir(), "has not finished"),
        (lambda folder: (folder / "generator" / "model.safetensors").write_bytes(b"\x00" * 9), "truncated or corrupt"),
        (lambda folder: truncate(folder / "generator" / "model.safetensors"), "truncated or corrupt"),
        (lambda folder: edit_config(folder / "generator", base_channels="x"), "config.json does not describe a valid"),
        (lambda folder: (folder / "generator" / "config.json").write_text("{"), "config.json is not valid JSON"),
        (shutil.rmtree, "(config.json): neither a folder nor a valid Hub repo id"),
    ],
)
def test_a_model_folder_missing_its_weights_or_config_is_one_line(generator_dir, tmp_path, capsys, damage, message):
    run = tmp_path / "run"
    shutil.copytree(generator_dir, run / "generator")
    damage(run)
    Image.fromarray(photo("coffee", 32)).save(tmp_path / "coffee.png")
    assert main(["deblur", "--model", str(run), str(tmp_path / "coffee.png"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1, error


# Fuzz: mutated files must come out as an image or as one ImageFileError, never as a crash.


def mutations(data: bytes, rng: np.random.Generator) -> list[bytes]:
    """58 damaged copies of an image file: bit flips (in the header, where sizes and offsets live, and anywhere),
    truncations, foreign signatures, overwritten runs of bytes, junk behind a valid signature, nothing at all."""
    size = len(data)
    copies = []
    for flips, region, _ in itertools.product((1, 2, 4, 8, 32), (min(size, 64), size), range(3)):
        damaged = bytearray(data)
        for position in rng.integers(0, region * 8, flips):
            damaged[position // 8] ^= 1 << (position % 8)
        copies.append(bytes(damaged))
    copies += [data[: int(cut)] for cut in rng.integers(1, size, 10)]
    for signature in (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"BM", b"RIFF"):
        copies.append(signature + data[len(signature) :])
    for _ in range(8):
        damaged = bytearray(data)
        start = int(rng.integers(0, size))
        run = damaged[start : start + int(rng.integers(1, 64))]
        damaged[start : start + len(run)] = rng.integers(0, 256, len(run), dtype=np.uint8).tobytes()
        copies.append(bytes(damaged))
    copies += [data[:16] + rng.integers(0, 256, size, dtype=np.uint8).tobytes(), b""]
    return copies


@pytest.fixture(scope="module")
def fuzzed_folder(tmp_path_factory):
    """A few hundred damaged files, made from real photos stored as PNG, JPEG, 16-bit PNG and 16-bit TIFF."""
    rng = np.random.default_rng(2026)
    folder = tmp_path_factory.mktemp("fuzzed")
    pixels = photo("astronaut", 32)
    sources = {
        ".png": encoded(pixels, ".png"),
        ".jpg": encoded(pixels, ".jpg"),
        ".tif": encoded(pixels.astype(np.uint16) * 257, ".tif"),
    }
    buffer = folder / "source16.png"
    write_pixels(pixels.astype(np.uint16) * 257, buffer)
    sources[".16.png"] = buffer.read_bytes()
    buffer.unlink()
    count = 0
    for suffix, data in sources.items():
        for copy in mutations(data, rng):
            (folder / f"{count:03d}{suffix}").write_bytes(copy)
            count += 1
    return folder


def test_fuzzed_files_are_read_or_refused_in_one_line(fuzzed_folder, tmp_path, monkeypatch, generator_dir, capsys):
    # A flipped size field can claim a huge image; the limit keeps what gets decoded (and deblurred) small.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 256 * 256)
    files = sorted(fuzzed_folder.iterdir())
    assert len(files) >= 200
    refused = []
    for path in files:
        try:
            image, _ = read_image(path, channels=3)
        except ImageFileError as error:
            assert path.name in str(error) and "\n" not in str(error), str(error)
            refused.append(path.name)
            continue
        assert image.dtype == torch.float32 and image.shape[0] == 3 and torch.isfinite(image).all(), path.name
    assert 0 < len(refused) < len(files)

    # The training data pipeline: every item is a crop of some readable file, and says how many it skipped.
    dataset = CropDataset(load_image_source(str(fuzzed_folder)), DataConfig(crop_size=32), seed=0)
    skipped = [dataset[(0, index)][1] for index in range(len(dataset))]
    assert sum(skipped) >= len(refused)

    out = tmp_path / "out"
    code = main(["deblur", "--model", str(generator_dir), str(fuzzed_folder), "--out", str(out)])
    assert code == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    reported = [name for name in refused if name in captured.err]
    assert reported == refused
    assert sorted(path.name for path in out.iterdir()) == sorted(set(path.name for path in files) - set(refused))
