"""cycledeblur.synth on real photographs (scikit-image's bundled CC0 samples)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import tifffile
from PIL import Image, ImageCms

from cycledeblur.config import SyntheticBlurConfig
from cycledeblur.errors import UserError
from cycledeblur.image_files import read_pixels, write_pixels
from cycledeblur.synth import (
    KINDS,
    add_noise,
    blur_image,
    defocus_kernel,
    degrade,
    gaussian_kernel,
    jpeg_roundtrip,
    motion_kernel,
    random_kernel,
    synthesize_folder,
)
from cycledeblur.synth.random_blur import full_convolution, sample_degradation

from .conftest import only


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downscale a photo so tests stay fast (PIL size order: width, height)."""
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


ASTRONAUT = shrink(skimage.data.astronaut(), (256, 256))
CAMERA = shrink(skimage.data.camera(), (192, 192))
CAMERA_16 = CAMERA.astype(np.uint16) * 257
COFFEE = shrink(skimage.data.coffee(), (240, 160))
CHELSEA = shrink(skimage.data.chelsea(), (225, 150))
# The low byte varies along each row, so these are not 8-bit levels scaled up.
ASTRONAUT_16 = ASTRONAUT.astype(np.uint16) * 256 + np.arange(256, dtype=np.uint16)[None, :, None]
# A hard-edged disk of opacity: blurring the alpha channel shows as partly transparent pixels.
DISK_ALPHA = np.where(np.hypot(*(np.indices((192, 192)) - 96)) < 60, 255, 0).astype(np.uint8)
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def laplacian_variance(image: np.ndarray) -> float:
    """A sharpness score: blur removes the high frequencies the Laplacian responds to."""
    gray = image.astype(np.float64)
    if gray.ndim == 3:
        gray = gray.mean(axis=2)
    laplacian = gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4 * gray[1:-1, 1:-1]
    return float(laplacian.var())


def psnr(reference: np.ndarray, test: np.ndarray, peak: float) -> float:
    error = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return float(10 * np.log10(peak**2 / error))


def off_axis_spread(kernel: np.ndarray) -> float:
    """How far (px) the kernel's support strays from its best-fitting straight line."""
    rows, cols = np.nonzero(kernel > 0.05 * kernel.max())
    points = np.stack([cols, rows], axis=1).astype(np.float64)
    points -= points.mean(axis=0)
    _, _, axes = np.linalg.svd(points, full_matrices=False)
    return float(np.abs(points @ axes[1]).max())


def read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """8-bit RGB, 8-bit gray, 16-bit gray PNGs, a JPEG, and one image in a subfolder."""
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    Image.fromarray(ASTRONAUT).save(folder / "astronaut.png")
    Image.fromarray(CAMERA).save(folder / "camera.png")
    Image.fromarray(CAMERA_16).save(folder / "camera16.png")
    Image.fromarray(COFFEE).save(folder / "coffee.JPG", quality=95)
    Image.fromarray(CHELSEA).save(folder / "cats" / "chelsea.png")
    return folder


ALL_NAMES = {"astronaut.png", "camera.png", "camera16.png", "coffee.png", "cats/chelsea.png"}


def relative_files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


# Kernels


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(8))
def test_kernels_are_odd_square_nonnegative_and_sum_to_one(kind, seed):
    kernel = random_kernel(np.random.default_rng(seed), kind)
    assert kernel.dtype == np.float64 and kernel.ndim == 2
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert kernel.min() >= 0
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("make", [motion_kernel, gaussian_kernel, defocus_kernel])
def test_kernels_take_the_size_asked_for(make):
    kernel = make(np.random.default_rng(0), size=15)
    assert kernel.shape == (15, 15)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(UserError, match="odd"):
        make(np.random.default_rng(0), size=14)


def test_motion_path_too_long_for_the_size_is_shrunk_to_fit():
    kernel = motion_kernel(np.random.default_rng(0), size=9, length_range=(60.0, 60.0))
    assert kernel.shape == (9, 9)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)


def test_motion_kernels_span_their_length_range():
    # A path of arc length L fits in L + 2 pixels; a straight one of length L needs about L.
    sizes = [motion_kernel(np.random.default_rng(seed), length_range=(20.0, 20.0)).shape[0] for seed in range(20)]
    assert max(sizes) <= 2 * 20 + 3
    assert max(sizes) >= 19


