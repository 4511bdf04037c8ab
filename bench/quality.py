"""How well cycledeblur deblurs, next to classical baselines, on held-out photos with synthetic blur.

Rerun: python bench/quality.py [--config configs/cpu-fast.yaml] [--set train.max_steps=200 ...] [--out DIR]
       [--paired-config configs/paired-cpu-fast.yaml | --no-paired]
(`--skip-train` scores the run already in OUT/runs/NAME again; `--test-limit N` scores the first N test photos
only, for quick checks; `--device` and `--tile` apply to the model rows.)

The data are built as `make demo` builds them: the demo photos (`cycledeblur.demo`), training tiles blurred into
an unpaired set (seed 0) and held-out photos blurred into a paired test set (seed 1), mixed blur, noise 0.005.
They are reused when OUT already holds them, so a rerun with another config only trains and scores. The config
is trained with `cycledeblur train` in a subprocess (its wall-clock time, start-up and data loading included, is
reported and saved in RUN/timing.json so that `--skip-train` can report it again). Every row then deblurs the
test photos through the same `Deblurrer` and is scored by the same `evaluate_pairs` (PSNR, SSIM):

- blurred input: the test photos as they are;
- unsharp mask, and Wiener deconvolution with one Gaussian kernel for all photos: classical baselines with one
  setting each, chosen from a grid for the best mean PSNR on the test photos themselves (an oracle no real user
  has, so an upper bound for these methods);
- Wiener deconvolution of each photo with the kernel that blurred it (saved by `synth --save-kernels`): what a
  Wiener-based deblurrer could reach with perfect kernel estimates, its regularization oracle-tuned likewise;
- the untrained generator (the config's network and seed, as training starts it; a network that starts as the
  identity scores as the input) and the trained one;
- the upper bound: the paired config (`train.mode: paired`) trained with the same overrides (budget; those of
  model.reblur_generator aside, which it has not) on the same training photos, blurred as pairs (OUT/train-paired, seed 0), in OUT/runs/NAME-paired. The table's last line says
  what fraction of the paired gain the benchmarked model reaches. (A paired `--config` trains on OUT/train-paired
  too; then pass `--no-paired`.)

Writes, beside the run in OUT/runs/NAME/: results.json (every row, per-image PSNR, machine, date, command) and
figure.png (per test photo, crops where the sharp photo has most detail: blurred | unsharp mask | cycledeblur |
sharp); prints the table on the terminal and as Markdown, then the command line that reproduces it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from math import ceil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table
from torch import nn
from torchmetrics.functional.image import image_gradients, peak_signal_noise_ratio
from torchvision.transforms.functional import to_pil_image

from cycledeblur.config import Config, load_config
from cycledeblur.data import load_image_tensor
from cycledeblur.demo import write_demo_photos
from cycledeblur.errors import UserError
from cycledeblur.image_files import read_pixels
from cycledeblur.evaluation import EvaluationReport, FullReferenceMetrics, evaluate_pairs, matching_pairs
from cycledeblur.inference import Deblurrer, resolve_generator
from cycledeblur.models import build_generator
from cycledeblur.models.kernel import convolve, gaussian_logits
from cycledeblur.models.wiener import wiener_deconvolve
from cycledeblur.synth import synthesize_folder

console = Console()
err_console = Console(stderr=True)

NOISE_SIGMA = 0.005  # as in `make demo`
WINDOW_STRIDE = 8  # px between the candidate crop windows of the figure
UPSCALE = 2  # the figure's crops are enlarged (nearest neighbour) so that single pixels can be compared
GAP = 4  # px of white between the figure's columns
CAPTION_HEIGHT = 14  # px above each row of crops, for the default bitmap font
Pair = tuple[str, torch.Tensor, torch.Tensor]  # (name, blurred, sharp), CxHxW in [0, 1]


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The normalised isotropic Gaussian of `sigma` px, k x k with k = 2 * ceil(3 sigma) + 1 (no visible truncation)."""
    size = 2 * ceil(3 * sigma) + 1
    return gaussian_logits(size, sigma).softmax(0).view(size, size)


