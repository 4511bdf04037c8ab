"""Finding, reading and writing image files at their stored depth (no torch), for every command."""

from __future__ import annotations

import functools
import io
import logging
import os
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import png
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageFileError, UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".dcm")
# Formats read but not written: an image made from one (deblurred, blurred) is written as PNG, which keeps 16 bits.
_WRITTEN_AS = {".dcm": ".png"}
# Every reader here refuses images of more pixels than Pillow's `Image.MAX_IMAGE_PIXELS` (89.5 megapixels by
# default): a small file can claim a size that takes gigabytes to decode (a decompression bomb). This environment
# variable sets that limit (a number of pixels; 0: none) for large scenes from a trusted source, such as satellites.
PIXEL_LIMIT_VARIABLE = "CYCLEDEBLUR_MAX_IMAGE_PIXELS"
_RAISE_THE_LIMIT = f"for images you trust, raise the limit with {PIXEL_LIMIT_VARIABLE}"
# More values per pixel than this is a stack of images (pages of a TIFF), not one image's bands.
_MAX_BANDS = 16


def apply_pixel_limit_from_environment() -> None:
    """Set Pillow's `Image.MAX_IMAGE_PIXELS`, the limit every reader applies, from $CYCLEDEBLUR_MAX_IMAGE_PIXELS when
    it is set. Called on import."""
    text = os.environ.get(PIXEL_LIMIT_VARIABLE, "").strip()
    if not text:
        return
    if not text.isdigit():
        raise UserError(f"{PIXEL_LIMIT_VARIABLE}={text!r} must be a number of pixels (0: no limit)")
    Image.MAX_IMAGE_PIXELS = int(text) or None


apply_pixel_limit_from_environment()


