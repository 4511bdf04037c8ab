import numpy as np
import pytest
import torch
from PIL import Image

from torch.utils.data import DataLoader

from cycledeblur.config import DataConfig, SyntheticBlurConfig
from cycledeblur.data import CropDataset, EpochSampler, SyntheticPairDataset, load_image_source, load_image_tensor
from cycledeblur.data.crops import mirrored_window
from cycledeblur.errors import UserError
from cycledeblur.synth import blur_image, motion_kernel
from cycledeblur.synth.random_blur import Degradation

from .conftest import only, photo


@pytest.fixture
def odd_images(tmp_path):
    """One real photo stored in the modes users bring: gray, RGBA, palette, 16-bit gray, CMYK JPEG, tiny."""
    rgb = photo("coffee", 80)
    gray = photo("camera", 80)
    folder = tmp_path / "odd"
    folder.mkdir()
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(gray).save(folder / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "gray16.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(photo("chelsea", 20)).save(folder / "tiny.png")
    return folder


def test_every_mode_becomes_the_model_channel_count(odd_images):
    for name in ("rgb.png", "gray.png", "rgba.png", "palette.png", "gray16.png", "cmyk.jpg"):
        image = load_image_tensor(odd_images / name, channels=3)
        assert image.shape == (3, 80, 80), name
        assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1, name
    gray = load_image_tensor(odd_images / "rgb.png", channels=1)
    assert gray.shape == (1, 80, 80)


def test_sixteen_bit_values_are_scaled_exactly(odd_images):
    eight = load_image_tensor(odd_images / "gray.png", channels=1)
    sixteen = load_image_tensor(odd_images / "gray16.png", channels=1)
    # x * 257 / 65535 == x / 255: the 16-bit copy of an 8-bit image decodes to the same values.
    assert torch.allclose(eight, sixteen, atol=1e-6)
    rgba = load_image_tensor(odd_images / "rgba.png", channels=3)
    assert torch.allclose(rgba, load_image_tensor(odd_images / "rgb.png", channels=3))


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.fromarray(photo("astronaut", 64)[:, :40])  # 40 wide, 64 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image_tensor(tmp_path / "rotated.jpg", channels=3).shape == (3, 40, 64)


def test_corrupt_and_missing_images_name_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(UserError, match="broken.png"):
        load_image_tensor(tmp_path / "broken.png", channels=3)
    with pytest.raises(UserError, match="nothere.png"):
        load_image_tensor(tmp_path / "nothere.png", channels=3)


def test_folder_source_is_an_hf_dataset(unpaired):
    dataset = load_image_source(str(unpaired / "blur"), key="data.blur")
    assert len(dataset) == 3
    assert dataset.column_names == ["image"]
    assert dataset[0]["image"]["path"].endswith(".png")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: str(p / "missing"), "no such folder"),
        (lambda p: (p / "empty").mkdir() or str(p / "empty"), "contains no images"),
        (lambda p: (p / "f.png").write_bytes(b"x") and str(p / "f.png"), "is a file"),
        (lambda p: "", "data.blur is not set"),
    ],
)
def test_source_errors(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        load_image_source(make(tmp_path), key="data.blur")


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(UserError, match="could not be loaded from the Hub"):
        load_image_source("someone/some-blur-dataset", key="data.blur")


def test_epoch_sampler_replays_and_reshuffles():
    sampler = EpochSampler(10, seed=3)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(10))
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for _, i in second] != [i for _, i in first]
    assert all(epoch == 1 for epoch, _ in second)


def test_fewer_images_than_a_batch_are_listed_again_each_time_under_another_epoch():
    """Two images, a batch of 6: each pass lists them 3 times, under epochs of their own (other crops), and passes
    follow one another without sharing an epoch; with one repeat the epochs are those of the single permutation."""
    sampler = EpochSampler(2, seed=3, repeats=3)
    first = list(sampler)
    assert len(sampler) == len(first) == 6 and sorted(first) == [(epoch, i) for epoch in range(3) for i in range(2)]
    sampler.set_epoch(1)
    assert {epoch for epoch, _ in sampler} == {3, 4, 5}
    single = EpochSampler(2, seed=3)
    single.set_epoch(4)
    sampler.set_epoch(1)
    assert list(single) == list(sampler)[2:4]  # epoch 4 is the same permutation either way


def test_crops_are_a_pure_function_of_seed_epoch_index(odd_images):
    dataset = CropDataset(load_image_source(str(odd_images)), DataConfig(crop_size=32, color_jitter=0.2), seed=0)
    torch.manual_seed(123)  # the global RNG must not matter
    a, skipped = dataset[(0, 1)]
    torch.manual_seed(999)
    assert torch.equal(dataset[(0, 1)][0], a)
    assert not torch.equal(dataset[(1, 1)][0], a)
    assert skipped == 0
    assert a.shape == (3, 32, 32) and a.min() >= -1 and a.max() <= 1