class UnsharpMask(nn.Module):
    """x + amount * (x - gaussian_blur(x, sigma)) on [-1, 1] images, clamped: sharpening, not deconvolution."""

    size_multiple = 1  # any image size: there is no stride to pad to

    def __init__(self, channels: int, sigma: float, amount: float) -> None:
        super().__init__()
        self.in_channels = channels
        self.amount = amount
        self.register_buffer("kernel", gaussian_kernel(sigma))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        blurred = convolve(images, self.kernel.expand(len(images), -1, -1))
        return (images + self.amount * (images - blurred)).clamp(-1, 1)


class GaussianWiener(nn.Module):
    """Wiener deconvolution of every image with one Gaussian kernel and one gradient-prior weight, clamped."""

    size_multiple = 1

    def __init__(self, channels: int, sigma: float, regularization: float) -> None:
        super().__init__()
        self.in_channels = channels
        self.regularization = regularization
        self.register_buffer("kernel", gaussian_kernel(sigma))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = len(images)
        weights = torch.full((batch,), self.regularization, device=images.device)
        return wiener_deconvolve(images, self.kernel.expand(batch, -1, -1), weights).clamp(-1, 1)


@dataclass(frozen=True)
class Baseline:
    name: str
    module: type[nn.Module]
    grid: dict[str, tuple[float, ...]]  # constructor argument -> values tried


UNSHARP = Baseline(
    "unsharp mask (oracle-tuned)", UnsharpMask, {"sigma": (0.5, 1, 1.5, 2, 3), "amount": (0.25, 0.5, 1, 1.5, 2, 3)}
)
WIENER = Baseline(
    "Wiener deconvolution, one Gaussian kernel (oracle-tuned)",
    GaussianWiener,
    {"sigma": (0.7, 1, 1.5, 2, 2.5), "regularization": (1e-3, 3e-3, 1e-2, 3e-2)},
)
ORACLE_NOTE = "chosen for the best mean PSNR on these test photos themselves (an oracle)"
TRUE_KERNEL_ROW = "Wiener deconvolution, each photo's true kernel (oracle)"
TRUE_KERNEL_REGULARIZATION = (1e-3, 3e-3, 1e-2, 3e-2)


@dataclass
class Row:
    name: str
    scores: dict[str, dict[str, float]]  # test photo -> metric -> value
    params: dict[str, float] = field(default_factory=dict)
    train_seconds: float | None = None
    steps: int | None = None
    note: str = ""

    @classmethod
    def from_report(cls, name: str, report: EvaluationReport, side: str = "output", **details: Any) -> Row:
        return cls(name, {image.name: getattr(image, side) for image in report.images}, **details)

    def mean(self, metric: str) -> float:
        return sum(scores[metric] for scores in self.scores.values()) / len(self.scores)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "psnr": self.mean("psnr"),
            "ssim": self.mean("ssim"),
            "per_image_psnr": {image: scores["psnr"] for image, scores in self.scores.items()},
            "params": self.params,
            "train_seconds": self.train_seconds,
            "steps": self.steps,
            "note": self.note,
        }


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=Path("configs/cpu-fast.yaml"), help="training config (YAML; default %(default)s)"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="config override passed to `cycledeblur train`, e.g. train.max_steps=200 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--paired-config", type=Path, default=Path("configs/paired-cpu-fast.yaml"),
        help="the paired upper bound's config, trained with the same --set overrides, those of "
        "model.reblur_generator aside (default %(default)s)",
    )  # fmt: skip
    parser.add_argument("--no-paired", action="store_true", help="leave out the paired upper bound (half the time)")
    parser.add_argument("--name", help="run name, under OUT/runs/ (default: the config file's stem)")
    parser.add_argument(
        "--out", type=Path, default=Path("bench/out/quality"), help="data, runs and results (default %(default)s)"
    )
    parser.add_argument("--skip-train", action="store_true", help="score the existing run OUT/runs/NAME")
    parser.add_argument("--device", default="cpu", help="device of the model rows: cpu, cuda, cuda:1...")
    parser.add_argument("--tile", type=positive_int, help="model rows: process larger images as tiles (px)")
    parser.add_argument("--crop", type=positive_int, default=160, help="side of the crops in figure.png (px)")
    parser.add_argument(
        "--test-limit", type=positive_int, default=None, metavar="N",
        help="score only the first N test photos (by name), for quick checks; the default scores all",
    )  # fmt: skip
    return parser.parse_args(argv)


