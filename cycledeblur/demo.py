"""The demo photo set: real photographs bundled with scikit-image and scikit-learn (see data_cards/demo.md).

`python -m cycledeblur.demo OUT` writes OUT/train/ (tiles of the training photos, to be split into unrelated
blurred and sharp halves by `cycledeblur synth`) and OUT/test/ (held-out photos for paired evaluation).
`python -m cycledeblur.demo --figure BLUR DEBLURRED SHARP OUT.png` puts the demo's results side by side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

TRAIN_PHOTOS = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "china", "flower")
TEST_PHOTOS = ("chelsea", "coffee", "stereo_motorcycle", "camera")


def load_photo(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    if name == "stereo_motorcycle":  # a stereo pair: the left view only, the right one is nearly the same photo
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


def quarter_tiles(photo: np.ndarray) -> list[np.ndarray]:
    """The photo cut into a 2x2 grid: more, smaller images let the unpaired split mix content on both sides."""
    height, width = photo.shape[0] // 2, photo.shape[1] // 2
    return [photo[r * height : (r + 1) * height, c * width : (c + 1) * width] for r in (0, 1) for c in (0, 1)]


def write_demo_photos(out: Path) -> dict[str, int]:
    for split in ("train", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
    for name in TRAIN_PHOTOS:
        for index, tile in enumerate(quarter_tiles(load_photo(name))):
            Image.fromarray(tile).save(out / "train" / f"{name}_{index}.png")
    for name in TEST_PHOTOS:
        Image.fromarray(load_photo(name)).save(out / "test" / f"{name}.png")
    return {"train": 4 * len(TRAIN_PHOTOS), "test": len(TEST_PHOTOS)}


def before_after(blurred: Path, deblurred: Path, sharp: Path, out: Path, height: int = 192) -> None:
    """One row per image of `blurred`: blurred | deblurred | sharp (same file names), each `height` px high."""
    rows = []
    for path in sorted(blurred.iterdir()):
        panels = [Image.open(folder / path.name).convert("RGB") for folder in (blurred, deblurred, sharp)]
        width = round(panels[0].width * height / panels[0].height)
        rows.append([panel.resize((width, height), Image.Resampling.LANCZOS) for panel in panels])
    gap = 4
    sheet = Image.new("RGB", (max(sum(p.width for p in row) for row in rows) + 2 * gap, len(rows) * (height + gap)), "white")
    for index, row in enumerate(rows):
        left = 0
        for panel in row:
            sheet.paste(panel, (left, index * (height + gap)))
            left += panel.width + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--figure":
        before_after(*map(Path, sys.argv[2:]))
        print(f"blurred | deblurred | sharp: {sys.argv[5]}")
    else:
        target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo/photos")
        counts = write_demo_photos(target)
        print(f"wrote {counts['train']} training tiles and {counts['test']} test photos to {target}")
