"""Scoring a model: full-reference metrics on paired images, or a no-reference sharpness report.

Paired (blurred and sharp images with the same names): PSNR and SSIM from torchmetrics, and LPIPS when its
backbone weights are already on disk (never downloaded, never faked). Unpaired real photos have no ground truth:
then the report compares the sharpness of input and output (Laplacian variance, gradient energy).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torchmetrics.functional.image import image_gradients, peak_signal_noise_ratio, structural_similarity_index_measure

from .data import list_images, load_image_tensor, pair_name
from .errors import ImageFileError, UserError, first_line
from .tiling import TiledDeblurrer

# The 4-neighbour Laplacian of OpenCV's "variance of the Laplacian" focus measure (kornia's `laplacian` is the 8-neighbour one).
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
# torchvision's AlexNet weights, LPIPS's default backbone: used only if a previous download left them on disk.
_LPIPS_BACKBONE = "alexnet-owt-7be5be79.pth"
EVALUATION_FILE = "evaluation.json"  # RUN/evaluation.json: `cycledeblur evaluate --model RUN ... --json` it


@dataclass
class ImageScores:
    name: str
    input: dict[str, float]
    output: dict[str, float]


@dataclass
class EvaluationReport:
    kind: str  # "paired" or "no-reference"
    images: list[ImageScores] = field(default_factory=list)  # the images scored
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    failed: dict[str, str] = field(default_factory=dict)  # image name -> why it could not be scored
    blur_folder: str = ""  # where the blurred images are (names are relative to it), for `cycledeblur report`

    @contextmanager
    def scoring(self, name: str) -> Iterator[None]:
        """Score image `name` in the block: a file that cannot be used lands in `failed`, and the evaluation goes on."""
        try:
            yield
        except ImageFileError as error:
            self.failed[name] = str(error)

    def mean(self, side: str) -> dict[str, float]:
        scores = [getattr(image, side) for image in self.images]
        return {metric: sum(s[metric] for s in scores) / len(scores) for metric in scores[0]}

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "n_images": len(self.images),
            "input": self.mean("input"),
            "output": self.mean("output"),
            "unavailable": self.unavailable,
            "n_failed": len(self.failed),
            "failed": self.failed,
            "per_image": [{"name": i.name, "input": i.input, "output": i.output} for i in self.images],
            "blur_folder": self.blur_folder,
        }


class FullReferenceMetrics:
    """PSNR, SSIM and (when its weights are on disk) LPIPS of an image against its sharp reference."""

    def __init__(self):
        self.lpips, self.unavailable = None, {}
        backbone = Path(torch.hub.get_dir()) / "checkpoints" / _LPIPS_BACKBONE
        if backbone.is_file():
            from torchmetrics.image import LearnedPerceptualImagePatchSimilarity

            self.lpips = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)
        else:
            self.unavailable["lpips"] = f"backbone weights not found at {backbone} (no download is attempted)"

    def __call__(self, image: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        image, reference = image.unsqueeze(0), reference.unsqueeze(0)
        scores = {
            "psnr": float(peak_signal_noise_ratio(image, reference, data_range=1.0)),
            "ssim": float(structural_similarity_index_measure(image, reference, data_range=1.0)),
        }
        if self.lpips is not None and image.shape[1] == 3:
            scores["lpips"] = float(self.lpips(image, reference))
        return scores


def sharpness_scores(image: torch.Tensor) -> dict[str, float]:
    """No-reference sharpness of a CxHxW image in [0, 1]: both grow as blur is removed (and with noise)."""
    luminance = image.mean(0, keepdim=True).unsqueeze(0)
    dy, dx = image_gradients(luminance)
    return {
        "laplacian_var": float(F.conv2d(luminance, _LAPLACIAN).var()),
        "gradient_energy": float((dx.square() + dy.square()).mean()),
    }


def matching_pairs(blur_dir: Path, sharp_dir: Path) -> list[tuple[str, Path, Path]]:
    """(name, blurred, sharp) for files with the same relative path (extension aside) in both folders."""
    for folder, flag in ((blur_dir, "--blur"), (sharp_dir, "--sharp")):
        if not folder.is_dir():
            raise UserError(f"{flag} {folder}: no such folder")
    sharp_by_name = {pair_name(p, sharp_dir): p for p in list_images(sharp_dir)}
    pairs = []
    for blurred in list_images(blur_dir):
        name = pair_name(blurred, blur_dir)
        if name in sharp_by_name:
            pairs.append((name, blurred, sharp_by_name[name]))
    if not pairs:
        raise UserError(f"no file in {blur_dir} has a counterpart of the same name in {sharp_dir}")
    return pairs


def deblurred(deblurrer: TiledDeblurrer, image: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(deblurrer.deblur(image.numpy()))


def evaluate_pairs(deblurrer: TiledDeblurrer, blur_dir: Path, sharp_dir: Path) -> EvaluationReport:
    report = score_pairs(deblurrer, matching_pairs(blur_dir, sharp_dir))
    report.blur_folder = str(blur_dir.resolve())
    return report


def score_pairs(deblurrer: TiledDeblurrer, pairs: list[tuple[str, Path, Path]]) -> EvaluationReport:
    """Full-reference scores of each (name, blurred, sharp) in `pairs`."""
    metrics = FullReferenceMetrics()
    report = EvaluationReport("paired", unavailable=metrics.unavailable)
    for name, blurred_path, sharp_path in pairs:
        with report.scoring(name):
            blurred = load_image_tensor(blurred_path, deblurrer.channels)
            sharp = load_image_tensor(sharp_path, deblurrer.channels)
            if blurred.shape != sharp.shape:
                raise ImageFileError(f"{blurred_path} is {tuple(blurred.shape)}, {sharp_path} {tuple(sharp.shape)}")
            scores = metrics(blurred, sharp), metrics(deblurred(deblurrer, blurred), sharp)
            report.images.append(ImageScores(name, *scores))
    return report


def evaluate_sharpness(deblurrer: TiledDeblurrer, blur_dir: Path) -> EvaluationReport:
    if not blur_dir.is_dir():
        raise UserError(f"--blur {blur_dir}: no such folder")
    paths = list_images(blur_dir)
    if not paths:
        raise UserError(f"--blur {blur_dir} contains no images")
    report = EvaluationReport("no-reference", blur_folder=str(blur_dir.resolve()))
    for path in paths:
        name = pair_name(path, blur_dir)
        with report.scoring(name):
            blurred = load_image_tensor(path, deblurrer.channels)
            scores = sharpness_scores(blurred), sharpness_scores(deblurred(deblurrer, blurred))
            report.images.append(ImageScores(name, *scores))
    return report


_COLUMNS = {  # metric -> (column title, format spec)
    "psnr": ("PSNR (dB)", ".2f"),
    "ssim": ("SSIM", ".4f"),
    "lpips": ("LPIPS (lower is better)", ".4f"),
    "laplacian_var": ("Laplacian variance", ".3g"),
    "gradient_energy": ("gradient energy", ".3g"),
}


def print_report(report: EvaluationReport, console: Console | None = None) -> None:
    console = console or Console()
    what = "paired images" if report.kind == "paired" else "images, no reference: sharpness"
    table = Table(title=f"Deblurring on {len(report.images)} {what} (mean)")
    inputs, outputs = report.mean("input"), report.mean("output")
    table.add_column("images")
    for metric in inputs:
        table.add_column(_COLUMNS[metric][0], justify="right")
    table.add_row("blurred input", *(format(v, _COLUMNS[m][1]) for m, v in inputs.items()))
    table.add_row("model output", *(format(v, _COLUMNS[m][1]) for m, v in outputs.items()))
    if report.kind == "paired":
        table.add_row("gain", *(format(outputs[m] - inputs[m], "+" + _COLUMNS[m][1]) for m in inputs), style="bold")
    else:
        table.add_row("output / input", *(f"{outputs[m] / max(inputs[m], 1e-12):.2f}x" for m in inputs), style="bold")
    console.print(table)
    if report.failed:
        images = "1 image" if len(report.failed) == 1 else f"{len(report.failed)} images"
        names = ", ".join(report.failed)
        console.print(f"{images} could not be scored (not in the means): {names}", markup=False, soft_wrap=True)
    for metric, reason in report.unavailable.items():
        console.print(f"{metric}: unavailable, {reason}", soft_wrap=True)


def write_json(report: EvaluationReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2))


def write_csv(report: EvaluationReport, path: Path) -> None:
    """One row per image: name, then input_<metric> and output_<metric> for every metric."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = list(report.images[0].input)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", *(f"input_{m}" for m in metrics), *(f"output_{m}" for m in metrics)])
        for image in report.images:
            writer.writerow([image.name, *(image.input[m] for m in metrics), *(image.output[m] for m in metrics)])


def read_evaluation(path: Path) -> dict[str, Any] | None:
    """The `cycledeblur evaluate --json` report at `path`, or None when there is none."""
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        means = (report["input"], report["output"])
        if report["kind"] not in ("paired", "no-reference") or not report["n_images"] or set(means[0]) != set(means[1]):
            raise ValueError("an unknown kind, no images, or other metrics for the input than for the output")
        if not all(isinstance(value, (int, float)) for side in means for value in side.values()):
            raise ValueError("a mean that is not a number")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{path} is not a report of `cycledeblur evaluate --json`: {first_line(error)}") from None
    return report