def test_motion_kernels_are_centred_so_blur_does_not_shift_the_image():
    for seed in range(10):
        kernel = motion_kernel(np.random.default_rng(seed))
        rows, cols = np.indices(kernel.shape)
        centre = kernel.shape[0] // 2
        assert (kernel * rows).sum() == pytest.approx(centre, abs=1e-6)
        assert (kernel * cols).sum() == pytest.approx(centre, abs=1e-6)


def test_motion_kernels_include_curved_shake_not_only_straight_lines():
    spreads = [off_axis_spread(motion_kernel(np.random.default_rng(seed))) for seed in range(20)]
    # A rasterised straight streak strays at most about a pixel from its axis.
    assert sum(spread > 2.0 for spread in spreads) >= 4


def test_gaussian_and_defocus_sizes_follow_their_parameters():
    assert gaussian_kernel(np.random.default_rng(0), sigma_range=(2.0, 2.0)).shape == (13, 13)
    disk = defocus_kernel(np.random.default_rng(0), radius_range=(4.0, 4.0))
    assert disk.shape == (9, 9)
    # Uniform inside the disk, nothing in the corners.
    assert disk[4, 4] == pytest.approx(disk[4, 5]) and disk[0, 0] == 0


def test_unknown_kind_names_the_valid_ones():
    with pytest.raises(UserError, match="motion, gaussian, defocus, mixed"):
        random_kernel(np.random.default_rng(0), "zoom")


# Degradation


@pytest.mark.parametrize("kind", ["motion", "gaussian", "defocus"])
def test_blur_lowers_sharpness_of_a_photo(kind):
    for seed in range(3):
        blurred = blur_image(ASTRONAUT, random_kernel(np.random.default_rng(seed), kind))
        assert laplacian_variance(blurred) < 0.5 * laplacian_variance(ASTRONAUT)
        assert 10.0 < psnr(ASTRONAUT, blurred, 255) < 35.0


def test_blur_is_a_true_convolution_with_reflected_edges():
    kernel = np.zeros((3, 3))
    kernel[0, 0] = 1.0  # convolving with this moves every pixel one step up and left
    image = CAMERA.astype(np.float64)
    blurred = blur_image(image, kernel)
    np.testing.assert_allclose(blurred[:-1, :-1], image[1:, 1:], atol=1e-9)
    np.testing.assert_allclose(blurred[-1, :-1], image[-2, 1:], atol=1e-9)


@pytest.mark.parametrize("image", [ASTRONAUT, CAMERA, CAMERA_16, CAMERA.astype(np.float32) / 255], ids=["rgb8", "gray8", "gray16", "float"])
def test_blur_keeps_shape_dtype_and_range(image):
    blurred = blur_image(image, gaussian_kernel(np.random.default_rng(0)))
    assert blurred.shape == image.shape and blurred.dtype == image.dtype
    assert image.min() <= blurred.min() and blurred.max() <= image.max()
    assert not np.array_equal(blurred, image)


def test_blur_of_a_flat_16_bit_image_is_exactly_flat():
    flat = np.full((40, 50), 40000, dtype=np.uint16)
    assert np.array_equal(blur_image(flat, motion_kernel(np.random.default_rng(1))), flat)


def test_blur_is_fast():
    image = np.ascontiguousarray(skimage.data.astronaut()[:400, :512])
    image = np.concatenate([image, image[:, :88]], axis=1)  # 400 x 600 RGB
    kernel = np.full((31, 31), 1 / 31**2)
    best = min(_timed(blur_image, image, kernel) for _ in range(3))
    assert best < 0.1


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def test_noise_has_the_asked_sigma_in_full_range_units():
    noisy = add_noise(CAMERA_16, np.random.default_rng(0), 0.01)
    assert noisy.dtype == np.uint16
    assert np.std(noisy.astype(np.float64) - CAMERA_16) == pytest.approx(0.01 * 65535, rel=0.05)
    assert np.array_equal(add_noise(CAMERA, np.random.default_rng(0), 0.0), CAMERA)
    with pytest.raises(UserError, match="sigma"):
        add_noise(CAMERA, np.random.default_rng(0), -0.1)


