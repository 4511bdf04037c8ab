"""The photos a model brings along, for the checks and pictures made after training (`export`'s parity check,
the report's before/after): a run's own blurred photos while they are on this machine, else the package's sample
photographs (the demo's held-out ones, installed with scikit-image and scikit-learn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import load_config
from .evaluation import EVALUATION_FILE, read_evaluation
from .image_arrays import centre_crop, pixels_as_array, read_array
from .image_files import list_images

Photos = list[tuple[str, np.ndarray]]  # (name, C x H x W float32 in [0, 1])


def spread(items: list, count: int) -> list:
    """`count` of `items`, every n-th from the first."""
    return items[:: max(1, len(items) // count)][:count]


def folder_photos(folder: Path, channels: int, count: int, size: int) -> Photos:
    """`count` images spread over `folder` (name order), centre-cropped to at most `size` x `size`."""
    paths = spread(list_images(folder), count)
    return [(path.relative_to(folder).as_posix(), centre_crop(read_array(path, channels), size)) for path in paths]


def sample_photos(channels: int, count: int, size: int) -> Photos:
    """`count` of the package's sample photographs, centre-cropped like `folder_photos`."""
    from .demo import TEST_PHOTOS, load_photo

    photos = []
    for name in TEST_PHOTOS[:count]:
        pixels = load_photo(name)
        array, _ = pixels_as_array(pixels.reshape(*pixels.shape[:2], -1), channels, name)  # gray ones have no channel axis
        photos.append((name, centre_crop(array, size)))
    return photos


def own_photos(model: str | Path, channels: int, count: int, size: int, *, evaluated_first: bool = False) -> tuple[Photos, str]:
    """`count` photos `model` brings and where they come from: with `evaluated_first` the images of the run's
    evaluation.json; then its config's `data.blur`, `data.val_blur`; else the sample photos."""
    run = Path(model).expanduser()
    folders: list[tuple[str, str]] = []
    evaluation = read_evaluation(run / EVALUATION_FILE) if evaluated_first else None
    if evaluation and evaluation.get("blur_folder"):
        folders.append((f"the images of {EVALUATION_FILE}", evaluation["blur_folder"]))
    if (run / "config.yaml").is_file():
        data = load_config(run / "config.yaml").data
        folders += [("the run's data.blur", data.blur), ("the run's data.val_blur", data.val_blur)]
    for label, folder in folders:
        if folder and Path(folder).is_dir() and list_images(folder):
            return folder_photos(Path(folder), channels, count, size), f"{label} ({folder})"
    gone = f"{folders[0][0]} ({folders[0][1]}) is not on this machine; " if folders else ""
    return sample_photos(channels, count, size), gone + "the package's sample photos (scikit-image, scikit-learn)"
