"""Models bundled with the package, usable by name: `cycledeblur deblur photo.jpg --out sharp/` runs `general`,
the default `--model`, and `model.init_from=general` fine-tunes it.

Each is a folder here: config.json and model.safetensors (loaded like any generator folder, strictly), README.md
(its model card) and bundle.json (how it was made: what `cycledeblur models` shows). `python bench/bundle.py RUN
--name NAME` fills a folder from a finished training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from huggingface_hub import constants

from ..errors import UserError
from ..json_files import read_json_object

BUNDLED_MODELS = ("general",)
DEFAULT_MODEL = "general"
MODEL_CARD = "README.md"
BUNDLE_INFO = "bundle.json"
WEIGHTS_FILES = (constants.CONFIG_NAME, constants.SAFETENSORS_SINGLE_FILE)
BUNDLE_FILES = (*WEIGHTS_FILES, MODEL_CARD, BUNDLE_INFO)
PRETRAINED_ROOT = Path(__file__).resolve().parent


class BundleInfo(TypedDict):
    """bundle.json: written by bench/bundle.py, read by `cycledeblur models`."""

    name: str
    family: str
    parameters: int
    weights_bytes: int
    corpus_command: str
    training_command: str
    steps: int
    delivered: str  # which weights of the run ship (the end of training, or a checkpoint chosen on validation)
    wall_seconds: float
    wall_time_method: str  # how `wall_seconds` was derived from the run folder
    machine: str
    date: str  # the day training ended, YYYY-MM-DD
    data: str  # the training photos' sources and licences, and where their data card is
    benchmark: str | None  # a Markdown table of measured quality, when one was given
    bundle_command: str


def bundled_folder(name: str, files: tuple[str, ...] = WEIGHTS_FILES) -> Path:
    """The folder of the bundled model `name`, checked to hold `files`."""
    if name not in BUNDLED_MODELS:
        raise UserError(f"{name!r} is not a bundled model; bundled: {', '.join(BUNDLED_MODELS)}")
    folder = PRETRAINED_ROOT / name
    missing = [file for file in files if not (folder / file).is_file()]
    if missing:
        raise UserError(
            f"the bundled model {name} is incomplete: {folder} has no {' and no '.join(missing)} (reinstall"
            f" cycledeblur; in a source checkout: python bench/bundle.py RUN --name {name})"
        )
    return folder


def resolve_model(model: str | Path) -> str | Path:
    """`model` unchanged, or the folder of the bundled model it names. An existing local path of that name wins:
    a run folder called `general` in the working directory stays the user's own."""
    if str(model) in BUNDLED_MODELS and not Path(model).exists():
        return bundled_folder(str(model))
    return model


def bundle_info(name: str) -> BundleInfo:
    """The bundle.json of the bundled model `name`, whose folder must be complete."""
    path = bundled_folder(name, BUNDLE_FILES) / BUNDLE_INFO
    info = read_json_object(path)
    missing = [key for key in BundleInfo.__annotations__ if key not in info]
    if missing:
        raise UserError(f"{path} lacks keys {', '.join(missing)}: rewrite it with python bench/bundle.py RUN --name {name}")
    return info
