"""Apply a blur kernel, sensor noise and JPEG compression to an image array.

Images are H x W or H x W x C arrays of any integer or float dtype; each function returns one of
the same shape and dtype. Integer images span their dtype's full range (0-255, 0-65535); float
images are taken to span [0, 1].
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..errors import UserError
from .kernels import check_kind, random_kernel


def blur_image(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with `kernel`; edges are reflected so the output keeps the input's size."""
    _check_image(image)
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise UserError(f"a blur kernel must be a 2-D array of odd sizes, got shape {kernel.shape}")
    pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    pixels = image.reshape(image.shape[:2] + (-1,)).astype(np.float64)
    padded = np.pad(pixels, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
    # Wrap-around of the circular FFT convolution only reaches the first 2 * pad rows and columns,
    # which are cropped; the zeros added up to an FFT-friendly size do not change the rest.
    shape = tuple(_fast_fft_length(length) for length in padded.shape[:2])
    spectrum = np.fft.rfft2(padded, s=shape, axes=(0, 1)) * np.fft.rfft2(kernel, s=shape)[:, :, None]
    blurred = np.fft.irfft2(spectrum, s=shape, axes=(0, 1))[2 * pad_y : padded.shape[0], 2 * pad_x : padded.shape[1]]
    # A normalised non-negative kernel averages, so anything outside the input's own range is round-off.
    blurred = np.clip(blurred, pixels.min(), pixels.max())
    return _to_dtype(blurred.reshape(image.shape), image.dtype)


def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add Gaussian noise of standard deviation `sigma`, in units of the full range (0.01 = 1%)."""
    _check_image(image)
    _check_noise_sigma(sigma)
    if sigma == 0:
        return image.copy()
    full_range = _full_range(image.dtype)
    noisy = image.astype(np.float64) + rng.normal(0.0, sigma * full_range, image.shape)
    return _to_dtype(np.clip(noisy, 0.0, full_range), image.dtype)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Compress and decompress as JPEG at `quality` (1-100) to add its block and ringing artefacts.

    JPEG stores 8 bits per channel, so only uint8 images are compressed; 16-bit and float images
    are returned unchanged. An alpha channel (gray+alpha, RGBA) is kept as is.
    """
    _check_image(image)
    _check_jpeg_quality(quality)
    if image.dtype != np.uint8:
        return image.copy()
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 2, 3, 4):
        raise UserError(f"JPEG holds gray or RGB images (optionally with alpha), not {channels} channels")
    has_alpha = channels in (2, 4)
    color = image[:, :, :-1] if has_alpha else image
    gray_or_rgb = color[:, :, 0] if color.ndim == 3 and color.shape[2] == 1 else color
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(gray_or_rgb)).save(buffer, format="JPEG", quality=int(quality))
    decoded = np.array(Image.open(buffer)).reshape(color.shape)
    return np.concatenate([decoded, image[:, :, -1:]], axis=2) if has_alpha else decoded


def degrade(
    image: np.ndarray,
    rng: np.random.Generator,
    kind: str = "mixed",
    noise_sigma: float = 0.0,
    jpeg_quality: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Blur with a random kernel of `kind`, add noise, then JPEG-compress; returns (degraded image, kernel).

    Blur and noise are computed in floating point and rounded once, as in a camera where the
    optics blur and the sensor adds noise before the values are quantised.
    """
    _check_image(image)
    check_degradation(kind, noise_sigma, jpeg_quality)
    kernel = random_kernel(rng, kind)
    unit = image.astype(np.float64) / _full_range(image.dtype)
    degraded = add_noise(blur_image(unit, kernel), rng, noise_sigma)
    degraded = _to_dtype(degraded * _full_range(image.dtype), image.dtype)
    if jpeg_quality is not None:
        degraded = jpeg_roundtrip(degraded, jpeg_quality)
    return degraded, kernel


def check_degradation(kind: str, noise_sigma: float, jpeg_quality: int | None) -> None:
    """Raise a UserError for settings `degrade` would refuse, before any work is done."""
    check_kind(kind)
    _check_noise_sigma(noise_sigma)
    if jpeg_quality is not None:
        _check_jpeg_quality(jpeg_quality)


def _check_noise_sigma(sigma: float) -> None:
    if not sigma >= 0:
        raise UserError(f"noise sigma must be >= 0, got {sigma}")


def _check_jpeg_quality(quality: int) -> None:
    if not 1 <= quality <= 100:
        raise UserError(f"JPEG quality must be between 1 and 100, got {quality}")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.dtype.kind not in "uif":
        described = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise UserError(f"an image must be an H x W or H x W x C numeric array, got {described}")


def _fast_fft_length(minimum: int) -> int:
    """The smallest length >= `minimum` with no prime factor above 5, which FFTs handle fastest."""
    length = minimum
    while True:
        remainder = length
        for prime in (2, 3, 5):
            while remainder % prime == 0:
                remainder //= prime
        if remainder == 1:
            return length
        length += 1


def _full_range(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return np.clip(np.rint(values), limits.min, limits.max).astype(dtype)
    return values.astype(dtype)