def build_data(out: Path) -> Path:
    """The unpaired training set OUT/train, the same photos as pairs OUT/train-paired, and the paired test set
    OUT/test, built as `make demo` builds them; each one is reused when complete."""
    photos = out / "photos"
    sets = {  # folder -> (photos, seed, paired, kernels), the last file synth writes
        out / "train": (photos / "train", 0, False, "blur"),
        out / "train-paired": (photos / "train", 0, True, "blur"),
        out / "test": (photos / "test", 1, True, "kernels"),
    }
    for folder, (source, seed, paired, last) in sets.items():
        if (folder / last).is_dir() and any((folder / last).iterdir()):
            console.print(f"reusing {folder} (delete it to rebuild)")
            continue
        shutil.rmtree(folder, ignore_errors=True)  # a half-built set: synthesize_folder refuses non-empty folders
        if not source.is_dir():
            write_demo_photos(photos)
        synthesize_folder(
            source, folder, kind="mixed", seed=seed, noise_sigma=NOISE_SIGMA, paired=paired, save_kernels=folder.name == "test"
        )
    return out / "test"


def first_pairs(test_dir: Path, limit: int) -> Path:
    """A copy of the first `limit` pairs of the test set (by name), next to it; rebuilt on every call."""
    subset = test_dir.with_name(f"{test_dir.name}-first-{limit}")
    shutil.rmtree(subset, ignore_errors=True)
    for _, blurred, sharp in matching_pairs(test_dir / "blur", test_dir / "sharp")[:limit]:
        kernel = kernel_path(test_dir, sharp.relative_to(test_dir / "sharp"))
        for path, side in ((blurred, "blur"), (sharp, "sharp"), (kernel, "kernels")):
            target = subset / side / path.relative_to(test_dir / side)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return subset


def train_run(config_path: Path, overrides: list[str], run_dir: Path, train_dir: Path, out: Path) -> float:
    """Train into `run_dir` on TRAIN_DIR/blur and TRAIN_DIR/sharp with `cycledeblur train`; returns the wall-clock
    seconds, also saved in timing.json."""
    # A fresh run: checkpoints and samples of an earlier one would otherwise mix into its folder.
    shutil.rmtree(run_dir, ignore_errors=True)
    command = [
        sys.executable, "-m", "cycledeblur", "train", "--config", str(config_path), f"output_dir={run_dir}",
        f"data.blur={train_dir / 'blur'}", f"data.sharp={train_dir / 'sharp'}", *overrides,
    ]  # fmt: skip
    # One compute thread: these tiny networks gain little from a second, which the data worker uses instead.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(out / ".cache")}
    console.print(f"training: {shlex.join(command)}", soft_wrap=True, highlight=False)
    started = time.perf_counter()
    code = subprocess.run(command, env=env).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        raise UserError(f"training failed with exit code {code} (its messages are above)")
    (run_dir / "timing.json").write_text(json.dumps({"train_seconds": seconds}))
    return seconds


def recorded_train_seconds(run_dir: Path) -> float | None:
    """The training time saved by an earlier `train_run`, or None for a run trained some other way."""
    if not (run_dir / "generator").is_dir():
        raise UserError(f"--skip-train: {run_dir} holds no trained generator; run once without --skip-train")
    timing = run_dir / "timing.json"
    return json.loads(timing.read_text())["train_seconds"] if timing.is_file() else None


def load_pairs(test_dir: Path, channels: int) -> list[Pair]:
    return [
        (name, load_image_tensor(blurred, channels), load_image_tensor(sharp, channels))
        for name, blurred, sharp in matching_pairs(test_dir / "blur", test_dir / "sharp")
    ]


def grid_points(grid: dict[str, tuple[float, ...]]) -> Iterator[dict[str, float]]:
    for values in itertools.product(*grid.values()):
        yield dict(zip(grid, values))


def mean_psnr(outputs: list[torch.Tensor], pairs: list[Pair]) -> float:
    # PSNR alone, as FullReferenceMetrics computes it: SSIM would make the searches several times slower.
    scores = [
        float(peak_signal_noise_ratio(output[None], sharp[None], data_range=1.0))
        for output, (_, _, sharp) in zip(outputs, pairs)
    ]
    return sum(scores) / len(scores)


