"""Finding, reading and writing image files at their stored depth (no torch), for every command."""

from __future__ import annotations

import io
import zlib
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
# pypng modes for the 16-bit PNGs Pillow cannot write (it writes 16-bit only for grayscale), by channel count.
_PYPNG_16_BIT_MODES = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}


def read_pixels(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """An image's pixels at their stored depth (uint8, uint16 or float32), as an H x W x C array, upright.

    Pillow decodes 16-bit only for grayscale, so TIFF (any depth, any number of bands) goes through tifffile and
    16-bit gray+alpha or color PNG through pypng; everything else through Pillow.
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
    # The PNG header's bit depth (byte 24) and color type (byte 25: 2 RGB, 4 gray+alpha, 6 RGBA).
    is_multichannel_png16 = data[:8] == _PNG_MAGIC and len(data) > 25 and data[24] == 16 and data[25] in (2, 4, 6)
    if not (is_tiff or is_multichannel_png16):
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


def read_icc_profile(path: str | Path) -> bytes | None:
    """The ICC color profile embedded in an image file, or None; only the header is read, no pixels decoded."""
    try:
        with Path(path).open("rb") as file:
            is_tiff = file.read(4) in _TIFF_MAGIC
            file.seek(0)
            return _tiff_icc_profile(file) if is_tiff else _pil_icc_profile(file)
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    # As in read_pixels: a corrupt header makes the parsers fail in many ways, each one bad file.
    except Exception as error:  # noqa: BLE001
        raise UserError(f"cannot read image {path}: {error}") from None


def _tiff_icc_profile(file: io.BufferedReader) -> bytes | None:
    with tifffile.TiffFile(file) as tiff:
        tag = tiff.pages[0].tags.get("InterColorProfile")
        # Stored as UNDEFINED the tag reads as bytes, as BYTE as a tuple of ints.
        return bytes(tag.value) if tag else None


def _pil_icc_profile(file: io.BufferedReader) -> bytes | None:
    with Image.open(file) as image:  # lazy: parses the header (where the profile lives), not the pixels
        return image.info.get("icc_profile") or None


def _pil_pixels(image: Image.Image) -> np.ndarray:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in _PIL_MODE_FOR_PIXELS:
        image = image.convert(_PIL_MODE_FOR_PIXELS[image.mode])
    pixels = np.asarray(image)
    if pixels.dtype.kind in "ui" and pixels.itemsize > 1:  # "I;16*", and mode "I" holding 16-bit values
        pixels = pixels.clip(0, 65535).astype(np.uint16)
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def write_pixels(pixels: np.ndarray, path: str | Path, *, icc_profile: bytes | None = None) -> None:
    """Write an H x W x C array (uint8, uint16 or float32) keeping its depth, with `icc_profile` embedded if given
    (BMP has no place for one): TIFF via tifffile, 16-bit gray+alpha or color PNG via pypng, all else via Pillow."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        _write_tiff(pixels, path, icc_profile)
    elif suffix == ".png" and pixels.dtype == np.uint16 and pixels.shape[2] in _PYPNG_16_BIT_MODES:
        _write_png16(pixels, path, icc_profile)
    else:
        _write_with_pil(pixels, path, icc_profile)


def _write_tiff(pixels: np.ndarray, path: Path, icc_profile: bytes | None) -> None:
    channels = pixels.shape[2]
    # Left to guess, tifffile stores an H x W x C array with C other than 3 or 4 as H pages of W x C pixels.
    tifffile.imwrite(
        path,
        pixels[:, :, 0] if channels == 1 else pixels,
        photometric="rgb" if channels in (3, 4) else "minisblack",
        planarconfig="contig",
        iccprofile=icc_profile,
    )


def _write_png16(pixels: np.ndarray, path: Path, icc_profile: bytes | None) -> None:
    height, width, channels = pixels.shape
    encoded = io.BytesIO()
    png.from_array(pixels.reshape(height, width * channels), _PYPNG_16_BIT_MODES[channels]).write(encoded)
    chunks = list(png.Reader(bytes=encoded.getvalue()).chunks())
    if icc_profile:
        # pypng has no option for a profile; PNG wants its iCCP chunk (name, 0, method 0, zlib data) before IDAT.
        chunks.insert(1, (b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    with path.open("wb") as file:
        png.write_chunks(file, chunks)


def _write_with_pil(pixels: np.ndarray, path: Path, icc_profile: bytes | None) -> None:
    options = {"icc_profile": icc_profile} if icc_profile else {}
    if path.suffix.lower() == ".webp":
        # Pillow's WebP default is lossy, and lossless still alters the color under fully transparent pixels.
        options |= {"lossless": True, "exact": True}
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path, **options)