def test_training_reads_each_image_file_once_and_not_its_metadata(odd_images, monkeypatch):
    import cycledeblur.image_arrays
    import cycledeblur.image_files

    reads = []
    read_bytes = cycledeblur.image_files.Path.read_bytes
    monkeypatch.setattr(cycledeblur.image_files.Path, "read_bytes", lambda path: reads.append(path.name) or read_bytes(path))
    monkeypatch.setattr(cycledeblur.image_arrays, "read_metadata", lambda path: pytest.fail(f"read {path}'s metadata"))
    dataset = CropDataset(load_image_source(str(odd_images)), DataConfig(crop_size=32), seed=0)
    for index in range(len(dataset)):
        dataset[(0, index)]
    assert sorted(reads) == sorted(path.name for path in odd_images.iterdir())


def test_decoded_images_held_in_memory_give_the_same_crops_without_reading_files(photo_folder, monkeypatch):
    import cycledeblur.image_files

    source = load_image_source(str(photo_folder))
    keys = [(0, index) for index in range(len(source))] + [(5, 1), (5, 1)]  # the last twice: use leaves it as it was
    expected = [CropDataset(source, DataConfig(crop_size=48, cache_images="none"), seed=3)[key][0] for key in keys]
    cached = CropDataset(source, DataConfig(crop_size=48, cache_images="all"), seed=3)
    monkeypatch.setattr(cycledeblur.image_files.Path, "read_bytes", lambda path: pytest.fail(f"read {path} again"))
    for key, crop in zip(keys, expected):
        assert torch.equal(cached[key][0], crop)


def test_the_cache_stops_at_its_budget_and_the_rest_is_read_from_files(photo_folder):
    from cycledeblur.data.decoded import ImageReader

    reader = ImageReader(load_image_source(str(photo_folder)))
    first = reader.pixels(0)[0].nbytes
    assert reader.cache(first + 1, threads=2) == 1  # the second image would exceed it
    uncached = ImageReader(load_image_source(str(photo_folder)))
    for index in range(len(reader)):
        assert np.array_equal(reader.pixels(index)[0], uncached.pixels(index)[0])
        assert reader.name(index) == uncached.name(index)


@pytest.mark.parametrize("policy", ["upscale", "pad"])
def test_images_smaller_than_the_crop_are_handled(odd_images, policy):
    dataset = CropDataset(load_image_source(str(odd_images)), DataConfig(crop_size=48, small_images=policy), seed=0)
    tiny = next(i for i in range(len(dataset)) if dataset.reader.name(i).endswith("tiny.png"))
    assert dataset[(0, tiny)][0].shape == (3, 48, 48)


def test_small_image_error_policy_names_the_file(odd_images):
    dataset = CropDataset(load_image_source(str(odd_images)), DataConfig(crop_size=48, small_images="error"), seed=0)
    with pytest.raises(UserError, match=r"tiny.png is 20x20, smaller than data.crop_size=48"):
        for index in range(len(dataset)):
            dataset[(0, index)]


def test_flat_crops_are_redrawn(tmp_path):
    """A photo with a black border (like a fundus image or a CT slice): crops must not come out flat."""
    image = np.zeros((96, 96, 3), np.uint8)
    image[:, 64:] = photo("astronaut", 96)[:, 64:]  # two thirds exactly black
    Image.fromarray(image).save(tmp_path / "border.png")
    source = load_image_source(str(tmp_path))
    redrawn = CropDataset(source, DataConfig(crop_size=32), seed=0)
    kept = CropDataset(source, DataConfig(crop_size=32, flat_crop_std=0.0), seed=0)
    flat = lambda crop: bool(crop.flatten(1).std(dim=1).min() == 0)  # noqa: E731
    assert any(flat(kept[(epoch, 0)][0]) for epoch in range(40))
    assert not any(flat(redrawn[(epoch, 0)][0]) for epoch in range(40))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_color_round_trips_exactly(tmp_path, suffix):
    """Pillow alone would read 16-bit color as 8-bit: the stored precision must survive read and write."""
    from cycledeblur.data import read_image, save_image_tensor

    pixels = photo("astronaut", 48).astype(np.uint16) * 257 + np.arange(48, dtype=np.uint16)[None, :, None]
    from cycledeblur.image_files import read_pixels, write_pixels

    write_pixels(pixels, tmp_path / f"in{suffix}")
    assert np.array_equal(read_pixels(tmp_path / f"in{suffix}"), pixels)
    image, image_format = read_image(tmp_path / f"in{suffix}", channels=3)
    assert (image_format.bit_depth, image_format.channels) == (16, 3)
    save_image_tensor(image, tmp_path / f"out{suffix}", image_format)
    assert np.array_equal(read_pixels(tmp_path / f"out{suffix}"), pixels)


