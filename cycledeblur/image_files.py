"""Finding, reading and writing image files at their stored depth (no torch), for every command."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import png
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def list_images(folder: str | Path) -> list[Path]:
    """Image files below `folder` (recursive), sorted by relative path."""
    folder = Path(folder)
    files = (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open and fully decode an image, upright per its EXIF orientation; a bad file is a UserError naming it."""
    name = name or str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened)
    except FileNotFoundError:
        raise UserError(f"image not found: {name}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(f"cannot read image {name}: {error}") from None


# PIL modes whose pixels are not plain channel values: convert them to one whose pixels are.
_PIL_MODE_FOR_PIXELS = {"1": "L", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_pixels(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """An image's pixels at their stored depth (uint8, uint16 or float32), as an H x W x C array, upright.

    Pillow decodes 16-bit only for grayscale, so TIFF (any depth, any number of bands) goes through tifffile and
    16-bit color PNG through pypng; everything else through Pillow.
    """
    name = name or str(source)
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise UserError(f"image not found: {name}") from None
    is_tiff = data[:4] in _TIFF_MAGIC
    # The PNG header's bit depth (byte 24) and color type (byte 25: 2 RGB, 6 RGBA).
    is_color16_png = data[:8] == _PNG_MAGIC and len(data) > 25 and data[24] == 16 and data[25] in (2, 6)
    if not (is_tiff or is_color16_png):
        return _pil_pixels(open_image(data, name))
    # Corrupt files make these decoders fail in many ways (IndexError, struct.error...): each is one bad file.
    try:
        if is_tiff:
            pixels = tifffile.imread(io.BytesIO(data))
            if pixels.ndim == 3 and pixels.shape[0] < min(pixels.shape[1:]) and pixels.shape[0] <= 16:
                pixels = pixels.transpose(1, 2, 0)  # planar (bands first) storage
        else:
            width, height, rows, info = png.Reader(bytes=data).asDirect()
            pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])
        if pixels.ndim not in (2, 3) or pixels.size == 0:
            raise ValueError(f"no 2-D image in it (decoded shape {pixels.shape})")
    except Exception as error:  # noqa: BLE001
        raise UserError(f"cannot read image {name}: {error}") from None
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def _pil_pixels(image: Image.Image) -> np.ndarray:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in _PIL_MODE_FOR_PIXELS:
        image = image.convert(_PIL_MODE_FOR_PIXELS[image.mode])
    pixels = np.asarray(image)
    if pixels.dtype.kind in "ui" and pixels.itemsize > 1:  # "I;16*", and mode "I" holding 16-bit values
        pixels = pixels.clip(0, 65535).astype(np.uint16)
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def write_pixels(pixels: np.ndarray, path: str | Path) -> None:
    """Write an H x W x C array (uint8, uint16 or float32) keeping its depth: TIFF via tifffile, 16-bit color
    PNG via pypng, everything else via Pillow."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width, channels = pixels.shape
    if path.suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, pixels[:, :, 0] if channels == 1 else pixels)
    elif pixels.dtype == np.uint16 and channels in (3, 4) and path.suffix.lower() == ".png":
        png.from_array(pixels.reshape(height, width * channels), "RGB;16" if channels == 3 else "RGBA;16").save(path)
    else:
        Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels).save(path)