def test_jpeg_roundtrip_compresses_8_bit_and_skips_16_bit():
    compressed = jpeg_roundtrip(ASTRONAUT, 30)
    assert compressed.shape == ASTRONAUT.shape and compressed.dtype == np.uint8
    assert 20.0 < psnr(ASTRONAUT, compressed, 255) < 45.0
    assert np.array_equal(jpeg_roundtrip(CAMERA_16, 30), CAMERA_16)
    with pytest.raises(UserError, match="quality"):
        jpeg_roundtrip(ASTRONAUT, 0)


@pytest.mark.parametrize("channels", [1, 2], ids=["gray", "gray+alpha"])
def test_h_w_1_and_h_w_2_images_are_jpeg_compressed_and_degraded(channels):
    image = np.dstack([CAMERA, DISK_ALPHA][:channels])
    compressed = jpeg_roundtrip(image, 30)
    assert compressed.shape == image.shape and compressed.dtype == np.uint8
    assert np.array_equal(compressed[:, :, 0], jpeg_roundtrip(CAMERA, 30))
    if channels == 2:
        assert np.array_equal(compressed[:, :, 1], DISK_ALPHA)
    degraded, _ = degrade(image, np.random.default_rng(0), "gaussian", noise_sigma=0.01, jpeg_quality=30)
    assert degraded.shape == image.shape and degraded.dtype == np.uint8


def test_degrade_returns_the_kernel_it_used_and_is_reproducible():
    first, kernel = degrade(COFFEE, np.random.default_rng(5), "motion", noise_sigma=0.01, jpeg_quality=80)
    again, same_kernel = degrade(COFFEE, np.random.default_rng(5), "motion", noise_sigma=0.01, jpeg_quality=80)
    assert first.dtype == np.uint8 and first.shape == COFFEE.shape
    assert np.array_equal(first, again) and np.array_equal(kernel, same_kernel)
    assert np.array_equal(kernel, motion_kernel(np.random.default_rng(5)))
    assert psnr(COFFEE, first, 255) < psnr(COFFEE, blur_image(COFFEE, kernel), 255)


# The loader's random blur (data.synthetic_blur)


def test_full_convolution_is_blurring_twice():
    first, second = motion_kernel(np.random.default_rng(0)), gaussian_kernel(np.random.default_rng(1))
    combined = full_convolution(first, second)
    assert combined.shape == (first.shape[0] + second.shape[0] - 1,) * 2 and combined.shape[0] % 2 == 1
    assert combined.min() >= 0 and combined.sum() == pytest.approx(1.0, abs=1e-12)
    image = CAMERA.astype(np.float64) / 255
    margin = combined.shape[0]  # away from the reflected borders, where the two blurs reflect different images
    once, twice = blur_image(image, combined), blur_image(blur_image(image, first), second)
    np.testing.assert_allclose(once[margin:-margin, margin:-margin], twice[margin:-margin, margin:-margin], atol=1e-9)


def test_sample_degradation_draws_the_kinds_by_weight():
    rng = np.random.default_rng(0)
    for _ in range(10):
        disk = sample_degradation(rng, only("defocus", defocus_radius=(2.0, 4.0)))
        assert disk.kind == "defocus" and disk.kernel.shape[0] in (5, 7, 9)
        assert np.allclose(disk.kernel, disk.kernel.T) and np.allclose(disk.kernel, disk.kernel[::-1])  # a disk
        assert (disk.noise_sigma, disk.jpeg_quality) == (0.0, None)
    assert sample_degradation(rng, only("identity")).kernel.shape == (1, 1)
    mixed = SyntheticBlurConfig(motion=0, gaussian=0, defocus=1, mixture=0, identity=3)
    kinds = [sample_degradation(rng, mixed).kind for _ in range(400)]
    assert set(kinds) == {"defocus", "identity"} and kinds.count("identity") / 400 == pytest.approx(0.75, abs=0.07)


def test_sample_degradation_draws_noise_and_jpeg_in_their_ranges():
    config = only("gaussian", noise_sigma=(0.01, 0.02), jpeg_probability=1.0, jpeg_quality=(70, 80))
    drawn = [sample_degradation(np.random.default_rng(seed), config) for seed in range(20)]
    assert all(0.01 <= d.noise_sigma <= 0.02 and 70 <= d.jpeg_quality <= 80 for d in drawn)
    assert len({d.jpeg_quality for d in drawn}) > 3
    blurred = drawn[0].apply(ASTRONAUT.astype(np.float32) / 255, np.random.default_rng(0))
    assert blurred.dtype == np.float32 and blurred.shape == ASTRONAUT.shape
    assert np.array_equal(np.rint(blurred * 255), blurred * 255)  # stored as a camera stores it: 8 bits
    assert laplacian_variance(blurred) < laplacian_variance(ASTRONAUT.astype(np.float32) / 255)


