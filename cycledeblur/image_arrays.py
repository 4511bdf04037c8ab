"""Image files <-> float32 arrays (C x H x W in [0, 1]) for every mode a user may bring: 8/16-bit, gray, RGBA,
palette, float TIFF. No torch: this is what an ONNX deployment of `cycledeblur deblur` reads and writes with."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import ImageFileError
from .image_files import TiffTag, read_metadata, read_pixels, write_pixels

# ITU-R BT.601 luma weights: color to gray.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class ImageFormat:
    """How an input was stored, so outputs can be written back the same way."""

    bit_depth: int  # 8, 16 or 32 (float)
    channels: int
    icc_profile: bytes | None = None  # the embedded color profile: without it, outputs would look different
    geotiff_tags: tuple[TiffTag, ...] = ()  # a scene's georeferencing: without it, GIS tools could not place the output


def pixels_to_array(pixels: np.ndarray, name: str = "image") -> tuple[np.ndarray, ImageFormat]:
    """Stored pixels (H x W x C) as float32 in [0, 1], and the format they were stored in (1-bit: as 8-bit).

    The array is H x W x C, a view of a C x H x W buffer (the networks' layout, so that it needs no second copy), and
    is scaled in place: a large scene is held once as stored and once in float32, never more.
    """
    scales = {np.dtype(bool): 1.0, np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
    if pixels.dtype not in scales and pixels.dtype.kind != "f":
        raise ImageFileError(f"{name}: pixel type {pixels.dtype} is not supported (8 or 16-bit unsigned, 1-bit, float)")
    array = np.array(pixels.transpose(2, 0, 1), dtype=np.float32, order="C")  # always a copy: the pixels stay as they are
    if pixels.dtype in scales:
        array /= scales[pixels.dtype]
        bit_depth = 16 if pixels.dtype == np.uint16 else 8
    else:
        bit_depth = 32
        # NaN marks "no data" in some scientific images; the network would spread it over the whole output.
        if not np.isfinite(array).all():
            raise ImageFileError(f"{name} holds NaN or infinite pixel values; fill them in first")
    np.clip(array, 0.0, 1.0, out=array)
    return array.transpose(1, 2, 0), ImageFormat(bit_depth=bit_depth, channels=pixels.shape[2])


def adapt_channels(array: np.ndarray, channels: int, name: str = "image") -> np.ndarray:
    """Convert a C x H x W array to `channels`: gray is repeated, alpha dropped, color turned to luminance."""
    have = array.shape[0]
    if have == channels:
        return array
    if have in (2, 4) and channels in (1, 3):  # LA / RGBA: drop alpha first
        array, have = array[: have - 1], have - 1
        if have == channels:
            return array
    if have == 1:
        return np.repeat(array, channels, axis=0)
    if have == 3 and channels == 1:
        return np.tensordot(LUMA_WEIGHTS, array, axes=1)[None].astype(np.float32)
    raise ImageFileError(f"{name} has {have} channels and cannot be converted to the model's {channels}")


def pixels_as_array(pixels: np.ndarray, channels: int, name: str = "image") -> tuple[np.ndarray, ImageFormat]:
    """Stored pixels (H x W x C) as a float32 C x H x W array in [0, 1] with `channels` channels (a new array: the
    pixels are left as they are), and the format they were stored in."""
    array, image_format = pixels_to_array(pixels, name)
    return np.ascontiguousarray(adapt_channels(array.transpose(2, 0, 1), channels, name)), image_format


def _decoded(source: str | Path | bytes, channels: int, name: str) -> tuple[np.ndarray, ImageFormat]:
    return pixels_as_array(read_pixels(source, name), channels, name)


def read_image_array(source: str | Path | bytes, channels: int, name: str | None = None) -> tuple[np.ndarray, ImageFormat]:
    """Decode an image file (or its bytes) to a float32 C x H x W array in [0, 1] with `channels` channels, and the
    format it was stored in, its color profile and georeferencing included (so an output can be written back
    alike)."""
    array, image_format = _decoded(source, channels, name or str(source))
    if not isinstance(source, bytes):
        metadata = read_metadata(source)
        image_format = replace(image_format, icc_profile=metadata.icc_profile, geotiff_tags=metadata.geotiff_tags)
    return array, image_format


def read_array(source: str | Path | bytes, channels: int, name: str | None = None) -> np.ndarray:
    """`read_image_array`'s pixels alone: the file is read once and its metadata not at all (training, scoring)."""
    return _decoded(source, channels, name or str(source))[0]


_ROWS_PER_BAND = 256


def save_image_array(array: np.ndarray, path: str | Path, image_format: ImageFormat) -> None:
    """Write a C x H x W array in [0, 1] with the bit depth, channel count and color profile of `image_format`."""
    array = adapt_channels(array, image_format.channels, str(path))
    dtype, scale = {16: (np.uint16, 65535), 32: (np.float32, 1)}.get(image_format.bit_depth, (np.uint8, 255))
    channels, height, width = array.shape
    pixels = np.empty((height, width, channels), dtype=dtype)
    # A band of rows at a time: the float temporaries of a large scene stay small.
    for top in range(0, height, _ROWS_PER_BAND):
        band = np.clip(array[:, top : top + _ROWS_PER_BAND].astype(np.float32), 0, 1).transpose(1, 2, 0)
        pixels[top : top + _ROWS_PER_BAND] = band if dtype == np.float32 else np.round(band * scale)
    write_pixels(pixels, path, icc_profile=image_format.icc_profile, geotiff_tags=image_format.geotiff_tags)


def centre_crop(array: np.ndarray, size: int) -> np.ndarray:
    """The central `size` x `size` pixels of a C x H x W array (all of a side shorter than that)."""
    height, width = array.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return np.ascontiguousarray(array[:, top : top + size, left : left + size])