def deblur_all(deblurrer: Deblurrer, pairs: list[Pair]) -> list[torch.Tensor]:
    return [deblurrer(blurred) for _, blurred, _ in pairs]


def oracle_tune(baseline: Baseline, pairs: list[Pair], channels: int) -> dict[str, float]:
    """The grid point with the best mean PSNR on `pairs`, the test photos themselves."""
    return max(
        grid_points(baseline.grid),
        key=lambda params: mean_psnr(deblur_all(Deblurrer(baseline.module(channels, **params)), pairs), pairs),
    )


def baseline_row(baseline: Baseline, pairs: list[Pair], channels: int, test_dir: Path) -> Row:
    params = oracle_tune(baseline, pairs, channels)
    report = score(Deblurrer(baseline.module(channels, **params)), test_dir)
    return Row.from_report(baseline.name, report, params=params, note=ORACLE_NOTE)


def kernel_path(test_dir: Path, relative_name: Path) -> Path:
    """Where `synth --save-kernels` put the kernel that blurred the test photo of this relative name."""
    return (test_dir / "kernels" / relative_name).with_suffix(".png")


def saved_kernel(path: Path) -> torch.Tensor:
    """A kernel written by `synth --save-kernels` (8-bit, scaled to its maximum), normalised to sum to one again."""
    kernel = torch.from_numpy(read_pixels(path)[:, :, 0].astype("float32"))
    return kernel / kernel.sum()


def true_kernel_row(pairs: list[Pair], test_dir: Path) -> Row:
    """Wiener deconvolution of each photo with the very kernel that blurred it: the headroom of perfect kernel
    estimation for a Wiener-based deblurrer. Lambda is oracle-tuned like the baselines'."""
    names = {name: blurred_path for name, blurred_path, _ in matching_pairs(test_dir / "blur", test_dir / "sharp")}
    kernels = [saved_kernel(kernel_path(test_dir, names[name].relative_to(test_dir / "blur"))) for name, _, _ in pairs]

    def restore(regularization: float) -> list[torch.Tensor]:
        weight = torch.tensor([regularization])
        return [
            wiener_deconvolve(blurred[None], kernel[None], weight)[0].clamp(0, 1)
            for (_, blurred, _), kernel in zip(pairs, kernels)
        ]

    best = max(TRUE_KERNEL_REGULARIZATION, key=lambda regularization: mean_psnr(restore(regularization), pairs))
    metrics = FullReferenceMetrics()
    scores = {name: metrics(output, sharp) for (name, _, sharp), output in zip(pairs, restore(best))}
    return Row(TRUE_KERNEL_ROW, scores, params={"regularization": best}, note=ORACLE_NOTE)


def untrained_generator(config: Config) -> nn.Module:
    """The deblurring generator as training starts it: the config's family, options and seed."""
    set_seed(config.train.seed)
    spec, channels = config.model.generator, config.data.channels
    return build_generator(spec.name, in_channels=channels, out_channels=channels, **spec.options)


def score(deblurrer: Deblurrer, test_dir: Path) -> EvaluationReport:
    report = evaluate_pairs(deblurrer, test_dir / "blur", test_dir / "sharp")
    if report.failed:  # rows scored on different photos would not compare
        raise UserError(f"a test photo could not be scored: {next(iter(report.failed.values()))}")
    return report


def busiest_window(sharp: torch.Tensor, crop: int) -> tuple[int, int]:
    """Top-left corner of the crop x crop window with the largest mean gradient magnitude: where blur shows most."""
    luminance = sharp.mean(0, keepdim=True).unsqueeze(0)
    dy, dx = image_gradients(luminance)
    energy = F.avg_pool2d((dx.square() + dy.square()).sqrt(), crop, stride=WINDOW_STRIDE)
    row, col = divmod(int(energy.flatten().argmax()), energy.shape[-1])
    return row * WINDOW_STRIDE, col * WINDOW_STRIDE