# Folders


def test_paired_set_keeps_names_formats_and_bit_depths(photo_dir, tmp_path):
    out = tmp_path / "paired"
    summary = synthesize_folder(photo_dir, out, paired=True, seed=3, save_kernels=True, progress=False)
    assert summary["inputs"] == summary["blurred"] == summary["sharp"] == 5
    assert relative_files(out / "blur") == relative_files(out / "sharp") == ALL_NAMES
    assert relative_files(out / "kernels") == ALL_NAMES
    with Image.open(out / "kernels" / "camera16.png") as kernel:
        assert kernel.mode == "L"
    for name, mode in [("astronaut.png", "RGB"), ("camera.png", "L"), ("camera16.png", "I;16"), ("coffee.png", "RGB")]:
        for side in ("blur", "sharp"):
            with Image.open(out / side / name) as image:
                assert image.format == "PNG" and image.mode == mode, (side, name)
    assert np.array_equal(read(out / "sharp" / "camera16.png"), CAMERA_16)
    blurred16 = read(out / "blur" / "camera16.png")
    assert blurred16.dtype == np.uint16 and blurred16.max() > 255
    assert laplacian_variance(blurred16) < 0.5 * laplacian_variance(CAMERA_16)
    assert laplacian_variance(read(out / "blur" / "astronaut.png")) < 0.5 * laplacian_variance(ASTRONAUT)


def test_paired_blur_is_the_documented_per_image_degradation(photo_dir, tmp_path):
    synthesize_folder(photo_dir, tmp_path / "out", paired=True, seed=9, kind="defocus", progress=False)
    index = sorted(ALL_NAMES).index("camera.png")
    expected, _ = degrade(CAMERA, np.random.default_rng([9, index]), "defocus")
    assert np.array_equal(read(tmp_path / "out" / "blur" / "camera.png"), expected)


def test_unpaired_sides_are_disjoint_and_cover_every_input(photo_dir, tmp_path):
    summary = synthesize_folder(photo_dir, tmp_path / "out", progress=False)
    blurred, sharp = relative_files(tmp_path / "out" / "blur"), relative_files(tmp_path / "out" / "sharp")
    assert not blurred & sharp
    assert blurred | sharp == ALL_NAMES
    assert (len(blurred), len(sharp)) == (summary["blurred"], summary["sharp"]) == (2, 3)


def test_same_seed_same_output_other_seed_different(photo_dir, tmp_path):
    def run(seed: int, paired: bool) -> Path:
        out = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
        synthesize_folder(photo_dir, out, paired=paired, seed=seed, noise_sigma=0.01, progress=False)
        return out

    first, again, other = run(1, True), run(1, True), run(2, True)
    for name in ALL_NAMES:
        assert np.array_equal(read(first / "blur" / name), read(again / "blur" / name))
    assert not np.array_equal(read(first / "blur" / "astronaut.png"), read(other / "blur" / "astronaut.png"))
    splits = [relative_files(run(seed, False) / "blur") for seed in (4, 4, 5, 6, 7)]
    assert splits[0] == splits[1]
    assert any(split != splits[0] for split in splits[2:])


def test_jpeg_input_becomes_lossless_png_with_the_same_pixels(photo_dir, tmp_path):
    synthesize_folder(photo_dir, tmp_path / "out", paired=True, progress=False)
    with Image.open(photo_dir / "coffee.JPG") as original:
        decoded = np.array(original)
    assert np.array_equal(read(tmp_path / "out" / "sharp" / "coffee.png"), decoded)


def test_missing_or_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        synthesize_folder(tmp_path / "nowhere", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="no images"):
        synthesize_folder(tmp_path / "empty", tmp_path / "out", progress=False)


def test_corrupt_image_is_a_user_error_naming_the_file(photo_dir, tmp_path):
    (photo_dir / "broken.png").write_bytes(b"this is not a PNG at all" * 10)
    with pytest.raises(UserError, match="broken.png"):
        synthesize_folder(photo_dir, tmp_path / "out", paired=True, progress=False)


