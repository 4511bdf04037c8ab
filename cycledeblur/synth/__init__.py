"""Synthetic blur: random physically motivated kernels, image degradation, and folder-to-dataset conversion."""

from .degrade import add_noise, blur_image, degrade, jpeg_roundtrip
from .folder import synthesize_folder
from .kernels import KINDS, defocus_kernel, gaussian_kernel, motion_kernel, random_kernel

__all__ = [
    "KINDS",
    "add_noise",
    "blur_image",
    "defocus_kernel",
    "degrade",
    "gaussian_kernel",
    "jpeg_roundtrip",
    "motion_kernel",
    "random_kernel",
    "synthesize_folder",
]
