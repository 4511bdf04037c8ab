"""A broad random blur model for training a general deblurrer: the kind, kernel, noise level and JPEG quality of
one synthetic pair, drawn from `data.synthetic_blur`'s ranges with the kernel generators of `kernels`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import BLUR_KINDS, SyntheticBlurConfig
from .degrade import add_noise, blur_image, jpeg_roundtrip
from .kernels import defocus_kernel, gaussian_kernel, motion_kernel

IDENTITY_KERNEL = np.ones((1, 1))


@dataclass
class Degradation:
    kind: str
    kernel: np.ndarray
    noise_sigma: float
    jpeg_quality: int | None

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`image` (H x W x C float in [0, 1]) blurred, with noise, rounded to 8 bits (as a camera stores it), and
        through JPEG if drawn; same shape, float in [0, 1]."""
        degraded = add_noise(blur_image(image, self.kernel), rng, self.noise_sigma)
        quantised = np.rint(np.clip(degraded, 0, 1) * 255).astype(np.uint8)
        if self.jpeg_quality is not None:
            quantised = jpeg_roundtrip(quantised, self.jpeg_quality)
        return quantised.astype(np.float32) / 255


def sample_kernel(rng: np.random.Generator, kind: str, config: SyntheticBlurConfig) -> np.ndarray:
    """A kernel of `kind` (one of BLUR_KINDS) with the size parameters of `config`."""
    if kind == "motion":
        return motion_kernel(rng, length_range=config.motion_length)
    if kind == "gaussian":
        return gaussian_kernel(rng, sigma_range=config.gaussian_sigma)
    if kind == "defocus":
        return defocus_kernel(rng, radius_range=config.defocus_radius)
    if kind == "mixture":
        first, second = rng.choice(["motion", "gaussian", "defocus"], size=2, replace=False)
        return full_convolution(sample_kernel(rng, str(first), config), sample_kernel(rng, str(second), config))
    return IDENTITY_KERNEL


def sample_degradation(rng: np.random.Generator, config: SyntheticBlurConfig) -> Degradation:
    weights = np.array([getattr(config, kind) for kind in BLUR_KINDS], dtype=float)
    kind = BLUR_KINDS[rng.choice(len(BLUR_KINDS), p=weights / weights.sum())]
    kernel = sample_kernel(rng, kind, config)
    noise_sigma = rng.uniform(*config.noise_sigma)
    jpeg = rng.random() < config.jpeg_probability
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)) if jpeg else None
    return Degradation(kind, kernel, float(noise_sigma), quality)


def sample_softening(rng: np.random.Generator, config: SyntheticBlurConfig) -> np.ndarray | None:
    """The isotropic Gaussian that first makes a photo soft, for a `soft_fraction` of draws; None otherwise.
    Nothing is drawn when `soft_fraction` is 0, so the pairs of configs without it stay as they were."""
    if config.soft_fraction == 0 or rng.random() >= config.soft_fraction:
        return None
    return gaussian_kernel(rng, sigma_range=config.soft_sigma, anisotropic=False)


def full_convolution(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The kernel of blurring by `first`, then by `second` (odd sizes add up to an odd size)."""
    shape = tuple(a + b - 1 for a, b in zip(first.shape, second.shape))
    combined = np.fft.irfft2(np.fft.rfft2(first, shape) * np.fft.rfft2(second, shape), shape)
    combined = np.clip(combined, 0, None)
    return combined / combined.sum()
