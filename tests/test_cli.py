"""The user-facing commands on a tiny model trained once for the module, on real photos."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from cycledeblur.cli import main
from cycledeblur.training import train

from .conftest import TINY_NETWORKS, TINY_TRAINING, photo


@pytest.fixture(scope="module")
def trained_run(unpaired, tmp_path_factory):
    from cycledeblur.config import load_config

    from .conftest import ROOT, TINY_OVERRIDES

    run = tmp_path_factory.mktemp("cli") / "run"
    config = load_config(
        ROOT / "configs" / "default.yaml",
        [f"data.blur={unpaired / 'blur'}", f"data.sharp={unpaired / 'sharp'}", f"output_dir={run}", *TINY_OVERRIDES, "train.max_steps=3"],
    )
    train(config)
    return run


def test_synth_command_writes_unpaired_and_paired_sets(photo_folder, tmp_path, capsys):
    assert main(["synth", "--sharp", str(photo_folder), "--out", str(tmp_path / "u"), "--kind", "motion"]) == 0
    blurred = {p.name for p in (tmp_path / "u" / "blur").iterdir()}
    sharp = {p.name for p in (tmp_path / "u" / "sharp").iterdir()}
    assert blurred and sharp and not blurred & sharp
    assert main(["synth", "--sharp", str(photo_folder), "--out", str(tmp_path / "p"), "--paired", "--noise", "0.01"]) == 0
    assert sorted(p.name for p in (tmp_path / "p" / "blur").iterdir()) == sorted(p.name for p in photo_folder.iterdir())
    assert main(["synth", "--sharp", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


def test_evaluate_writes_the_documented_json_and_csv(trained_run, paired, tmp_path, capsys):
    out, table = tmp_path / "scores.json", tmp_path / "scores.csv"
    code = main(
        [
            "evaluate",
            "--model",
            str(trained_run),
            "--blur",
            str(paired / "blur"),
            "--sharp",
            str(paired / "sharp"),
            "--json",
            str(out),
            "--csv",
            str(table),
        ]
    )
    assert code == 0
    scores = json.loads(out.read_text())
    assert scores["n_images"] == 6 and scores["kind"] == "paired"
    for side in ("input", "output"):
        assert 10 < scores[side]["psnr"] < 60 and 0 < scores[side]["ssim"] <= 1
    assert "lpips" in scores["unavailable"]  # no backbone weights offline: reported, not faked
    printed = capsys.readouterr().out
    assert "PSNR" in printed and "lpips: unavailable" in printed
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 6 and {"name", "input_psnr", "output_ssim"} <= set(rows[0])
    per_image_psnr = [float(row["input_psnr"]) for row in rows]
    assert sum(per_image_psnr) / 6 == pytest.approx(scores["input"]["psnr"])


def test_evaluate_without_sharp_reports_sharpness(trained_run, paired, tmp_path, capsys):
    out = tmp_path / "sharpness.json"
    assert main(["evaluate", "--model", str(trained_run), "--blur", str(paired / "blur"), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["kind"] == "no-reference" and scores["n_images"] == 6
    assert set(scores["input"]) == {"laplacian_var", "gradient_energy"}
    assert "Laplacian variance" in capsys.readouterr().out


def test_sharpness_scores_rank_sharp_above_blurred(paired):
    from cycledeblur.data import load_image_tensor
    from cycledeblur.evaluation import sharpness_scores

    for path in sorted((paired / "sharp").iterdir()):
        sharp = sharpness_scores(load_image_tensor(path, 3))
        blurred = sharpness_scores(load_image_tensor(paired / "blur" / path.name, 3))
        assert sharp["laplacian_var"] > blurred["laplacian_var"], path.name
        assert sharp["gradient_energy"] > blurred["gradient_energy"], path.name


def test_deblur_keeps_size_channels_and_bit_depth(trained_run, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(photo("coffee", 90)[:77]).save(inputs / "odd_size.png")  # 90x77: not a multiple of 4
    Image.fromarray(photo("camera", 64).astype(np.uint16) * 257).save(inputs / "gray16.png")
    Image.fromarray(photo("chelsea", 64)).save(inputs / "cat.jpg")
    from PIL import ImageCms

    from cycledeblur.image_files import read_metadata, read_pixels, write_pixels

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo("astronaut", 64)).save(inputs / "profiled.png", icc_profile=srgb)

    write_pixels(photo("rocket", 64).astype(np.uint16) * 257, inputs / "rgb16.png")
    write_pixels(photo("rocket", 64).astype(np.uint16) * 257, inputs / "rgb16.tif")
    assert main(["deblur", "--model", str(trained_run / "generator"), str(inputs), "--out", str(tmp_path / "out")]) == 0
    odd = Image.open(tmp_path / "out" / "odd_size.png")
    assert odd.size == (90, 77) and odd.mode == "RGB"
    gray = Image.open(tmp_path / "out" / "gray16.png")
    assert gray.mode.startswith("I") and np.asarray(gray).max() > 255  # still 16-bit, still one channel
    assert Image.open(tmp_path / "out" / "cat.jpg").format == "JPEG"
    for name in ("rgb16.png", "rgb16.tif"):
        pixels = read_pixels(tmp_path / "out" / name)
        assert pixels.dtype == np.uint16 and pixels.shape == (64, 64, 3), name
        assert (pixels % 257).any(), name  # values between the 8-bit levels: really 16-bit, not upcast 8-bit
    assert read_metadata(tmp_path / "out" / "profiled.png").icc_profile == srgb
    assert read_metadata(tmp_path / "out" / "odd_size.png").icc_profile is None


def test_model_folder_errors_are_user_errors(tmp_path, paired, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["evaluate", "--model", str(tmp_path / "empty"), "--blur", str(paired / "blur"), "--sharp", str(paired / "sharp")])
    assert code == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_deblur_tiles_an_image_larger_than_the_tile(trained_run, tmp_path):
    Image.fromarray(photo("rocket", 200)[:150]).save(tmp_path / "scene.png")  # 200 x 150, tiles of 64
    whole, tiled = tmp_path / "whole", tmp_path / "tiled"
    assert main(["deblur", "--model", str(trained_run), str(tmp_path / "scene.png"), "--out", str(whole)]) == 0
    assert (
        main(
            [
                "deblur",
                "--model",
                str(trained_run),
                str(tmp_path / "scene.png"),
                "--out",
                str(tiled),
                "--tile",
                "64",
                "--tile-overlap",
                "16",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    a = np.asarray(Image.open(whole / "scene.png"), dtype=np.float32)
    b = np.asarray(Image.open(tiled / "scene.png"), dtype=np.float32)
    assert a.shape == b.shape == (150, 200, 3)
    assert np.abs(a - b).max() <= 8  # of 255: instance norm sees per-tile statistics, the blend hides seams


def test_train_command_runs_the_shipped_paired_config(paired, tmp_path, capsys):
    """`cycledeblur train --config configs/paired.yaml` (U-Net, conditional PatchGAN), shrunk, on real pairs; and a
    stray file in the pair folders ends in one line naming it."""
    run = tmp_path / "paired-run"
    arguments = [
        "train",
        "--config",
        "configs/paired.yaml",
        f"data.blur={paired / 'blur'}",
        f"data.sharp={paired / 'sharp'}",
        f"output_dir={run}",
        *TINY_NETWORKS["paired.yaml"],
        *TINY_TRAINING,
        "train.max_steps=2",
        "train.pretrain_steps=1",
    ]
    assert main(arguments) == 0
    assert json.loads((run / "generator" / "config.json").read_text())["n_downsampling"] == 3
    (paired / "blur" / "stray.png").write_bytes((paired / "blur" / "coffee.png").read_bytes())
    try:
        assert main(arguments) == 2
    finally:
        (paired / "blur" / "stray.png").unlink()
    error = capsys.readouterr().err
    assert "'stray'" in error and "data.blur" in error