def test_bad_output_places_and_too_few_images_are_user_errors(photo_dir, tmp_path):
    with pytest.raises(UserError, match="inside"):
        synthesize_folder(photo_dir, photo_dir / "out", progress=False)
    synthesize_folder(photo_dir, tmp_path / "out", paired=True, progress=False)
    with pytest.raises(UserError, match="not empty"):
        synthesize_folder(photo_dir, tmp_path / "out", progress=False)
    single = tmp_path / "single"
    single.mkdir()
    Image.fromarray(CAMERA).save(single / "camera.png")
    with pytest.raises(UserError, match="at least 2"):
        synthesize_folder(single, tmp_path / "out_single", progress=False)


DEEP_INPUTS = {
    "astronaut16.png": ASTRONAUT_16,
    "astronaut16_rgba.png": np.dstack([ASTRONAUT_16, np.full((256, 256), 50000, np.uint16)]),
    "camera_alpha.png": np.dstack([CAMERA, DISK_ALPHA]),
    "coffee_bands.tif": (np.dstack([COFFEE, COFFEE.min(axis=2), COFFEE.max(axis=2)]) / 255).astype(np.float32),
}


def test_16_bit_color_float_bands_and_alpha_keep_dtype_channels_and_shape(tmp_path):
    """Pillow alone reads 16-bit color as 8-bit and cannot open a 5-band float TIFF."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, pixels in DEEP_INPUTS.items():
        if name.endswith(".tif"):
            tifffile.imwrite(folder / name, pixels, photometric="minisblack", planarconfig="contig")
        else:
            write_pixels(pixels, folder / name)
    synthesize_folder(folder, tmp_path / "out", paired=True, seed=2, progress=False)
    for index, (name, pixels) in enumerate(sorted(DEEP_INPUTS.items())):
        sharp, blurred = read_pixels(tmp_path / "out" / "sharp" / name), read_pixels(tmp_path / "out" / "blur" / name)
        assert np.array_equal(sharp, pixels), name
        assert blurred.dtype == pixels.dtype and blurred.shape == pixels.shape, name
        expected, _ = degrade(pixels, np.random.default_rng([2, index]), "mixed")
        assert np.array_equal(blurred, expected), name
    with tifffile.TiffFile(tmp_path / "out" / "blur" / "coffee_bands.tif") as tiff:
        assert len(tiff.pages) == 1 and tiff.pages[0].samplesperpixel == 5
    alpha = read_pixels(tmp_path / "out" / "blur" / "camera_alpha.png")[:, :, 1]
    assert ((alpha > 0) & (alpha < 255)).any()  # the alpha channel is blurred along with the gray


def test_icc_profile_is_carried_to_both_sides(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(ASTRONAUT).save(folder / "astronaut.png", icc_profile=SRGB_PROFILE)
    write_pixels(ASTRONAUT_16, folder / "astronaut16.png", icc_profile=SRGB_PROFILE)
    Image.fromarray(COFFEE).save(folder / "coffee.jpg", icc_profile=SRGB_PROFILE)
    Image.fromarray(CHELSEA).save(folder / "chelsea.webp", lossless=True, icc_profile=SRGB_PROFILE)
    tifffile.imwrite(folder / "chelsea_tiff.tif", CHELSEA, photometric="rgb", iccprofile=SRGB_PROFILE)
    synthesize_folder(folder, tmp_path / "out", paired=True, progress=False)
    for name in ("astronaut.png", "astronaut16.png", "coffee.png", "chelsea.webp", "chelsea_tiff.tif"):
        for side in ("blur", "sharp"):
            with Image.open(tmp_path / "out" / side / name) as image:
                assert image.info.get("icc_profile") == SRGB_PROFILE, (side, name)


def test_webp_is_written_lossless_even_under_transparent_pixels(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rgba = np.dstack([ASTRONAUT, np.pad(DISK_ALPHA, 32)])
    Image.fromarray(rgba).save(folder / "astronaut.webp", lossless=True, exact=True)
    synthesize_folder(folder, tmp_path / "out", paired=True, seed=4, progress=False)
    assert np.array_equal(read(tmp_path / "out" / "sharp" / "astronaut.webp"), rgba)
    expected, _ = degrade(rgba, np.random.default_rng([4, 0]), "mixed")
    assert np.array_equal(read(tmp_path / "out" / "blur" / "astronaut.webp"), expected)
