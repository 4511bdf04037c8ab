"""Image files <-> float tensors, for every mode a user may bring: 8/16-bit, gray, RGBA, palette, float TIFF."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..image_files import open_image

# PIL modes whose pixels are not plain channel values: convert them to one whose pixels are.
_MODE_FOR_DECODING = {"1": "L", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


@dataclass(frozen=True)
class ImageFormat:
    """How an input was stored, so outputs can be written back the same way."""

    bit_depth: int  # 8, 16 or 32 (float)
    channels: int


def image_to_array(image: Image.Image) -> tuple[np.ndarray, ImageFormat]:
    """A float32 HxWxC array in [0, 1] and the format the image was stored in."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in _MODE_FOR_DECODING:
        image = image.convert(_MODE_FOR_DECODING[image.mode])
    pixels = np.asarray(image)
    if pixels.dtype == np.uint8:
        array, bit_depth = pixels.astype(np.float32) / 255.0, 8
    elif pixels.dtype.kind in "ui":  # I;16 variants, and mode "I" holding 16-bit PNG/TIFF values
        array, bit_depth = pixels.astype(np.float32) / 65535.0, 16
    elif pixels.dtype.kind == "f":
        array, bit_depth = pixels.astype(np.float32), 32
    elif pixels.dtype == bool:
        array, bit_depth = pixels.astype(np.float32), 8
    else:
        raise UserError(f"unsupported pixel type {pixels.dtype} (PIL mode {image.mode})")
    if array.ndim == 2:
        array = array[:, :, None]
    return np.clip(array, 0.0, 1.0), ImageFormat(bit_depth=bit_depth, channels=array.shape[2])


def adapt_channels(tensor: torch.Tensor, channels: int, name: str = "image") -> torch.Tensor:
    """Convert a CxHxW tensor to `channels`: gray is repeated, alpha dropped, color turned to luminance."""
    have = tensor.shape[0]
    if have == channels:
        return tensor
    if have in (2, 4) and channels in (1, 3) and have - 1 >= channels:  # LA / RGBA: drop alpha first
        tensor, have = tensor[: have - 1], have - 1
        if have == channels:
            return tensor
    if have == 1:
        return tensor.expand(channels, -1, -1).clone()
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=tensor.dtype).view(3, 1, 1)
        return (tensor * weights).sum(0, keepdim=True)
    raise UserError(f"{name} has {have} channels and cannot be converted to the model's {channels}")


def read_image(source: str | Path | bytes, channels: int, name: str | None = None) -> tuple[torch.Tensor, ImageFormat]:
    """Decode an image file (or its bytes) to a float CxHxW tensor in [0, 1] with `channels` channels, and the
    format it was stored in (so an output can be written back alike)."""
    name = name or str(source)
    array, image_format = image_to_array(open_image(source, name))
    tensor = adapt_channels(torch.from_numpy(array).permute(2, 0, 1).contiguous(), channels, name)
    return tensor, image_format


def load_image_tensor(source: str | Path | bytes, channels: int, name: str | None = None) -> torch.Tensor:
    """`read_image` without the format."""
    return read_image(source, channels, name)[0]


def save_image_tensor(tensor: torch.Tensor, path: str | Path, image_format: ImageFormat) -> None:
    """Write a CxHxW tensor in [0, 1] with the bit depth and channel count of `image_format`."""
    path = Path(path)
    tensor = adapt_channels(tensor.detach().float().cpu().clamp(0, 1), image_format.channels, str(path))
    array = tensor.permute(1, 2, 0).numpy()
    if image_format.channels == 1:
        array = array[:, :, 0]
    if image_format.bit_depth == 16 and array.ndim == 2:
        image = Image.fromarray(np.round(array * 65535).astype(np.uint16))
    elif image_format.bit_depth == 32 and array.ndim == 2:
        image = Image.fromarray(array.astype(np.float32), mode="F")
    else:
        # PIL stores color only as 8-bit; 16-bit color is written as 8-bit rather than losing the file.
        image = Image.fromarray(np.round(array * 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
