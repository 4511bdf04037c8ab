"""Example folders for two domains beyond photographs, from images that ship inside Python packages (no download):

- `medical`: CT, MR and computed-radiography slices from pydicom's and pydicom-data's sample DICOM files, windowed
  and written as 16-bit grayscale PNG (see data_cards/medical-dicom.md);
- `aerial`: PyWavelets' aerial photograph (`pywt.data.aero`) cut into tiles, written as 16-bit TIFF like satellite
  and aerial survey products (see data_cards/aerial.md).

`python -m cycledeblur.domain_examples medical OUT` (or `aerial OUT`) writes sharp images into OUT; `cycledeblur
synth --sharp OUT ...` then makes their blurred counterparts. `python -m cycledeblur.domain_examples dicom SRC OUT`
converts your own DICOM files the same way, for training (which reads folders of PNG, TIFF..., not DICOM).
`python -m cycledeblur.domain_examples splits medical OUT` (or `splits aerial OUT`) cuts the examples into train, val
and test bands that share no pixel: a held-out benchmark of the domain (`make demo` adapts to the medical one).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import UserError
from .image_files import list_images, output_name, read_pixels, write_pixels

# Output stem -> sample file; each uncompressed, single-frame and grayscale. "_UNCR": the uncompressed originals of
# NEMA's WG04 sets (the "_UNCI" twins went through lossy JPEG 2000 first).
MEDICAL_SLICES = {
    "ct_small": "CT_small.dcm",  # CT, 128 px (in pydicom itself)
    "mr_small": "MR_small.dcm",  # MR, 64 px (in pydicom itself)
    "ct_693": "693_UNCR.dcm",  # CT, 512 px (pydicom-data)
    "mr2": "MR2_UNCR.dcm",  # MR, 1024 px (pydicom-data)
    "cr_rg3": "RG3_UNCR.dcm",  # computed radiography, MONOCHROME1, 1760 px (pydicom-data)
    "cr_rg1": "RG1_UNCR.dcm",  # computed radiography, MONOCHROME1, 1955 x 1841 px (pydicom-data)
}
AERIAL_TILE_SIZE = 128
SPLIT_LONGEST_SIDE = 512  # px: full-size radiographs are mostly smooth, and a 2-core CPU scores them in seconds
SPLIT_SMALLEST_SIDE = 256  # px: pydicom's 64 and 128 px samples would leave bands narrower than a training crop
FLAT_STD = 0.02  # a piece of black background (scans' borders) scores noise, not deblurring


def dicom_sample(file_name: str) -> Path:
    """The path of one of pydicom's sample files, installed with pydicom or pydicom-data (never downloaded)."""
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        raise UserError("the medical examples need pydicom: pip install 'cycledeblur[medical]' pydicom-data") from None
    path = get_testdata_file(file_name, download=False)
    if path is None:
        raise UserError(f"DICOM sample {file_name} is not installed: pip install pydicom-data")
    return Path(path)


def write_medical_examples(out: str | Path, slices: dict[str, str] = MEDICAL_SLICES) -> list[Path]:
    """Write each DICOM sample of `slices` (stem -> file name) as it is displayed (modality rescale, window,
    MONOCHROME1 inverted: see `image_files.read_pixels`), as a 16-bit grayscale PNG OUT/<stem>.png."""
    written = []
    for stem, file_name in slices.items():
        target = Path(out) / f"{stem}.png"
        write_pixels(read_pixels(dicom_sample(file_name)), target)
        written.append(target)
    return written


def convert_dicom_folder(source: str | Path, out: str | Path) -> list[Path]:
    """Write every DICOM file below `source` as displayed (see `write_medical_examples`), as 16-bit PNG at the same
    relative path under `out`."""
    source = Path(source)
    if not source.is_dir():
        raise UserError(f"DICOM folder not found: {source}")
    files = [path for path in list_images(source) if path.suffix.lower() == ".dcm"]
    if not files:
        raise UserError(f"no .dcm files found in {source}")
    written = []
    for path in files:
        target = Path(out) / output_name(path.relative_to(source))
        write_pixels(read_pixels(path), target)
        written.append(target)
    return written


