"""Image files <-> float tensors, for every mode a user may bring: 8/16-bit, gray, RGBA, palette, float TIFF."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import ImageFileError
from ..image_files import TiffTag, read_geotiff_tags, read_icc_profile, read_pixels, write_pixels


@dataclass(frozen=True)
class ImageFormat:
    """How an input was stored, so outputs can be written back the same way."""

    bit_depth: int  # 8, 16 or 32 (float)
    channels: int
    icc_profile: bytes | None = None  # the embedded color profile: without it, outputs would look different
    geotiff_tags: tuple[TiffTag, ...] = ()  # a scene's georeferencing: without it, GIS tools could not place the output


def pixels_to_array(pixels: np.ndarray, name: str = "image") -> tuple[np.ndarray, ImageFormat]:
    """Stored pixels (H x W x C) as float32 in [0, 1], and the format they were stored in (1-bit: as 8-bit)."""
    if pixels.dtype == bool:  # 1-bit (bilevel TIFF)
        array, bit_depth = pixels.astype(np.float32), 8
    elif pixels.dtype == np.uint8:
        array, bit_depth = pixels.astype(np.float32) / 255.0, 8
    elif pixels.dtype == np.uint16:
        array, bit_depth = pixels.astype(np.float32) / 65535.0, 16
    elif pixels.dtype.kind == "f":
        array, bit_depth = pixels.astype(np.float32), 32
        # NaN marks "no data" in some scientific images; the network would spread it over the whole output.
        if not np.isfinite(array).all():
            raise ImageFileError(f"{name} holds NaN or infinite pixel values; fill them in first")
    else:
        raise ImageFileError(f"{name}: pixel type {pixels.dtype} is not supported (8 or 16-bit unsigned, 1-bit, float)")
    return np.clip(array, 0.0, 1.0), ImageFormat(bit_depth=bit_depth, channels=pixels.shape[2])


def adapt_channels(tensor: torch.Tensor, channels: int, name: str = "image") -> torch.Tensor:
    """Convert a CxHxW tensor to `channels`: gray is repeated, alpha dropped, color turned to luminance."""
    have = tensor.shape[0]
    if have == channels:
        return tensor
    if have in (2, 4) and channels in (1, 3):  # LA / RGBA: drop alpha first
        tensor, have = tensor[: have - 1], have - 1
        if have == channels:
            return tensor
    if have == 1:
        return tensor.expand(channels, -1, -1).clone()
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=tensor.dtype).view(3, 1, 1)
        return (tensor * weights).sum(0, keepdim=True)
    raise ImageFileError(f"{name} has {have} channels and cannot be converted to the model's {channels}")


def read_image(source: str | Path | bytes, channels: int, name: str | None = None) -> tuple[torch.Tensor, ImageFormat]:
    """Decode an image file (or its bytes) to a float CxHxW tensor in [0, 1] with `channels` channels, and the
    format it was stored in (so an output can be written back alike)."""
    name = name or str(source)
    array, image_format = pixels_to_array(read_pixels(source, name), name)
    if not isinstance(source, bytes):
        image_format = replace(image_format, icc_profile=read_icc_profile(source), geotiff_tags=read_geotiff_tags(source))
    tensor = adapt_channels(torch.from_numpy(array).permute(2, 0, 1).contiguous(), channels, name)
    return tensor, image_format


def load_image_tensor(source: str | Path | bytes, channels: int, name: str | None = None) -> torch.Tensor:
    """`read_image` without the format."""
    return read_image(source, channels, name)[0]


def save_image_tensor(tensor: torch.Tensor, path: str | Path, image_format: ImageFormat) -> None:
    """Write a CxHxW tensor in [0, 1] with the bit depth, channel count and color profile of `image_format`."""
    tensor = adapt_channels(tensor.detach().float().cpu().clamp(0, 1), image_format.channels, str(path))
    array = tensor.permute(1, 2, 0).numpy()
    if image_format.bit_depth == 16:
        pixels = np.round(array * 65535).astype(np.uint16)
    elif image_format.bit_depth == 32:
        pixels = array.astype(np.float32)
    else:
        pixels = np.round(array * 255).astype(np.uint8)
    write_pixels(pixels, path, icc_profile=image_format.icc_profile, geotiff_tags=image_format.geotiff_tags)
