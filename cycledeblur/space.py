"""`cycledeblur push --space USER/NAME`: the app (`cycledeblur.app`) as a Hugging Face Space.

A Space is a repo the Hub runs: `app.py`, `requirements.txt`, and a README whose metadata names the SDK, its
version and the app file. The Space carries this package's source (so it runs whether or not the installed
version is published), and either a model folder (`model/`, from a local run or generator folder) or the id of a
pushed model, which it loads from the Hub when it starts.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from pathlib import Path

import gradio
from huggingface_hub import HfApi

from .errors import UserError
from .models import load_generator
from .models.hub import CONFIG_NAME, WEIGHTS_NAME, hub_errors
from .pretrained import BUNDLED_MODELS
from .publish import check_repo_id

SPACE_MODEL_FOLDER = "model"
SPACE_TILE = 512  # px: a free CPU Space deblurs a large photo in tiles, with bounded memory
PACKAGE = Path(__file__).resolve().parent
# The app, and DICOM uploads; the rest of the optional dependencies serve training and export.
SPACE_EXTRAS = ("app", "medical")

APP_TEMPLATE = '''"""cycledeblur's deblurring app for {label}: upload a blurred image, get it deblurred."""

from cycledeblur.app import build_app
from cycledeblur.inference import Deblurrer, resolve_generator

MODEL = {model!r}
build_app(Deblurrer(resolve_generator(MODEL), tile={tile}), {label!r}).launch()
'''

README_TEMPLATE = """---
title: {title}
emoji: 🔍
colorFrom: blue
colorTo: gray
sdk: gradio
sdk_version: {sdk_version}
app_file: app.py
pinned: false
license: apache-2.0
{models}---

# {title}

Deblur a photo in the browser with cycledeblur{model_line}. Upload a
blurred image (PNG, JPEG, TIFF including 16-bit, WebP, BMP, DICOM); the slider compares it with the deblurred one,
which downloads at the input's size and depth. Large images are processed as {tile} px tiles.

On your machine, with cycledeblur installed with its `app` extra: `cycledeblur app --model {model}`.
"""


def requirements() -> list[str]:
    """This package's dependencies with the Space's extras, as pip requirement lines."""
    lines = []
    for requirement in importlib.metadata.requires("cycledeblur") or []:
        spec, _, marker = requirement.partition(";")
        extra = marker.split("==")[-1].strip().strip("'\"") if "extra" in marker else None
        if extra is None or extra in SPACE_EXTRAS:
            lines.append(spec.strip())
    return lines


def space_model(model: str) -> tuple[Path | None, str]:
    """The generator folder to copy into the Space (None: load `model` by name), and the name app.py loads."""
    path = Path(model).expanduser()
    if path.is_dir():
        folder = path / "generator" if (path / "generator").is_dir() else path
        load_generator(folder)  # what goes up must load; names the folder if it cannot
        return folder, SPACE_MODEL_FOLDER
    if model in BUNDLED_MODELS:
        return None, model
    check_repo_id(model, "--model")  # a Hub model id, loaded by the Space when it starts
    return None, model


def stage_space(model: str, folder: Path, space_id: str) -> list[str]:
    """Write the Space `push_space` uploads into `folder` (new or empty); returns its files, relative to it."""
    check_repo_id(space_id, "--space")
    if folder.exists() and any(folder.iterdir()):
        raise UserError(f"{folder} is not empty: stage into a new or empty folder")
    generator_folder, loaded = space_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    label = space_id.split("/")[1] if generator_folder else loaded
    if generator_folder:
        (folder / SPACE_MODEL_FOLDER).mkdir()
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(generator_folder / name, folder / SPACE_MODEL_FOLDER / name)
    shutil.copytree(PACKAGE, folder / "cycledeblur", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (folder / "app.py").write_text(APP_TEMPLATE.format(label=label, model=loaded, tile=SPACE_TILE), encoding="utf-8")
    (folder / "requirements.txt").write_text("\n".join(requirements()) + "\n", encoding="utf-8")
    hub_model = generator_folder is None and loaded not in BUNDLED_MODELS
    readme = README_TEMPLATE.format(
        title=space_id.split("/")[1],
        sdk_version=gradio.__version__,
        models=f"models:\n- {loaded}\n" if hub_model else "",
        model_line=f" and the model [{loaded}](https://huggingface.co/{loaded})" if hub_model else f" and the model `{label}`",
        model=loaded if not generator_folder else "model/",
        tile=SPACE_TILE,
    )
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def push_space(model: str, space_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create or update the Space `space_id` (one commit); returns its URL."""
    with tempfile.TemporaryDirectory(prefix="cycledeblur-space-") as staging:
        files = stage_space(model, Path(staging), space_id)
        api = HfApi(token=token)
        with hub_errors(f"pushing to the Hub Space {space_id} failed"):
            url = api.create_repo(space_id, private=private, exist_ok=True, repo_type="space", space_sdk="gradio")
            api.upload_folder(
                repo_id=space_id,
                folder_path=staging,
                repo_type="space",
                commit_message=f"cycledeblur app ({len(files)} files)",
                delete_patterns=["cycledeblur/*", f"{SPACE_MODEL_FOLDER}/*"],  # what an earlier push left that this one replaces
            )
    return str(url)