def check_pixel_count(width: int, height: int) -> None:
    """Refuse (ValueError) an image of more pixels than the limit, before it is decoded."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ValueError(f"{width}x{height} is more than {limit} pixels, the limit against decompression bombs ({_RAISE_THE_LIMIT})")


def output_name(name: Path) -> Path:
    """The name of an image made from the file `name` (deblurred, blurred): the same, except that a format this
    package reads but does not write (DICOM) becomes PNG, which keeps its 16 bits."""
    return name.with_suffix(_WRITTEN_AS.get(name.suffix.lower(), name.suffix))


def list_images(folder: str | Path) -> list[Path]:
    """Image files below `folder` (recursive), sorted by relative path."""
    folder = Path(folder)
    files = (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open and fully decode an image, upright per its EXIF orientation; a bad file is an ImageFileError naming it."""
    name = name or str(source)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it; check_pixel_count refuses those too.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
                check_pixel_count(*opened.size)
                opened.load()
                return ImageOps.exif_transpose(opened)
    except FileNotFoundError:
        raise ImageFileError(f"image not found: {name}") from None
    # Corrupt files make the decoders fail in many ways (IndexError, struct.error, EOFError...): each is one bad file.
    except Exception as error:  # noqa: BLE001
        raise ImageFileError(f"cannot read image {name}: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    """A decoder's error as one line that makes sense to the user."""
    if isinstance(error, UnidentifiedImageError):  # its message holds the repr of an in-memory buffer
        return "not an image file, or in a format Pillow cannot read"
    if isinstance(error, Image.DecompressionBombError):
        return f"{error} ({_RAISE_THE_LIMIT})"
    return " ".join(str(error).split()) or type(error).__name__


@contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """tifffile logs every oddity of a damaged file before it fails; the one error raised for the file says enough."""
    logger = logging.getLogger("tifffile")
    was_disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = was_disabled


# PIL modes whose pixels are not plain channel values: convert them to one whose pixels are.
_PIL_MODE_FOR_PIXELS = {"1": "L", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A DICOM file (Part 10) has a 128-byte preamble, then "DICM"; files without it are recognized by their .dcm suffix.
_DICOM_MAGIC_OFFSET, _DICOM_MAGIC = 128, b"DICM"
# pypng modes for the 16-bit PNGs Pillow cannot write (it writes 16-bit only for grayscale), by channel count.
_PYPNG_16_BIT_MODES = {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}


def read_pixels(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """An image's pixels at their stored depth (uint8, uint16, float32, or bool for 1-bit TIFF), as an H x W x C
    array, upright.

    Pillow decodes 16-bit only for grayscale, so TIFF (any depth, any number of bands) goes through tifffile,
    16-bit gray+alpha or color PNG through pypng and DICOM through pydicom (see `_dicom_pixels`); everything else
    through Pillow. Each refuses images over the pixel limit before decoding them.
    """
    name = name or str(source)
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise ImageFileError(f"image not found: {name}") from None
        except OSError as error:  # a folder, no permission...
            raise ImageFileError(f"cannot read image {name}: {error.strerror or error}") from None
    if not data:
        raise ImageFileError(f"cannot read image {name}: the file is empty")
    # DICOM first: its 128-byte preamble may hold a TIFF header (dual-format files), which describes other pixels.
    if _is_dicom(data, name):
        _require_pydicom(name)
        decode = _dicom_pixels
    elif data[:4] in _TIFF_MAGIC:
        decode = _tiff_pixels
    # The PNG header's bit depth (byte 24) and color type (byte 25: 2 RGB, 4 gray+alpha, 6 RGBA).
    elif data[:8] == _PNG_MAGIC and len(data) > 25 and data[24] == 16 and data[25] in (2, 4, 6):
        decode = _png16_pixels
    else:
        return _pil_pixels(open_image(data, name))
    try:
        pixels = decode(data)
        if pixels.ndim not in (2, 3) or pixels.size == 0:
            raise ValueError(f"no 2-D image in it (decoded shape {pixels.shape})")
    except Exception as error:  # noqa: BLE001  (as in open_image: each failure is one bad file)
        raise ImageFileError(f"cannot read image {name}: {_reason(error)}") from None
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def _tiff_pixels(data: bytes) -> np.ndarray:
    with _quiet_tifffile(), tifffile.TiffFile(io.BytesIO(data)) as tiff:
        page = tiff.pages[0]
        check_pixel_count(page.imagewidth, page.imagelength)
        values_per_pixel = tiff.series[0].size // max(1, page.imagewidth * page.imagelength)
        if values_per_pixel > _MAX_BANDS:
            raise ValueError(f"{values_per_pixel} values per pixel: a stack of images, not one of at most {_MAX_BANDS} bands")
        pixels = tiff.asarray()
    if pixels.ndim == 3 and pixels.shape[0] < min(pixels.shape[1:]) and pixels.shape[0] <= _MAX_BANDS:
        pixels = pixels.transpose(1, 2, 0)  # planar (bands first) storage
    return pixels


def _png16_pixels(data: bytes) -> np.ndarray:
    check_pixel_count(*struct.unpack(">II", data[16:24]))  # the width and height of the header (IHDR)
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    pixels = np.empty((height, width * info["planes"]), dtype=np.uint16)  # filled row by row: one copy in memory
    for index, row in enumerate(rows):
        pixels[index] = row
    return pixels.reshape(height, width, info["planes"])


def _is_dicom(head: bytes, name: str) -> bool:
    """Whether a file whose first bytes are `head` (at least 132 of them, when the file has them) is DICOM."""
    magic_at = _DICOM_MAGIC_OFFSET
    return head[magic_at : magic_at + len(_DICOM_MAGIC)] == _DICOM_MAGIC or Path(name).suffix.lower() == ".dcm"


def _require_pydicom(name: str) -> None:
    try:
        import pydicom  # noqa: F401
    except ImportError:
        raise ImageFileError(f"cannot read image {name}: a DICOM file, which needs pydicom: pip install 'cycledeblur[medical]'") from None


def _dicom_pixels(data: bytes) -> np.ndarray:
    """A single-frame DICOM image as displayed: grayscale at 16 bits, color as stored (8 or 16-bit RGB).

    Grayscale goes through the modality transform (RescaleSlope / RescaleIntercept, or a Modality LUT: to Hounsfield
    units for CT), then the file's first intensity window (WindowCenter / WindowWidth, DICOM's linear function), or,
    without one, the full range of the values; MONOCHROME1 (where low values are bright) is inverted. VOI LUT
    sequences and the sigmoid window function are not applied: the linear window (or the full range) is used instead.
    Multi-frame files are refused: `deblur` writes one image per file, and dropping frames silently would lose data.
    """
    import pydicom
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    with warnings.catch_warnings():  # pydicom warns about every non-conformant element; the pixels are what matters
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        if "PixelData" not in dataset:
            raise ValueError("a DICOM file without pixel data (not an image)")
        check_pixel_count(int(dataset.Columns), int(dataset.Rows))
        frames = int(dataset.get("NumberOfFrames") or 1)
        if frames > 1:
            raise ValueError(f"a multi-frame DICOM ({frames} frames); save each frame as its own file first")
        try:
            pixels = dataset.pixel_array
        except (RuntimeError, NotImplementedError) as error:  # a compressed transfer syntax without its decoder
            first, *plugins = str(error).splitlines()
            raise ValueError(f"{first} ({'; '.join(p.strip() for p in plugins)})" if plugins else first) from None
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        return apply_color_lut(pixels, dataset)
    if pixels.ndim == 3:  # RGB (pydicom converts YBR to RGB)
        return pixels
    values = apply_modality_lut(pixels, dataset).astype(np.float64)
    center, width = _dicom_window(dataset, values)
    # DICOM's linear window (PS3.3 C.11.2.1.2.1), to [0, 1].
    shown = np.clip((values - (center - 0.5)) / max(width - 1, 1e-6) + 0.5, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        shown = 1.0 - shown
    return np.round(shown * 65535).astype(np.uint16)


def _dicom_window(dataset, values: np.ndarray) -> tuple[float, float]:
    """The file's first (WindowCenter, WindowWidth), or the window that spans exactly the range of `values`."""
    from pydicom.multival import MultiValue

    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is not None and width is not None:
        # Several windows (e.g. "lung", "bone") are stored as multi-valued elements; the first is the default one.
        center, width = (float(v[0] if isinstance(v, MultiValue) else v) for v in (center, width))
        if width >= 1:
            return center, width
    low, high = float(values.min()), float(values.max())
    # The linear window maps center - 0.5 -/+ (width - 1) / 2 to 0 / 1: these put low at 0 and high at 1.
    return (low + high) / 2 + 0.5, max(high - low, 0.0) + 1.0


# GeoTIFF's georeferencing (where each pixel lies on Earth) and GDAL's no-data / band metadata, by tag code. A
# deblurred scene has the input's size and pixel grid, so the input's tags are the output's.
GEOTIFF_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
# A TIFF tag as tifffile's `imwrite(extratags=...)` takes it: (code, TIFF data type, count, value).
TiffTag = tuple[int, int, int, Any]


class FileMetadata(NamedTuple):
    """What an image made from a file carries over from it."""

    icc_profile: bytes | None  # the embedded color profile: without it, the output would look different
    geotiff_tags: tuple[TiffTag, ...]  # a scene's georeferencing (TIFF only): GIS tools place the output with it


def read_metadata(path: str | Path) -> FileMetadata:
    """The embedded ICC profile and a TIFF's GeoTIFF tags (of its first page), from one read of the file's header;
    no pixels are decoded."""
    try:
        with Path(path).open("rb") as file:
            head = file.read(_DICOM_MAGIC_OFFSET + len(_DICOM_MAGIC))
            # DICOM (some files open with a TIFF header): windowed grayscale or RGB as stored, no profile travels.
            if _is_dicom(head, str(path)):
                return FileMetadata(None, ())
            file.seek(0)
            if head[:4] in _TIFF_MAGIC:
                with _quiet_tifffile(), tifffile.TiffFile(file) as tiff:
                    tags = tiff.pages[0].tags
                    profile = tags.get("InterColorProfile")
                    geotiff = [(t.code, int(t.dtype), t.count, t.value) for t in tags if t.code in GEOTIFF_TAGS]
                    # Stored as UNDEFINED the profile reads as bytes, as BYTE as a tuple of ints.
                    return FileMetadata(bytes(profile.value) if profile else None, tuple(geotiff))
            with Image.open(file) as image:  # lazy: parses the header (where the profile lives), not the pixels
                return FileMetadata(image.info.get("icc_profile") or None, ())
    except FileNotFoundError:
        raise ImageFileError(f"image not found: {path}") from None
    # As in read_pixels: a corrupt header makes the parsers fail in many ways, each one bad file.
    except Exception as error:  # noqa: BLE001
        raise ImageFileError(f"cannot read image {path}: {_reason(error)}") from None


def _pil_pixels(image: Image.Image) -> np.ndarray:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in _PIL_MODE_FOR_PIXELS:
        image = image.convert(_PIL_MODE_FOR_PIXELS[image.mode])
    pixels = np.asarray(image)
    if pixels.dtype.kind in "ui" and pixels.itemsize > 1:  # "I;16*", and mode "I" holding 16-bit values
        pixels = pixels.clip(0, 65535).astype(np.uint16)
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def write_pixels(pixels: np.ndarray, path: str | Path, *, icc_profile: bytes | None = None, geotiff_tags: tuple[TiffTag, ...] = ()) -> None:
    """Write an H x W x C array (uint8, uint16 or float32) keeping its depth, with `icc_profile` embedded if given
    (BMP has no place for one) and `geotiff_tags` in a TIFF: TIFF via tifffile, 16-bit gray+alpha or color PNG via
    pypng, all else via Pillow.

    The file is written under a temporary name and renamed when complete: a run killed while writing leaves no
    half-written image that a rerun (which keeps existing outputs) would take for a finished one.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _WRITTEN_AS:
        raise ImageFileError(f"cannot write image {path}: {suffix} files are read, not written; name it .png")
    if suffix in (".tif", ".tiff"):
        write = functools.partial(_write_tiff, geotiff_tags=geotiff_tags)
    elif suffix == ".png" and pixels.dtype == np.uint16 and pixels.shape[2] in _PYPNG_16_BIT_MODES:
        write = _write_png16
    else:
        write = _write_with_pil
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")  # the same suffix: the writers go by it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(pixels, partial, icc_profile)
        os.replace(partial, path)
    except OSError as error:
        raise ImageFileError(f"cannot write image {path}: {error.strerror or error}") from None
    finally:
        if partial.exists():  # the write failed
            partial.unlink()


def _write_tiff(pixels: np.ndarray, path: Path, icc_profile: bytes | None, geotiff_tags: tuple[TiffTag, ...] = ()) -> None:
    channels = pixels.shape[2]
    # Left to guess, tifffile stores an H x W x C array with C other than 3 or 4 as H pages of W x C pixels.
    tifffile.imwrite(
        path,
        pixels[:, :, 0] if channels == 1 else pixels,
        photometric="rgb" if channels in (3, 4) else "minisblack",
        planarconfig="contig",
        iccprofile=icc_profile,
        extratags=[(code, dtype, count, value, True) for code, dtype, count, value in geotiff_tags],
    )


def _write_png16(pixels: np.ndarray, path: Path, icc_profile: bytes | None) -> None:
    height, width, channels = pixels.shape
    encoded = io.BytesIO()
    png.from_array(pixels.reshape(height, width * channels), _PYPNG_16_BIT_MODES[channels]).write(encoded)
    encoded.seek(0)
    chunks = png.Reader(file=encoded).chunks()  # streamed from the encoding, not copied again

    def with_profile():
        yield next(chunks)  # IHDR
        # pypng has no option for a profile; PNG wants its iCCP chunk (name, 0, method 0, zlib data) before IDAT.
        yield b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)
        yield from chunks

    with path.open("wb") as file:
        png.write_chunks(file, with_profile() if icc_profile else chunks)


def _write_with_pil(pixels: np.ndarray, path: Path, icc_profile: bytes | None) -> None:
    options = {"icc_profile": icc_profile} if icc_profile else {}
    if path.suffix.lower() == ".webp":
        # Pillow's WebP default is lossy, and lossless still alters the color under fully transparent pixels.
        options |= {"lossless": True, "exact": True}
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path, **options)