def test_float_tiff_and_corrupt_tiff(tmp_path):
    import tifffile

    from cycledeblur.data import read_image

    gray = photo("camera", 40).astype(np.float32) / 255
    tifffile.imwrite(tmp_path / "float.tif", gray)
    image, image_format = read_image(tmp_path / "float.tif", channels=1)
    assert image_format.bit_depth == 32 and torch.allclose(image[0], torch.from_numpy(gray))
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    with pytest.raises(UserError, match="broken.tif"):
        read_image(tmp_path / "broken.tif", channels=1)


def synthetic_pairs(folder, blur: SyntheticBlurConfig | None = None, **data) -> SyntheticPairDataset:
    """32 px pairs blurred in the loader from the photos of `folder` (the default random blur unless `blur`)."""
    config = DataConfig(crop_size=32, synthetic_blur=blur or SyntheticBlurConfig(), **data)
    return SyntheticPairDataset(load_image_source(str(folder)), config, seed=0)


def gradient_energy(image: torch.Tensor) -> float:
    return float(image.diff(dim=-1).square().mean() + image.diff(dim=-2).square().mean())


def test_synthetic_pairs_are_a_pure_function_of_seed_epoch_index(photo_folder):
    pairs = synthetic_pairs(photo_folder)
    torch.manual_seed(1)  # the global generators must not matter
    np.random.seed(1)
    (blurred, sharp), skipped = pairs[(0, 1)]
    assert blurred.shape == sharp.shape == (3, 32, 32) and skipped == 0
    assert -1 <= blurred.min() and blurred.max() <= 1 and not torch.equal(blurred, sharp)
    torch.manual_seed(2)
    np.random.seed(2)
    for same in (pairs[(0, 1)][0], synthetic_pairs(photo_folder)[(0, 1)][0]):
        assert torch.equal(same[0], blurred) and torch.equal(same[1], sharp)
    for other in (pairs[(0, 2)][0], pairs[(1, 1)][0]):
        assert not torch.equal(other[0], blurred)


def test_synthetic_pairs_are_the_same_whatever_the_number_of_loader_workers(photo_folder):
    pairs = synthetic_pairs(photo_folder)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(pairs, batch_size=2, sampler=EpochSampler(len(pairs), seed=0), num_workers=workers)
        batches[workers] = [torch.cat(crops) for crops, _ in loader]
    assert len(batches[0]) == 3 and all(torch.equal(a, b) for a, b in zip(batches[0], batches[2]))


def test_identity_kind_returns_the_sharp_crop_up_to_rounding_and_noise(photo_folder):
    (blurred, sharp), _ = synthetic_pairs(photo_folder, only("identity"))[(0, 0)]
    assert (blurred - sharp).abs().max() <= 1 / 255  # half an 8-bit step, on the [-1, 1] scale
    (noisy, sharp), _ = synthetic_pairs(photo_folder, only("identity", noise_sigma=(0.02, 0.02)))[(0, 0)]
    assert ((noisy - sharp) / 2).std().item() == pytest.approx(0.02, rel=0.2)


@pytest.mark.parametrize("channels", [3, 1])
def test_a_strong_kernel_blurs_the_crop(photo_folder, channels):
    pairs = synthetic_pairs(photo_folder, only("defocus", defocus_radius=(4.0, 5.0)), channels=channels)
    for index in range(len(pairs)):
        (blurred, sharp), _ = pairs[(0, index)]
        assert blurred.shape == sharp.shape == (channels, 32, 32)
        assert gradient_energy(blurred) < 0.5 * gradient_energy(sharp), index


