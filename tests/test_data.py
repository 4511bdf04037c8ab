import numpy as np
import pytest
import torch
from PIL import Image

from cycledeblur.config import DataConfig
from cycledeblur.data import CropDataset, EpochSampler, load_image_source, load_image_tensor
from cycledeblur.errors import UserError

from .conftest import photo


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


def test_crops_are_a_pure_function_of_seed_epoch_index(odd_images):
    dataset = CropDataset(load_image_source(str(odd_images)), DataConfig(crop_size=32, color_jitter=0.2), seed=0)
    torch.manual_seed(123)  # the global RNG must not matter
    a, skipped = dataset[(0, 1)]
    torch.manual_seed(999)
    assert torch.equal(dataset[(0, 1)][0], a)
    assert not torch.equal(dataset[(1, 1)][0], a)
    assert skipped == 0
    assert a.shape == (3, 32, 32) and a.min() >= -1 and a.max() <= 1


@pytest.mark.parametrize("policy", ["upscale", "pad"])
def test_images_smaller_than_the_crop_are_handled(odd_images, policy):
    dataset = CropDataset(load_image_source(str(odd_images)), DataConfig(crop_size=48, small_images=policy), seed=0)
    tiny = next(i for i in range(len(dataset)) if dataset.images[i]["image"]["path"].endswith("tiny.png"))
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
