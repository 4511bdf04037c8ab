"""Example folders for two domains beyond photographs, from images that ship inside Python packages (no download):

- `medical`: CT, MR and computed-radiography slices from pydicom's and pydicom-data's sample DICOM files, windowed
  and written as 16-bit grayscale PNG (see data_cards/medical-dicom.md);
- `aerial`: PyWavelets' aerial photograph (`pywt.data.aero`) cut into tiles, written as 16-bit TIFF like satellite
  and aerial survey products (see data_cards/aerial.md).

`python -m cycledeblur.domain_examples medical OUT` (or `aerial OUT`) writes sharp images into OUT; `cycledeblur
synth --sharp OUT ...` then makes their blurred counterparts. `python -m cycledeblur.domain_examples dicom SRC OUT`
converts your own DICOM files the same way, for training (which reads folders of PNG, TIFF..., not DICOM).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

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
    args = parser.parse_args(argv)
    try:
        if args.command == "medical":
            written = write_medical_examples(args.out)
        elif args.command == "aerial":
            written = write_aerial_examples(args.out, args.tile_size)
        else:
            written = convert_dicom_folder(args.source, args.out)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