def test_the_blurred_crop_is_cut_from_the_blurred_photo_not_blurred_alone(photo_folder, monkeypatch):
    """The crop is blurred inside a margin of the photo around it, so its border holds what lay beyond the crop,
    not a reflection of the crop's own pixels."""
    kernel = motion_kernel(np.random.default_rng(3), length_range=(12.0, 12.0))  # lopsided: a reflection shows
    margin = kernel.shape[0] // 2
    monkeypatch.setattr("cycledeblur.data.crops.sample_degradation", lambda rng, config: Degradation("motion", kernel, 0.0, None))
    pairs = synthetic_pairs(photo_folder, hflip=False)
    to_array = lambda crop: ((crop + 1) / 2).permute(1, 2, 0).numpy()  # noqa: E731
    for index in range(3):
        (blurred, sharp), _ = pairs[(0, index)]
        image = pairs.load(index).permute(1, 2, 0).numpy()
        windows = np.lib.stride_tricks.sliding_window_view(image, (32, 32, 3))[:, :, 0]
        ((top, left),) = np.argwhere(np.abs(windows - to_array(sharp)).max(axis=(2, 3, 4)) < 1e-6)
        # The photo's own borders are mirrored, like any blur's; only the crop's must not be.
        whole = blur_image(np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="symmetric"), kernel)
        expected = whole[margin + top : margin + top + 32, margin + left : margin + left + 32]
        assert np.abs(to_array(blurred) - expected).max() <= 0.51 / 255  # 8-bit rounding
        assert np.abs(to_array(blurred) - blur_image(to_array(sharp), kernel)).max() > 0.05  # the crop alone


def test_quarter_turns_and_gray_crops_leave_the_blur_on_top(photo_folder, monkeypatch):
    """Turned and gray crops are still crops of the photo (turned, in luma), and their blurred side is the blur of
    that reoriented window, so the pair stays a pair."""
    kernel = motion_kernel(np.random.default_rng(3), length_range=(9.0, 9.0))
    monkeypatch.setattr("cycledeblur.data.crops.sample_degradation", lambda rng, config: Degradation("motion", kernel, 0.0, None))
    turned = synthetic_pairs(photo_folder, hflip=False, quarter_turns=True, grayscale=1.0)
    seen_turns = set()
    for index in range(len(turned)):
        (blurred, sharp), _ = turned[(0, index)]
        assert torch.equal(sharp[0], sharp[1]) and torch.equal(sharp[1], sharp[2])  # gray: luma in every channel
        image = turned.load(index)
        luma = (torch.tensor([0.2989, 0.587, 0.114]).view(3, 1, 1) * image).sum(0)
        gray = ((sharp[0] + 1) / 2).numpy()
        found = []
        for turns in range(4):
            windows = np.lib.stride_tricks.sliding_window_view(np.rot90(luma.numpy(), turns), (32, 32))
            if np.abs(windows - gray).max(axis=(2, 3)).min() < 1e-5:
                found.append(turns)
        assert found, index
        seen_turns.update(found)
        assert gradient_energy(blurred) < gradient_energy(sharp)
    assert len(seen_turns) > 1


def test_quarter_turns_and_gray_crops_in_the_crop_loader(odd_images):
    crops = CropDataset(load_image_source(str(odd_images)), DataConfig(crop_size=32, quarter_turns=True, grayscale=1.0), seed=0)
    crop, _ = crops[(0, 0)]
    assert crop.shape == (3, 32, 32) and torch.equal(crop[0], crop[1]) and torch.equal(crop, crops[(0, 0)][0])


def test_mirrored_window_is_a_window_of_the_symmetric_padding():
    rng = np.random.default_rng(0)
    for _ in range(300):
        height, width = rng.integers(1, 30, 2)
        margin = int(rng.integers(0, 3 * max(height, width)))  # also wider than the photo: reflections repeat
        pixels = rng.random((height, width, 2))
        padded = np.pad(pixels, ((margin, margin), (margin, margin), (0, 0)), mode="symmetric")
        rows, cols = int(rng.integers(1, height + 2 * margin + 1)), int(rng.integers(1, width + 2 * margin + 1))
        top, left = int(rng.integers(0, height + 2 * margin - rows + 1)), int(rng.integers(0, width + 2 * margin - cols + 1))
        window = mirrored_window(pixels, top - margin, left - margin, rows, cols)
        assert np.array_equal(window, padded[top : top + rows, left : left + cols])


def test_auto_workers_leave_a_cpu_to_the_step_and_feed_a_gpu(monkeypatch):
    from cycledeblur.data.workers import GPU_MAX_WORKERS, loader_workers

    assert loader_workers(3, "cpu", images_cached=True) == (3, "set in the config")
    assert loader_workers("auto", "cpu", images_cached=True)[0] == 0
    assert loader_workers("auto", "cpu", images_cached=False)[0] == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert loader_workers("auto", "cuda", images_cached=True)[0] == GPU_MAX_WORKERS
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # 4 GPUs share the 16 cores
    assert loader_workers("auto", "cuda", images_cached=True)[0] == 3


def test_a_run_saves_the_worker_count_auto_chose_and_why(tiny_config, capsys):
    from cycledeblur.training import train

    run = train(tiny_config("train.max_steps=1", "data.num_workers=auto")).parent
    assert "num_workers: 0" in (run / "config.yaml").read_text()
    assert "data-loader workers: 0 (auto: on the CPU" in capsys.readouterr().out
