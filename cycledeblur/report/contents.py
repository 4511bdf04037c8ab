"""What a run's report shows, read from its folder: the logged curves, a bounded number of sample grids (and the
reblur generator's kernels beside them), the evaluation, before/after pictures from the delivered generator, and
the resolved config. Pictures are JPEG (PNG for the small kernel pictures) inside the page, sized so that a
200k-step run makes a page of a few MB, not hundreds."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..evaluation import EVALUATION_FILE, read_evaluation
from ..training.tracking import read_metrics
from .curves import grouped, group_svg, series

MAX_GRIDS = 12  # sample grids on the step slider, spread over training, the last one included
GRID_WIDTH = 1024  # px; a grid wider than this is shrunk
COMPARISONS = 4  # before/after pictures
COMPARISON_SIZE = 384  # px, centre crops
_GRID_NAME = re.compile(r"step_(\d+)\.png")


@dataclass
class Grid:
    step: int
    image: str  # data URI
    kernels: str | None = None  # data URI of the kernels drawn at that step, for a run with a kernel generator


@dataclass
class Comparison:
    name: str
    before: str  # data URIs
    after: str


@dataclass
class ReportContents:
    run: Path
    last_step: int
    max_steps: int | None
    mode: str
    curves: dict[str, str] = field(default_factory=dict)  # group -> SVG
    grids: list[Grid] = field(default_factory=list)
    n_sample_steps: int = 0  # grids on disk, of which `grids` is a spread
    evaluation: dict | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    comparisons_note: str = ""  # where the before/after photos come from, or why there are none
    config_text: str = ""


def data_uri(image: Image.Image, jpeg: bool = True) -> str:
    buffer = io.BytesIO()
    if jpeg:
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(buffer, "JPEG", quality=88)
    else:
        image.save(buffer, "PNG", optimize=True)
    return f"data:image/{'jpeg' if jpeg else 'png'};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def array_image(array: np.ndarray) -> Image.Image:
    """A C x H x W float array in [0, 1] as an 8-bit picture (16-bit and float photos are shown at 8 bits)."""
    pixels = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels[..., :3])


def sample_grids(samples: Path) -> tuple[list[Grid], int]:
    """A spread of at most MAX_GRIDS of the run's sample grids, shrunk to GRID_WIDTH, and how many there are."""
    found = sorted((int(match[1]), path) for path in samples.glob("step_*.png") if (match := _GRID_NAME.fullmatch(path.name)))
    picks = sorted({round(i) for i in np.linspace(0, len(found) - 1, min(MAX_GRIDS, len(found)))}) if found else []
    grids = []
    for step, path in (found[i] for i in picks):
        with Image.open(path) as image:
            image.thumbnail((GRID_WIDTH, GRID_WIDTH * 4))
            kernels = path.with_name(f"{path.stem}_kernels.png")
            grids.append(Grid(step, data_uri(image), data_uri(Image.open(kernels), jpeg=False) if kernels.is_file() else None))
    return grids, len(found)


def comparisons(run: Path) -> tuple[list[Comparison], str]:
    """The delivered generator on a few of the run's photos (its evaluated ones first), or why there are none."""
    from ..inference import Deblurrer, resolve_generator
    from ..run_photos import own_photos

    if not (run / "generator").is_dir():
        return [], "The before/after pictures appear when training ends: the delivered generator (generator/) is written then."
    generator = resolve_generator(run)
    photos, source = own_photos(run, generator.in_channels, COMPARISONS, COMPARISON_SIZE, evaluated_first=True)
    deblurrer = Deblurrer(generator)
    pictures = [Comparison(name, data_uri(array_image(photo)), data_uri(array_image(deblurrer.deblur(photo)))) for name, photo in photos]
    return pictures, f"The delivered generator on {source}, {COMPARISON_SIZE} px centre crops."


def read_contents(run: Path) -> ReportContents:
    from ..config import load_config

    config = load_config(run / "config.yaml")
    metrics = read_metrics(run)
    curves = series(metrics)
    contents = ReportContents(
        run=run,
        last_step=int(metrics[-1]["step"]) if metrics else 0,
        max_steps=config.train.max_steps,
        mode=config.train.mode,
        curves={group: group_svg(curves, keys) for group, keys in grouped(curves).items()},
        evaluation=read_evaluation(run / EVALUATION_FILE),
        config_text=(run / "config.yaml").read_text(encoding="utf-8"),
    )
    contents.grids, contents.n_sample_steps = sample_grids(run / "samples")
    contents.comparisons, contents.comparisons_note = comparisons(run)
    return contents