def enlarged_crop(image: torch.Tensor, top: int, left: int, crop: int) -> Image.Image:
    window = to_pil_image(image[:, top : top + crop, left : left + crop])
    return window.resize((crop * UPSCALE, crop * UPSCALE), Image.Resampling.NEAREST)


def figure_row(panels: dict[str, torch.Tensor], crop: int, top: int, left: int) -> Image.Image:
    """The panels' crops side by side, each under its caption."""
    side = crop * UPSCALE
    row = Image.new("RGB", (len(panels) * side + (len(panels) - 1) * GAP, CAPTION_HEIGHT + side), "white")
    draw = ImageDraw.Draw(row)
    for index, (caption, image) in enumerate(panels.items()):
        x = index * (side + GAP)
        draw.text((x + 2, 1), caption, fill="black")
        row.paste(enlarged_crop(image, top, left, crop), (x, CAPTION_HEIGHT))
    return row


def save_figure(pairs: list[Pair], unsharp: Deblurrer, model: Deblurrer, crop: int, path: Path) -> None:
    rows = []
    for name, blurred, sharp in pairs:
        if crop > min(sharp.shape[-2:]):
            raise UserError(f"--crop {crop} is larger than test photo {name} ({sharp.shape[-1]}x{sharp.shape[-2]})")
        panels = {
            f"{name}: blurred input": blurred,
            "unsharp mask": unsharp(blurred),
            "cycledeblur": model(blurred),
            "sharp": sharp,
        }
        rows.append(figure_row(panels, crop, *busiest_window(sharp, crop)))
    figure = Image.new("RGB", (rows[0].width, sum(row.height for row in rows)), "white")
    for index, row in enumerate(rows):
        figure.paste(row, (0, index * row.height))
    figure.save(path, optimize=True)


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE) if cpuinfo.is_file() else []
    return {
        "cpu": models[0] if models else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def cells(row: Row, reference: Row) -> list[str]:
    """A row's table cells after its name: PSNR, SSIM, gain over `reference` (the input), train time, steps."""
    psnr = row.mean("psnr")
    gain = "" if row is reference else f"{psnr - reference.mean('psnr'):+.2f}"
    seconds = "" if row.train_seconds is None else f"{row.train_seconds:.0f}"
    return [f"{psnr:.2f}", f"{row.mean('ssim'):.4f}", gain, seconds, "" if row.steps is None else str(row.steps)]


HEADERS = ("PSNR (dB)", "SSIM", "gain over input (dB)", "train time (s)", "steps")


def notes(rows: list[Row]) -> list[str]:
    """One line per row with a note: its chosen settings and the note."""
    lines = []
    for row in rows:
        if row.note:
            settings = [f"{key} {value:g}" for key, value in row.params.items()]
            lines.append(f"{row.name}: " + ", ".join([*settings, row.note]))
    return lines


def print_table(rows: list[Row], title: str) -> None:
    table = Table(title=title)
    table.add_column("method")
    for header in HEADERS:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(row.name, *cells(row, rows[0]))
    console.print(table)
    for line in notes(rows):
        console.print(line, soft_wrap=True, highlight=False)


def markdown_table(rows: list[Row], title: str, results: dict[str, Any]) -> str:
    """The table and its notes for README.md, ending with the machine and date."""
    lines = [f"| {title} | " + " | ".join(HEADERS) + " |", "| --- |" + " ---: |" * len(HEADERS)]
    lines += [f"| {row.name} | " + " | ".join(cells(row, rows[0])) + " |" for row in rows]
    computer = results["machine"]
    where = f"{computer['cpu']} ({computer['cpu_count']} cores), GPU {computer['cuda_device'] or 'none'}"
    return "\n".join([*lines, "", *notes(rows), f"{where}, torch {computer['torch']}, {results['date']}"])


def results_record(rows: list[Row], test_dir: Path, command: str, **extra: Any) -> dict[str, Any]:
    return {
        "rows": [row.to_dict() for row in rows],
        **extra,
        "test_set": str(test_dir),
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


def paired_overrides(overrides: list[str]) -> list[str]:
    """The --set overrides for the paired run (same budget, same networks), less the reblurring generator's:
    paired training has none."""
    return [override for override in overrides if not override.startswith("model.reblur_generator")]


def run_benchmark(args: argparse.Namespace, command: str) -> None:
    name = args.name or args.config.stem
    # A missing run, config or bad override fails at once, not after the data are built.
    mode = load_config(args.config, args.overrides).train.mode
    training_data = {"unpaired": args.out / "train", "paired": args.out / "train-paired"}
    runs = {"main": (args.config, args.out / "runs" / name, training_data[mode])}
    if not args.no_paired:
        runs["paired"] = (args.paired_config, args.out / "runs" / f"{name}-paired", training_data["paired"])
    overrides = {"main": args.overrides, "paired": paired_overrides(args.overrides)}
    train_seconds = {}
    for kind, (config_path, run_dir, _) in runs.items():
        if args.skip_train:
            train_seconds[kind] = recorded_train_seconds(run_dir)
        else:
            load_config(config_path, overrides[kind])
    test_dir = build_data(args.out)
    if args.test_limit is not None:
        test_dir = first_pairs(test_dir, args.test_limit)
    if not args.skip_train:
        for kind, (config_path, run_dir, train_dir) in runs.items():
            train_seconds[kind] = train_run(config_path, overrides[kind], run_dir, train_dir, args.out)
    run_dir = runs["main"][1]
    config = load_config(run_dir / "config.yaml")  # what the run trained: the config file with every override
    channels, steps = config.data.channels, config.train.max_steps
    pairs = load_pairs(test_dir, channels)

    # The baselines run on the CPU on whole images: tiles would change what the oracle tunes, and they are cheap.
    unsharp, wiener = (baseline_row(baseline, pairs, channels, test_dir) for baseline in (UNSHARP, WIENER))
    untrained = Deblurrer(untrained_generator(config), device=args.device, tile=args.tile)
    model = Deblurrer(resolve_generator(run_dir), device=args.device, tile=args.tile)
    model_report = score(model, test_dir)
    rows = [
        # evaluate_pairs scores the unprocessed input beside every output: any report holds the input row.
        Row.from_report("blurred input", model_report, side="input"),
        unsharp,
        wiener,
        true_kernel_row(pairs, test_dir),
        Row.from_report("cycledeblur, untrained (step 0)", score(untrained, test_dir), steps=0),
        Row.from_report(
            f"cycledeblur {mode} ({name}, {steps} steps)", model_report,
            train_seconds=train_seconds["main"], steps=steps,
        ),
    ]  # fmt: skip
    if "paired" in runs:
        paired_dir = runs["paired"][1]
        paired_steps = load_config(paired_dir / "config.yaml").train.max_steps
        paired_model = Deblurrer(resolve_generator(paired_dir), device=args.device, tile=args.tile)
        rows.append(
            Row.from_report(
                f"cycledeblur paired, upper bound ({paired_dir.name}, {paired_steps} steps)", score(paired_model, test_dir),
                train_seconds=train_seconds["paired"], steps=paired_steps,
                note="trained on the same training photos as blurred/sharp pairs (train.mode paired)",
            )
        )  # fmt: skip

    title = f"{len(pairs)} held-out photos ({', '.join(name for name, _, _ in pairs)}), synthetic mixed blur"
    share = None
    if "paired" in runs:  # the main model's PSNR gain over the input, as a fraction of the paired model's
        model_gain, paired_gain = (row.mean("psnr") - rows[0].mean("psnr") for row in rows[-2:])
        share = model_gain / paired_gain if paired_gain > 0 else None
    results = results_record(rows, test_dir, command, share_of_paired_gain=share)
    # Beside the run they score, so that benchmarks of several configs in one OUT keep their own.
    results_path, figure_path = run_dir / "results.json", run_dir / "figure.png"
    results_path.write_text(json.dumps(results, indent=2))
    save_figure(pairs, Deblurrer(UnsharpMask(channels, **unsharp.params)), model, args.crop, figure_path)

    print_table(rows, title)
    console.print(f"results: {results_path}, figure: {figure_path}", highlight=False)
    print(f"\n{markdown_table(rows, title, results)}\n")
    if share is not None:
        print(f"{name} / paired PSNR gain over the input: {share:.0%}\n")
    print(command)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        run_benchmark(args, shlex.join(["python", "bench/quality.py", *argv]))
    except UserError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
