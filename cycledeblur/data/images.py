"""Image files <-> float tensors: `image_arrays` (which has no torch) with torch tensors on the outside."""

from __future__ import annotations

from pathlib import Path

import torch

from ..image_arrays import ImageFormat, read_array, read_image_array, save_image_array


def read_image(source: str | Path | bytes, channels: int, name: str | None = None) -> tuple[torch.Tensor, ImageFormat]:
    """Decode an image file (or its bytes) to a float CxHxW tensor in [0, 1] with `channels` channels, and the
    format it was stored in (so an output can be written back alike)."""
    array, image_format = read_image_array(source, channels, name)
    return torch.from_numpy(array), image_format


def load_image_tensor(source: str | Path | bytes, channels: int, name: str | None = None) -> torch.Tensor:
    """`read_image`'s pixels alone, without reading the file's metadata."""
    return torch.from_numpy(read_array(source, channels, name))


def save_image_tensor(tensor: torch.Tensor, path: str | Path, image_format: ImageFormat) -> None:
    """Write a CxHxW tensor in [0, 1] with the bit depth, channel count and color profile of `image_format`."""
    save_image_array(tensor.detach().float().cpu().numpy(), path, image_format)
