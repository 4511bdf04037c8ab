"""Paired evaluation: PSNR and SSIM (torchmetrics) of the blurred input and of the model output vs. the sharp image."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .data import list_images, load_image_tensor
from .errors import UserError
from .inference import Deblurrer


@dataclass
class PairScores:
    name: str
    input: dict[str, float]
    output: dict[str, float]


@dataclass
class EvaluationReport:
    pairs: list[PairScores] = field(default_factory=list)

    def mean(self, side: str) -> dict[str, float]:
        scores = [getattr(pair, side) for pair in self.pairs]
        return {metric: sum(s[metric] for s in scores) / len(scores) for metric in scores[0]}

    def to_dict(self) -> dict:
        return {
            "n_images": len(self.pairs),
            "input": self.mean("input"),
            "output": self.mean("output"),
            "per_image": [{"name": p.name, "input": p.input, "output": p.output} for p in self.pairs],
        }


def image_scores(image: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    image, reference = image.unsqueeze(0), reference.unsqueeze(0)
    return {
        "psnr": float(peak_signal_noise_ratio(image, reference, data_range=1.0)),
        "ssim": float(structural_similarity_index_measure(image, reference, data_range=1.0)),
    }


def matching_pairs(blur_dir: Path, sharp_dir: Path) -> list[tuple[str, Path, Path]]:
    """(name, blurred, sharp) for files with the same relative path (extension aside) in both folders."""
    for folder, flag in ((blur_dir, "--blur"), (sharp_dir, "--sharp")):
        if not folder.is_dir():
            raise UserError(f"{flag} {folder}: no such folder")
    sharp_by_name = {p.relative_to(sharp_dir).with_suffix("").as_posix(): p for p in list_images(sharp_dir)}
    pairs = []
    for blurred in list_images(blur_dir):
        name = blurred.relative_to(blur_dir).with_suffix("").as_posix()
        if name in sharp_by_name:
            pairs.append((name, blurred, sharp_by_name[name]))
    if not pairs:
        raise UserError(f"no file in {blur_dir} has a counterpart of the same name in {sharp_dir}")
    return pairs


def evaluate_pairs(deblurrer: Deblurrer, blur_dir: Path, sharp_dir: Path, channels: int) -> EvaluationReport:
    report = EvaluationReport()
    for name, blurred_path, sharp_path in matching_pairs(blur_dir, sharp_dir):
        blurred = load_image_tensor(blurred_path, channels)
        sharp = load_image_tensor(sharp_path, channels)
        if blurred.shape != sharp.shape:
            raise UserError(f"{blurred_path} is {tuple(blurred.shape)} but {sharp_path} is {tuple(sharp.shape)}")
        report.pairs.append(PairScores(name, image_scores(blurred, sharp), image_scores(deblurrer(blurred), sharp)))
    return report


def print_report(report: EvaluationReport, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"Deblurring quality on {len(report.pairs)} paired images (mean)")
    table.add_column("images")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    inputs, outputs = report.mean("input"), report.mean("output")
    table.add_row("blurred input", f"{inputs['psnr']:.2f}", f"{inputs['ssim']:.4f}")
    table.add_row("model output", f"{outputs['psnr']:.2f}", f"{outputs['ssim']:.4f}")
    table.add_row(
        "gain", f"{outputs['psnr'] - inputs['psnr']:+.2f}", f"{outputs['ssim'] - inputs['ssim']:+.4f}", style="bold"
    )
    console.print(table)


def write_json(report: EvaluationReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2))
