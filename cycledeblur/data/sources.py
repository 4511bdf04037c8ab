"""Image collections as Hugging Face datasets: a local folder (the `imagefolder` builder) or a Hub dataset id."""

from __future__ import annotations

import re
from pathlib import Path

import datasets

from ..errors import UserError
from ..image_files import list_images

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def load_image_source(source: str, *, split: str = "train", image_column: str = "image", key: str = "data") -> datasets.Dataset:
    """Load `source` as a dataset whose `image_column` holds undecoded images ({"path", "bytes"}).

    Decoding is left to the training data pipeline so that every mode (16-bit, palette, CMYK...) is converted
    the same way and a bad file can be reported by name. `key` names the config key in error messages.
    """
    if not source:
        raise UserError(f"{key} is not set: give a folder of images or a Hub dataset id")
    path = Path(source).expanduser()
    if path.exists():
        dataset = _load_folder(path, split, key)
    elif _HUB_ID.fullmatch(source) and not source.startswith("."):
        dataset = _load_hub(source, split, key)
    else:
        raise UserError(f"{key}={source!r}: no such folder (and not a Hub dataset id)")
    if image_column not in dataset.column_names:
        raise UserError(
            f"{key}={source!r} has no column {image_column!r} (set data.image_column); columns: {', '.join(dataset.column_names)}"
        )
    if not isinstance(dataset.features[image_column], datasets.Image):
        raise UserError(f"{key}={source!r}: column {image_column!r} does not hold images")
    if len(dataset) == 0:
        raise UserError(f"{key}={source!r}: split {split!r} is empty")
    return dataset.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))


def _load_folder(path: Path, split: str, key: str) -> datasets.Dataset:
    if not path.is_dir():
        raise UserError(f"{key}={str(path)!r} is a file; give a folder of images")
    images = list_images(path)
    if not images:
        raise UserError(f"{key}={str(path)!r} contains no images (looked for png, jpg, tif, bmp, webp, dcm)")
    dicom = [image for image in images if image.suffix.lower() == ".dcm"]
    if dicom:  # the `imagefolder` builder would skip them, silently or with an error about an empty split
        raise UserError(
            f"{key}={str(path)!r} holds DICOM files (e.g. {dicom[0].name}), which training does not read: convert "
            f"them to 16-bit PNG with `python -m cycledeblur.domain_examples dicom {path} OUT` and train on OUT"
        )
    splits = datasets.load_dataset("imagefolder", data_dir=str(path))
    # A plain folder of images is one "train" split; a folder with train/ and test/ subfolders has several.
    if split in splits:
        return splits[split]
    if len(splits) == 1:
        return next(iter(splits.values()))
    raise UserError(f"{key}={str(path)!r} has no split {split!r}; splits: {', '.join(splits)} (set data.split)")


def _load_hub(repo_id: str, split: str, key: str) -> datasets.Dataset:
    try:
        return datasets.load_dataset(repo_id, split=split)
    except ValueError as error:  # e.g. an unknown split
        raise UserError(f"{key}={repo_id!r}: {error}") from None
    except (OSError, datasets.exceptions.DatasetNotFoundError) as error:
        raise UserError(f"{key}={repo_id!r} is not a local folder and could not be loaded from the Hub: {error}") from None
