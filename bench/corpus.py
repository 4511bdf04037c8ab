"""The photo corpus of the general deblurrer and of the quality benchmark: train / val / test splits of real
photographs that no test photo shares with training (data card: data_cards/general-corpus.md).

Rerun: python bench/corpus.py [OUT] [--debs DIR] [--splits train val test]

- train: photographs from Debian's `plasma-workspace-wallpapers` (fetched with `apt-get download`, unpacked with
  `dpkg-deb -x`; nothing is installed), each downscaled by 2 and 3 (which also averages away their JPEG blocks)
  and cut into 384 px tiles;
- val (every choice: steps, levers, checkpoint) and test (the reported table only): photographs bundled with
  scikit-image, scikit-learn and PyWavelets, plus a few wallpaper photographs, each a different photo, downscaled
  to at most 512 px on the longer side.

Without `--debs`, the package is downloaded into OUT/.debs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

WALLPAPER_PACKAGE = "plasma-workspace-wallpapers"
WALLPAPER_ROOT = "usr/share/wallpapers"
# The photographs of the package (the rest is artwork), each at its largest size.
WALLPAPER_PHOTOS = {
    "BytheWater": "2560x1600.jpg",
    "ColdRipple": "2560x1600.jpg",
    "ColorfulCups": "2560x1600.jpg",
    "DarkestHour": "2560x1600.jpg",
    "EveningGlow": "2560x1600.jpg",
    "FallenLeaf": "2560x1600.jpg",
    "Grey": "2560x1600.jpg",
    "Kite": "2560x1600.jpg",
    "OneStandsOut": "2560x1600.jpg",
    "Path": "2560x1600.jpg",
    "summer_1am": "2560x1600.jpg",
}
SPLITS = {
    "train": [
        f"wallpaper:{name}"
        for name in ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "FallenLeaf", "OneStandsOut", "Path", "summer_1am")
    ],
    "val": ["skimage:hubble_deep_field", "skimage:cell", "skimage:microaneurysms", "wallpaper:Grey", "wallpaper:EveningGlow"],
    "test": [
        "skimage:astronaut",
        "skimage:camera",
        "skimage:chelsea",
        "skimage:coffee",
        "skimage:rocket",
        "skimage:stereo_motorcycle",
        "skimage:immunohistochemistry",
        "skimage:retina",
        "skimage:brick",
        "skimage:grass",
        "skimage:gravel",
        "skimage:coins",
        "skimage:moon",
        "skimage:page",
        "skimage:text",
        "sklearn:china",
        "sklearn:flower",
        "pywt:aero",
        "pywt:ascent",
        "wallpaper:Kite",
    ],
}
TRAIN_SCALES = (2, 3)
TILE = 384
EVAL_MAX_SIDE = 512


def load_sample(source: str, name: str) -> np.ndarray:
    """A photograph bundled with a Python package, as uint8 H x W (x 3)."""
    if source == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if source == "pywt":
        import pywt.data

        return np.clip(getattr(pywt.data, name)(), 0, 255).astype(np.uint8)
    import skimage.data

    photo = getattr(skimage.data, name)()
    return photo[0] if name == "stereo_motorcycle" else photo  # a stereo pair: the left view


def unpack_wallpapers(debs: Path) -> Path:
    """Download (unless already in `debs`) and unpack the wallpaper package; returns the unpacked root."""
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{WALLPAPER_PACKAGE}_*.deb")):
        subprocess.run(["apt-get", "download", WALLPAPER_PACKAGE], cwd=debs, check=True)
    (deb,) = debs.glob(f"{WALLPAPER_PACKAGE}_*.deb")
    root = debs / "unpacked"
    if not (root / WALLPAPER_ROOT).is_dir():
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def load_photo(entry: str, wallpapers: Path | None) -> Image.Image:
    source, name = entry.split(":")
    if source == "wallpaper":
        assert wallpapers is not None
        return Image.open(wallpapers / WALLPAPER_ROOT / name / "contents" / "images" / WALLPAPER_PHOTOS[name]).convert("RGB")
    return Image.fromarray(load_sample(source, name))


def downscaled(photo: Image.Image, factor: float) -> Image.Image:
    size = (round(photo.width / factor), round(photo.height / factor))
    return photo if factor <= 1 else photo.resize(size, Image.Resampling.BOX)


def write_train(photo: Image.Image, name: str, out: Path) -> int:
    count = 0
    for scale in TRAIN_SCALES:
        small = downscaled(photo, scale)
        for top in range(0, small.height - TILE + 1, TILE):
            for left in range(0, small.width - TILE + 1, TILE):
                small.crop((left, top, left + TILE, top + TILE)).save(out / f"{name}_s{scale}_{top}_{left}.png")
                count += 1
    return count


def write_eval(photo: Image.Image, name: str, out: Path) -> int:
    photo = downscaled(photo, max(photo.size) / EVAL_MAX_SIDE)
    # Even sides: every generator's size multiple is then a matter of padding a few pixels, not of odd sizes.
    photo.crop((0, 0, photo.width // 2 * 2, photo.height // 2 * 2)).save(out / f"{name}.png")
    return 1


def build(out: Path, debs: Path | None, splits: list[str]) -> dict[str, int]:
    needs_wallpapers = any(entry.startswith("wallpaper:") for split in splits for entry in SPLITS[split])
    wallpapers = unpack_wallpapers(debs or out / ".debs") if needs_wallpapers else None
    counts = {}
    for split in splits:
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        writer = write_train if split == "train" else write_eval
        counts[split] = sum(writer(load_photo(entry, wallpapers), entry.split(":")[1], folder) for entry in SPLITS[split])
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="bench/out/corpus", type=Path)
    parser.add_argument("--debs", type=Path, help="folder holding (or to receive) the wallpaper .deb")
    parser.add_argument("--splits", nargs="+", choices=list(SPLITS), default=list(SPLITS))
    args = parser.parse_args(argv)
    counts = build(args.out, args.debs, args.splits)
    print(", ".join(f"{split}: {count} images" for split, count in counts.items()), f"in {args.out}")
    print("rerun: python bench/corpus.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