def write_aerial_examples(out: str | Path, tile_size: int = AERIAL_TILE_SIZE) -> list[Path]:
    """Cut PyWavelets' 512 x 512 aerial photograph into `tile_size` tiles (the rest of a row or column dropped) and
    write each as a 16-bit TIFF OUT/aero_<row>_<column>.tif. The photo has 8 bits: each value v is stored as
    257 v, which maps 255 to 65535, so the tiles hold exactly the photo in the 16-bit storage of survey products."""
    try:
        import pywt.data
    except ImportError:
        raise UserError("the aerial examples need PyWavelets: pip install PyWavelets") from None
    scene = pywt.data.aero().astype(np.uint16) * 257
    rows, columns = scene.shape[0] // tile_size, scene.shape[1] // tile_size
    if rows == 0 or columns == 0:
        raise UserError(f"tile size {tile_size} is larger than the {scene.shape[1]}x{scene.shape[0]} aerial photo")
    written = []
    for row in range(rows):
        for column in range(columns):
            tile = scene[row * tile_size : (row + 1) * tile_size, column * tile_size : (column + 1) * tile_size]
            target = Path(out) / f"aero_{row}_{column}.tif"
            write_pixels(tile[:, :, None], target)
            written.append(target)
    return written


def gray_image(path: Path, longest_side: int = SPLIT_LONGEST_SIDE) -> np.ndarray:
    """A domain example as an H x W float array in [0, 1], downscaled (area average) to `longest_side` px."""
    pixels = read_pixels(path)
    image = pixels[..., 0].astype(np.float32) / np.iinfo(pixels.dtype).max
    scale = longest_side / max(image.shape)
    if scale < 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = np.asarray(Image.fromarray(image, mode="F").resize(size, Image.Resampling.BOX))
    return image


def save_gray_png(image: np.ndarray, path: Path) -> None:
    """8-bit RGB, as photographs: the bundled model and `synth` take the scans as they take any photo."""
    Image.fromarray(np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)).convert("RGB").save(path)


def write_domain_splits(domain: str, out: str | Path, piece_width: int = 0) -> dict[str, int]:
    """OUT/{train,val,test}: each example image of `domain` ("medical" or "aerial"), at most SPLIT_LONGEST_SIDE px,
    cut into bands that share no pixel. The top half is train (its left and right halves: two images for `synth` to
    deal to the unpaired sides), the next quarter val and the last quarter test, each band whole or, with
    `piece_width`, cut into pieces about that wide (flat ones left out): more pairs, to rank by the worst. Returns
    the number of images per split."""
    out = Path(out)
    for split in ("train", "val", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(("train", "val", "test"), 0)
    with tempfile.TemporaryDirectory() as examples:
        for path in DOMAIN_WRITERS[domain](examples):
            image = gray_image(path)
            if min(image.shape) < SPLIT_SMALLEST_SIDE:
                continue
            height, width = image.shape
            half, three_quarters = height // 2, height * 3 // 4
            save_gray_png(image[:half, : width // 2], out / "train" / f"{path.stem}_left.png")
            save_gray_png(image[:half, width // 2 :], out / "train" / f"{path.stem}_right.png")
            counts["train"] += 2
            for split, band in (("val", image[half:three_quarters]), ("test", image[three_quarters:])):
                if not piece_width:
                    save_gray_png(band, out / split / f"{path.stem}.png")
                    counts[split] += 1
                    continue
                for index, piece in enumerate(np.array_split(band, math.ceil(width / piece_width), axis=1)):
                    if piece.std() >= FLAT_STD:
                        save_gray_png(piece, out / split / f"{path.stem}_{index}.png")
                        counts[split] += 1
    return counts


DOMAIN_WRITERS: dict[str, Callable[[str | Path], list[Path]]] = {
    "medical": write_medical_examples,
    "aerial": partial(write_aerial_examples, tile_size=512),  # one image, cut into bands like the scans
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cycledeblur.domain_examples", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("medical", help="CT, MR and CR slices from pydicom-data").add_argument("out", type=Path)
    aerial = commands.add_parser("aerial", help="tiles of PyWavelets' aerial photograph")
    aerial.add_argument("out", type=Path)
    aerial.add_argument("--tile-size", type=int, default=AERIAL_TILE_SIZE, help="in pixels (default: %(default)s)")
    dicom = commands.add_parser("dicom", help="your DICOM files, as displayed, to 16-bit PNG")
    dicom.add_argument("source", type=Path)
    dicom.add_argument("out", type=Path)
    splits = commands.add_parser("splits", help="train / val / test bands of the medical or aerial examples")
    splits.add_argument("domain", choices=sorted(DOMAIN_WRITERS))
    splits.add_argument("out", type=Path)
    splits.add_argument("--piece-width", type=int, default=0, help="cut val and test bands into pieces this wide (px)")
    args = parser.parse_args(argv)
    try:
        if args.command == "medical":
            written = write_medical_examples(args.out)
        elif args.command == "aerial":
            written = write_aerial_examples(args.out, args.tile_size)
        elif args.command == "splits":
            counts = write_domain_splits(args.domain, args.out, args.piece_width)
            print(f"wrote {', '.join(f'{n} {split}' for split, n in counts.items())} images of {args.domain} to {args.out}")
            return 0
        else:
            written = convert_dicom_folder(args.source, args.out)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
