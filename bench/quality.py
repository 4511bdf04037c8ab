"""How well cycledeblur deblurs, next to classical baselines, on held-out photos under fixed synthetic blurs.

Rerun: python bench/quality.py [--split val|test] [--methods ...] [--seeds 0 1 2] [--set KEY=VALUE ...] [--limit N]

Photos: one split of the corpus of bench/corpus.py (`--corpus`, built if missing). The val split serves every
choice (steps, recipes, levers); the test split only reports. Nothing here is tuned on the scored photos, except
the columns marked "oracle": their setting is picked per blur row for the best mean PSNR on those very photos, an
upper bound that no user has.

Rows: each a fixed, seeded degradation of every photo of the split (`--limit N` scores the first N photos only),
blurred with the project's kernel generators and blur/noise code, noise sigma 0.005, rounded to 8 bits:
camera shake, Gaussian and defocus blur, each mild and strong; the 100 PSFs of the PyPI package `pyblur`, kernels
that the project's generators did not draw; and the sharp photos themselves (do no harm: any change costs PSNR).
Each row is saved as OUT/sets/ROW (blur/, sharp/ with the same names, kernels/ as .npy) and reused while its
recipe and photos are unchanged.

Columns, all scored the same way (FullReferenceMetrics: PSNR and SSIM on full images):
- the blurred input;
- unsharp mask, and Wiener deconvolution with one Gaussian kernel (oracle: one setting per row from a small grid);
- Wiener deconvolution with each image's true kernel (oracle: its regularisation);
- the bundled general model (`--general`; given several, e.g. one run of its recipe per seed, the column is their
  mean and standard deviation);
- unpaired from scratch: configs/cpu-fast.yaml, trained by `cycledeblur train` on the corpus's train tiles, half
  of them blurred (mixed blur, noise 0.005) and the other half sharp, so that no pair exists;
- the paired upper bound: configs/paired-cpu-fast.yaml on the same tiles blurred as pairs, with the same budget;
- UNIT from scratch: configs/unit-cpu-fast.yaml (`train.mode: unit`) on the unpaired tiles, with the same budget.
The trained columns run once per `--seeds` value (`train.seed=N`) and report the mean and the standard deviation
over seeds. Their runs live in RUNS (shared by both splits) and are reused when finished (`--retrain` forces).

Writes OUT/results.json (every number, per image too, with the machine, date and command; the PSNR of an
unchanged image is Infinity) and OUT/figure.png (crops where the sharp photo has most detail: input | the first
general model | sharp); prints the tables in Markdown, then the command that reruns them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import itertools
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torchmetrics.functional.image import image_gradients, peak_signal_noise_ratio
from torchvision.transforms.functional import to_pil_image

from cycledeblur.config import Config, config_to_dict, load_config
from cycledeblur.data import load_image_tensor
from cycledeblur.errors import UserError
from cycledeblur.evaluation import FullReferenceMetrics
from cycledeblur.image_files import list_images
from cycledeblur.inference import Deblurrer, resolve_generator
from cycledeblur.models.kernel import convolve, gaussian_logits
from cycledeblur.models.wiener import wiener_deconvolve
from cycledeblur.synth import defocus_kernel, gaussian_kernel, motion_kernel, synthesize_folder
from cycledeblur.synth.random_blur import Degradation

ROOT = Path(__file__).resolve().parents[1]
NOISE_SIGMA = 0.005
CHANNELS = 3  # grey photos are scored as RGB, as every model here sees them
TRAIN_SEED = 0  # the synthetic blur of the training tiles, the same for every trained column and seed
WINDOW_STRIDE = 8  # px between the candidate crop windows of the figure
UPSCALE = 2  # the figure's crops are enlarged (nearest neighbour) so that single pixels can be compared
GAP = 4  # px of white between the figure's columns
CAPTION_HEIGHT = 14  # px above each row of crops, for the default bitmap font


# The blur rows -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlurSet:
    key: str  # folder and results key
    title: str
    source: str  # "motion", "gaussian", "defocus" (the project's generators), "pyblur" or "none"
    bounds: tuple[float, float] | None  # the generator's path length, sigma or radius range (px)
    seed: int

    @property
    def short_title(self) -> str:
        return self.title.split(" (")[0]


BLUR_SETS = (
    BlurSet("motion-mild", "motion, mild (path 4-12 px)", "motion", (4, 12), 1),
    BlurSet("motion-strong", "motion, strong (path 15-30 px)", "motion", (15, 30), 2),
    BlurSet("gaussian-mild", "Gaussian, mild (sigma 0.8-1.6)", "gaussian", (0.8, 1.6), 3),
    BlurSet("gaussian-strong", "Gaussian, strong (sigma 2.2-3.5)", "gaussian", (2.2, 3.5), 4),
    BlurSet("defocus-mild", "defocus, mild (radius 1.5-3)", "defocus", (1.5, 3), 5),
    BlurSet("defocus-strong", "defocus, strong (radius 4-6)", "defocus", (4, 6), 6),
    BlurSet("pyblur", "pyblur's 100 PSFs (foreign kernels)", "pyblur", None, 7),
    BlurSet("sharp", "no blur (do no harm)", "none", None, 8),
)
GENERATORS: dict[str, Callable[[np.random.Generator, tuple[float, float]], np.ndarray]] = {
    "motion": lambda rng, bounds: motion_kernel(rng, length_range=bounds),
    "gaussian": lambda rng, bounds: gaussian_kernel(rng, sigma_range=bounds),
    "defocus": lambda rng, bounds: defocus_kernel(rng, radius_range=bounds),
}


@cache
def pyblur_psfs() -> tuple[np.ndarray, ...]:
    """The 100 PSFs shipped with `pyblur`, each normalised to sum 1."""
    with np.load(importlib.resources.files("pyblur") / "psf.npz", allow_pickle=False) as archive:
        psfs = [archive[str(index)].astype(np.float64) for index in range(len(archive.files))]
    return tuple(psf / psf.sum() for psf in psfs)


def photo_kernels(blur_set: BlurSet, index: int, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Image-name suffix -> kernel, for the photo `index` of `count`: one image per kernel."""
    if blur_set.source == "none":
        return {}
    if blur_set.source == "pyblur":
        # Every PSF once when there are at most 100 photos (5 per photo for 20), at least one per photo otherwise.
        psfs = pyblur_psfs()
        return {f"_psf{k:02d}": psfs[k] for k in range(index % len(psfs), len(psfs), count)}
    assert blur_set.bounds is not None
    return {"": GENERATORS[blur_set.source](rng, blur_set.bounds)}


def read_photo(path: Path) -> np.ndarray:
    """An RGB photo as H x W x 3 floats in [0, 1]."""
    with Image.open(path) as photo:
        return np.asarray(photo.convert("RGB"), dtype=np.float64) / 255


def save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(path)


def set_recipe(blur_set: BlurSet, photos: list[Path]) -> dict[str, Any]:
    """Everything a degraded set depends on: a saved set with another recipe is rebuilt."""
    return {**asdict(blur_set), "noise_sigma": NOISE_SIGMA, "photos": [photo.name for photo in photos]}


def build_set(blur_set: BlurSet, photos: list[Path], folder: Path) -> dict[str, str]:
    """Degrade every photo into FOLDER/blur (FOLDER/sharp holds the photo under the same name, FOLDER/kernels the
    kernel); returns image name -> photo name. A photo's kernels and noise come from its own seeded stream, so
    an image does not change with the photos around it."""
    shutil.rmtree(folder, ignore_errors=True)
    for side in ("blur", "sharp", "kernels"):
        (folder / side).mkdir(parents=True)
    images = {}
    for index, path in enumerate(photos):
        photo = read_photo(path)
        rng = np.random.default_rng([blur_set.seed, index])
        kernels = photo_kernels(blur_set, index, len(photos), rng)
        if not kernels:
            save_png(photo, folder / "blur" / f"{path.stem}.png")
            save_png(photo, folder / "sharp" / f"{path.stem}.png")
            images[path.stem] = path.name
        for suffix, kernel in kernels.items():
            name = path.stem + suffix
            # Blur, noise and 8-bit rounding exactly as the loader makes training pairs.
            blurred = Degradation(blur_set.source, kernel, NOISE_SIGMA, None).apply(photo, rng)
            save_png(blurred, folder / "blur" / f"{name}.png")
            save_png(photo, folder / "sharp" / f"{name}.png")
            np.save(folder / "kernels" / f"{name}.npy", kernel)
            images[name] = path.name
    return images


def degraded_set(blur_set: BlurSet, photos: list[Path], out: Path) -> dict[str, str]:
    """The set of `blur_set` under OUT/sets, built unless a complete one with the same recipe is there; returns
    image name -> photo name."""
    folder = out / "sets" / blur_set.key
    manifest_path = folder / "manifest.json"  # written last: a set without one is incomplete
    expected = set_recipe(blur_set, photos)
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest["recipe"] == expected:
            return manifest["images"]
    images = build_set(blur_set, photos, folder)
    manifest_path.write_text(json.dumps({"recipe": expected, "images": images}, indent=1))
    return images


@dataclass
class Pair:
    name: str
    blurred: torch.Tensor  # C x H x W in [0, 1]
    sharp: torch.Tensor
    kernel: np.ndarray | None  # None for the sharp set


def load_pairs(folder: Path, names: list[str]) -> Iterator[Pair]:
    """The pairs one at a time: a set of 100 photos would not fit in memory comfortably."""
    for name in names:
        kernel_path = folder / "kernels" / f"{name}.npy"
        yield Pair(
            name,
            load_image_tensor(folder / "blur" / f"{name}.png", CHANNELS),
            load_image_tensor(folder / "sharp" / f"{name}.png", CHANNELS),
            np.load(kernel_path) if kernel_path.is_file() else None,
        )


# Classical baselines, oracle-tuned ---------------------------------------------------------------------------

Params = dict[str, float]
Grid = dict[str, tuple[float, ...]]  # parameter -> values tried


def gaussian(sigma: float) -> torch.Tensor:
    """The normalised isotropic Gaussian of `sigma` px, k x k with k = 2 * ceil(3 sigma) + 1 (no visible truncation)."""
    size = 2 * math.ceil(3 * sigma) + 1
    return gaussian_logits(size, sigma).softmax(0).view(size, size)


def wiener(image: torch.Tensor, kernel: torch.Tensor, regularization: float) -> torch.Tensor:
    return wiener_deconvolve(image[None], kernel[None].float(), torch.tensor([regularization]))[0].clamp(0, 1)


def unsharp_candidates(pair: Pair, grid: Grid) -> Iterator[tuple[Params, torch.Tensor]]:
    """x + amount * (x - gaussian_blur(x, sigma)): sharpening, not deconvolution. One blur serves every amount."""
    for sigma in grid["sigma"]:
        detail = pair.blurred - convolve(pair.blurred[None], gaussian(sigma)[None])[0]
        for amount in grid["amount"]:
            yield {"sigma": sigma, "amount": amount}, (pair.blurred + amount * detail).clamp(0, 1)


def gaussian_wiener_candidates(pair: Pair, grid: Grid) -> Iterator[tuple[Params, torch.Tensor]]:
    for sigma, regularization in itertools.product(grid["sigma"], grid["regularization"]):
        yield {"sigma": sigma, "regularization": regularization}, wiener(pair.blurred, gaussian(sigma), regularization)


def true_kernel_candidates(pair: Pair, grid: Grid) -> Iterator[tuple[Params, torch.Tensor]]:
    """What a Wiener-based deblurrer reaches with a perfect kernel estimate."""
    assert pair.kernel is not None
    kernel = torch.from_numpy(pair.kernel)
    for regularization in grid["regularization"]:
        yield {"regularization": regularization}, wiener(pair.blurred, kernel, regularization)


@dataclass(frozen=True)
class Oracle:
    title: str
    candidates: Callable[[Pair, Grid], Iterator[tuple[Params, torch.Tensor]]]  # (setting, output) per grid point
    grid: Grid
    needs_kernel: bool = False

    def restore(self, pair: Pair, params: Params) -> torch.Tensor:
        """The output for one setting: the candidates of a one-point grid."""
        return next(self.candidates(pair, {key: (value,) for key, value in params.items()}))[1]


ORACLES = {
    "unsharp": Oracle("unsharp mask (oracle)", unsharp_candidates, {"sigma": (0.5, 1, 1.5, 2, 3), "amount": (0.25, 0.5, 1, 1.5, 2, 3)}),
    "wiener-gaussian": Oracle(
        "Wiener, one Gaussian (oracle)",
        gaussian_wiener_candidates,
        {"sigma": (0.7, 1, 1.5, 2, 2.5, 3, 4), "regularization": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)},
    ),
    "wiener-true": Oracle(
        "Wiener, true kernel (oracle)",
        true_kernel_candidates,
        # Up to 0.1: under weak regularisation, long streaks ring from the borders (the filter's mirror extension
        # does not match an asymmetric blur), over the whole image.
        {"regularization": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)},
        needs_kernel=True,
    ),
}


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    # PSNR alone, as FullReferenceMetrics computes it: SSIM would make the grid searches several times slower.
    return float(peak_signal_noise_ratio(image[None], reference[None], data_range=1.0))


def tune(oracles: dict[str, Oracle], pairs: Iterable[Pair]) -> dict[str, Params]:
    """Each oracle's grid point with the best mean PSNR on `pairs` (the scored photos), in one pass over them."""
    totals: dict[str, dict[tuple[tuple[str, float], ...], float]] = {key: defaultdict(float) for key in oracles}
    for pair in pairs:
        for key, oracle in oracles.items():
            for params, output in oracle.candidates(pair, oracle.grid):
                totals[key][tuple(params.items())] += psnr(output, pair.sharp)
    return {key: dict(max(scores, key=scores.__getitem__)) for key, scores in totals.items()}


# Trained columns ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRecipe:
    title: str
    config: Path
    paired: bool  # trained on blurred/sharp pairs of the tiles, or on disjoint halves
    reblur_generator: bool  # whether its config has a `model.reblur_generator` for --set to set


RECIPES = {
    "unpaired": TrainingRecipe("unpaired cpu-fast, from scratch", ROOT / "configs" / "cpu-fast.yaml", False, True),
    "paired": TrainingRecipe("paired cpu-fast (upper bound)", ROOT / "configs" / "paired-cpu-fast.yaml", True, False),
    "unit": TrainingRecipe("unpaired UNIT unit-cpu-fast, from scratch", ROOT / "configs" / "unit-cpu-fast.yaml", False, False),
}
# The columns in table order: --methods picks among all but the input, which every gain refers to.
TITLES = {
    "input": "input",
    **{key: oracle.title for key, oracle in ORACLES.items()},
    "general": "general model",
    **{key: recipe.title for key, recipe in RECIPES.items()},
}
METHODS = [key for key in TITLES if key != "input"]


@dataclass
class TrainedRun:
    folder: Path
    train_seconds: float | None  # wall clock of `cycledeblur train`, start-up and data loading included
    reused: bool


def recipe_overrides(recipe: TrainingRecipe, overrides: list[str]) -> list[str]:
    """The --set overrides of a recipe: the paired one and UNIT have no reblurring generator to set."""
    if recipe.reblur_generator:
        return overrides
    return [override for override in overrides if not override.startswith("model.reblur_generator")]


def training_tiles(corpus: Path, runs: Path, paired: bool) -> Path:
    """The corpus's train tiles under the mixed synthetic blur of `make demo`, as pairs or unpaired; built once."""
    folder = runs / "data" / ("paired" if paired else "unpaired")
    done = folder / "synth.json"  # written last: a folder without it is incomplete
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)  # synthesize_folder refuses non-empty folders
        summary = synthesize_folder(corpus / "train", folder, kind="mixed", seed=TRAIN_SEED, noise_sigma=NOISE_SIGMA, paired=paired)
        done.write_text(json.dumps(summary, indent=1))
    return folder


def run_folder(runs: Path, method: str, seed: int, overrides: list[str]) -> Path:
    """Runs with other overrides (a tiny budget, another lever) get their own folder, so none is reused by mistake."""
    suffix = "-" + hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:8] if overrides else ""
    return runs / f"{method}-seed{seed}{suffix}"


def training_overrides(run: Path, tiles: Path, overrides: list[str]) -> list[str]:
    """What `train_run` passes on top of its config file."""
    return [f"output_dir={run}", f"data.blur={tiles / 'blur'}", f"data.sharp={tiles / 'sharp'}", *overrides]


def finished(run: Path, config: Path, tiles: Path, overrides: list[str]) -> bool:
    """Whether `run` completed under the recipe it would be trained with now. The folder's name comes from the
    overrides alone: a config file edited since (another default) must not pass an older run off as this one.
    Left out: `output_dir` (a run moved to the folder of the recipe it matches is that recipe's run),
    `train.mixed_precision` and `data.num_workers` (`auto` resolves per machine, and the run's config.yaml says
    what it used)."""
    if not all((run / "generator" / name).is_file() for name in ("config.json", "model.safetensors")):
        return False
    if not (run / "config.yaml").is_file():
        return False

    def recipe(config: Config) -> dict[str, Any]:
        settings = config_to_dict(config)
        del settings["output_dir"], settings["train"]["mixed_precision"], settings["data"]["num_workers"]
        return settings

    return recipe(load_config(run / "config.yaml")) == recipe(load_config(config, training_overrides(run, tiles, overrides)))


def train_run(config: Path, overrides: list[str], run: Path, tiles: Path, cache_dir: Path, threads: int = 1) -> float:
    """Train into `run` on TILES/blur and TILES/sharp with `cycledeblur train`; returns the wall-clock seconds, also
    saved in RUN/timing.json so that a reused run reports them again."""
    shutil.rmtree(run, ignore_errors=True)  # checkpoints and samples of an earlier run would mix into it
    command = [sys.executable, "-m", "cycledeblur", "train", "--config", str(config), *training_overrides(run, tiles, overrides)]
    # One compute thread by default: tiny networks gain little from a second, which the data worker uses instead.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(cache_dir)}
    log(f"training: {shlex.join(command)}")
    started = time.perf_counter()
    code = subprocess.run(command, env=env).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        raise UserError(f"training failed with exit code {code} (its messages are above)")
    (run / "timing.json").write_text(json.dumps({"train_seconds": seconds}))
    return seconds


def trained_runs(args: argparse.Namespace, method: str) -> dict[int, TrainedRun]:
    """Seed -> the finished run of recipe `method`, trained now unless reused."""
    recipe = RECIPES[method]
    overrides = recipe_overrides(recipe, args.overrides)
    runs = {}
    for seed in args.seeds:
        seeded = [*overrides, f"train.seed={seed}"]
        run = run_folder(args.runs, method, seed, overrides)
        tiles = training_tiles(args.corpus, args.runs, recipe.paired)
        if finished(run, recipe.config, tiles, seeded) and not args.retrain:
            timing = run / "timing.json"
            seconds = json.loads(timing.read_text())["train_seconds"] if timing.is_file() else None
            runs[seed] = TrainedRun(run, seconds, reused=True)
            continue
        seconds = train_run(recipe.config, seeded, run, tiles, args.runs / ".cache")
        runs[seed] = TrainedRun(run, seconds, reused=False)
    return runs


# Scoring -----------------------------------------------------------------------------------------------------

Column = tuple[str, int | None]  # (method, seed): a seed for the trained columns only
Restorer = Callable[[Pair], torch.Tensor]
ImageScores = dict[str, dict[str, float]]  # image name -> metric -> value


def score_set(restorers: dict[Column, Restorer], pairs: Iterable[Pair], seconds: dict[str, float]) -> dict[Column, ImageScores]:
    """Every column's PSNR and SSIM (and LPIPS where its weights are on disk) on every pair, by FullReferenceMetrics;
    the time spent restoring is added to `seconds`, per method."""
    metrics = FullReferenceMetrics()
    scores: dict[Column, ImageScores] = defaultdict(dict)
    for pair in pairs:
        for column, restore in restorers.items():
            started = time.perf_counter()
            output = restore(pair)
            seconds[column[0]] += time.perf_counter() - started
            scores[column][pair.name] = metrics(output, pair.sharp)
    return scores


def mean(scores: ImageScores, metric: str) -> float:
    return statistics.fmean(image[metric] for image in scores.values())


def summary(method: str, columns: dict[Column, ImageScores], params: Params | None) -> dict[str, Any] | None:
    """A method's numbers on one set: means and per-image scores; for trained methods, per seed and over seeds
    (mean of the seeds' means, and their sample standard deviation). None where the method was not run."""
    runs = {seed: scores for (name, seed), scores in columns.items() if name == method}
    if not runs:
        return None
    if None in runs:
        record = {"psnr": mean(runs[None], "psnr"), "ssim": mean(runs[None], "ssim"), "per_image": runs[None]}
        return record if params is None else {**record, "params": params}
    seeds = {seed: {"psnr": mean(s, "psnr"), "ssim": mean(s, "ssim"), "per_image": s} for seed, s in runs.items()}
    record: dict[str, Any] = {}
    for metric in ("psnr", "ssim"):
        values = [seed[metric] for seed in seeds.values()]
        record[metric] = statistics.fmean(values)
        record[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
    return {**record, "seeds": {str(seed): numbers for seed, numbers in seeds.items()}}


# Figure ------------------------------------------------------------------------------------------------------


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


def figure_row(panels: dict[str, torch.Tensor], crop: int) -> Image.Image:
    """The panels' crops side by side, each under its caption, at the window where the last panel (the sharp
    photo) has most detail."""
    top, left = busiest_window(list(panels.values())[-1], crop)
    side = crop * UPSCALE
    row = Image.new("RGB", (len(panels) * side + (len(panels) - 1) * GAP, CAPTION_HEIGHT + side), "white")
    draw = ImageDraw.Draw(row)
    for index, (caption, image) in enumerate(panels.items()):
        x = index * (side + GAP)
        draw.text((x + 2, 1), caption, fill="black")
        row.paste(enlarged_crop(image, top, left, crop), (x, CAPTION_HEIGHT))
    return row


def save_figure(
    examples: list[tuple[BlurSet, Pair]], restorers: dict[str, Callable[[torch.Tensor], torch.Tensor]], crop: int, path: Path
) -> None:
    """One row per (blur set, pair): input | each restorer's output, under its caption | sharp."""
    crop = min(crop, *(min(pair.sharp.shape[-2:]) for _, pair in examples))  # small photos: one crop size for all
    rows = []
    for blur_set, pair in examples:
        panels = {f"{pair.name}: {blur_set.short_title}": pair.blurred}
        panels |= {caption: restore(pair.blurred) for caption, restore in restorers.items()}
        panels["sharp"] = pair.sharp
        rows.append(figure_row(panels, crop))
    figure = Image.new("RGB", (rows[0].width, sum(row.height for row in rows)), "white")
    for index, row in enumerate(rows):
        figure.paste(row, (0, index * row.height))
    figure.save(path, optimize=True)


# Report ------------------------------------------------------------------------------------------------------


def machine(device: str = "cpu") -> dict[str, Any]:
    """The CPU (with the bf16 units that decide whether bf16 training pays), the GPU if the models ran on one."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    models = re.findall(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = set(re.findall(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)[0].split()) if "flags" in text else set()
    return {
        "cpu": models[0] if models else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def number(value: float, digits: int) -> str:
    return "∞" if value == math.inf else f"{value:.{digits}f}"


def cell(record: dict[str, Any] | None, metric: str, reference: float | None) -> str:
    """`mean [± std over seeds] [(gain over the reference)]`; a dash where the method does not apply."""
    if record is None:
        return "—"
    digits = 2 if metric == "psnr" else 4
    text = number(record[metric], digits)
    if record.get(f"{metric}_std") is not None:
        text += f" ± {record[f'{metric}_std']:.{digits}f}"
    if reference is not None and math.isfinite(record[metric] - reference):
        text += f" ({record[metric] - reference:+.{digits}f})"
    return text


def markdown_table(results: dict[str, Any], columns: list[str], metric: str, title: str) -> list[str]:
    lines = [f"| {title} | " + " | ".join(TITLES[column] for column in columns) + " |"]
    lines.append("| --- |" + " ---: |" * len(columns))
    for blur_set in results["sets"].values():
        records = blur_set["methods"]
        reference = records["input"][metric] if metric == "psnr" else None
        cells = [cell(records.get(c), metric, None if c == "input" else reference) for c in columns]
        lines.append(f"| {blur_set['title']} | " + " | ".join(cells) + " |")
    blurred = [blur_set["methods"] for key, blur_set in results["sets"].items() if key != "sharp"]
    means = {c: mean_over_rows(blurred, c, metric) for c in columns}
    cells = [cell(means[c], metric, None if c == "input" or means["input"] is None else means["input"][metric]) for c in columns]
    lines.append("| **mean of the blurred rows** | " + " | ".join(cells) + " |")
    return lines


def mean_over_rows(rows: list[dict[str, Any]], column: str, metric: str) -> dict[str, float] | None:
    """The mean over the blur rows of a column's mean (each row weighs the same, whatever its image count);
    None unless the column has every row."""
    if not rows or any(column not in row for row in rows):
        return None
    return {metric: statistics.fmean(row[column][metric] for row in rows)}


def notes(results: dict[str, Any]) -> list[str]:
    """The chosen oracle settings, the trained columns' budget and seeds, the photos, the machine."""
    lines = []
    for method in ORACLES:
        chosen = [
            f"{blur_set['short_title']}: " + ", ".join(f"{k} {v:g}" for k, v in record["params"].items())
            for blur_set in results["sets"].values()
            if (record := blur_set["methods"].get(method))
        ]
        if chosen:
            lines.append(f"- {TITLES[method]}, picked on the scored photos themselves: " + "; ".join(chosen) + ".")
    for method, training in results["training"].items():
        times = [run["train_seconds"] for run in training["runs"].values() if run["train_seconds"] is not None]
        lines.append(
            f"- {TITLES[method]}: mean ± standard deviation over seeds {' '.join(training['runs'])} (train.seed), "
            f"{training['steps']} steps of batch {training['batch_size']} on {training['crop_size']} px crops"
            + (f", {statistics.fmean(times):.0f} s of training per run" if times else "")
            + "."
        )
    if models := results["general_model"]:
        over = "mean ± standard deviation over " if len(models) > 1 else ""
        lines.append(f"- general model: {over}" + ", ".join(f"`{model}`" for model in models) + ".")
    computer = results["machine"]
    units = [flag for flag in ("avx512_bf16", "amx_bf16") if computer[flag]]
    count = len(results["photos"])
    lines.append(
        f"- {count} photo{'s' if count > 1 else ''} of the {results['split']} split ({results['corpus']}); "
        f"{computer['cpu']} ({computer['cpu_count']} cores{', ' + ', '.join(units) if units else ', no bf16 units'}), "
        f"GPU {computer['gpu'] or 'none'}, torch {computer['torch']}, {results['date']}."
    )
    return lines


def markdown(results: dict[str, Any], columns: list[str]) -> str:
    split = results["split"]
    return "\n".join(
        [
            *markdown_table(results, columns, "psnr", f"PSNR (dB), gain over the input, {split}"),
            "",
            *markdown_table(results, columns, "ssim", f"SSIM, {split}"),
            "",
            *notes(results),
        ]
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# The benchmark -----------------------------------------------------------------------------------------------


def corpus_photos(corpus: Path, split: str, with_train: bool) -> list[Path]:
    """The photos of `split`, the corpus being built first where it lacks a needed split."""
    missing = [name for name in (split, *(["train"] if with_train else [])) if not (corpus / name).is_dir()]
    if missing:
        log(f"building the corpus's {' and '.join(missing)} split(s) in {corpus}")
        command = [sys.executable, str(ROOT / "bench" / "corpus.py"), str(corpus), "--splits", *missing]
        if subprocess.run(command).returncode != 0:
            raise UserError(f"could not build the corpus: {shlex.join(command)} failed (its messages are above)")
    photos = list_images(corpus / split)
    if not photos:
        raise UserError(f"{corpus / split} holds no photos")
    return photos


def training_record(runs: dict[int, TrainedRun], overrides: list[str], recipe: TrainingRecipe) -> dict[str, Any]:
    config = load_config(next(iter(runs.values())).folder / "config.yaml")  # as trained: file and overrides
    return {
        "config": str(recipe.config.relative_to(ROOT)),
        "overrides": overrides,
        "steps": config.train.max_steps,
        "batch_size": config.train.batch_size,
        "crop_size": config.data.crop_size,
        "runs": {
            str(seed): {"folder": str(run.folder), "train_seconds": run.train_seconds, "reused": run.reused} for seed, run in runs.items()
        },
    }


def figure_examples(out: Path, sets: dict[str, dict[str, str]], photos: list[str]) -> list[tuple[BlurSet, Pair]]:
    """One image per blurred set of `sets`, each from another scored photo while there are enough."""
    examples = []
    for index, blur_set in enumerate(s for s in BLUR_SETS if s.source != "none" and s.key in sets):
        photo = photos[index % len(photos)]
        name = min(name for name, source in sets[blur_set.key].items() if source == photo)
        examples.append((blur_set, next(load_pairs(out / "sets" / blur_set.key, [name]))))
    return examples


def model_restorers(generals: list[Deblurrer], runs: dict[str, dict[int, TrainedRun]], device: str) -> dict[Column, Restorer]:
    """The columns that need no tuning: the input itself, the general model(s), each trained run."""
    models: dict[Column, Restorer] = {("input", None): lambda pair: pair.blurred}
    for index, general in enumerate(generals):
        models["general", index if len(generals) > 1 else None] = lambda pair, general=general: general(pair.blurred)
    for method, seeded in runs.items():
        for seed, run in seeded.items():
            deblurrer = Deblurrer(resolve_generator(run.folder), device=device)
            models[method, seed] = lambda pair, deblurrer=deblurrer: deblurrer(pair.blurred)
    return models


def evaluate_set(
    blur_set: BlurSet,
    pairs: Callable[[], Iterator[Pair]],
    methods: list[str],
    models: dict[Column, Restorer],
    seconds: dict[str, Any],
) -> dict[str, Any]:
    """Tune the oracles on the set's scored pairs, then score every column on them; `pairs()` reads them anew."""
    oracles = {key: oracle for key, oracle in ORACLES.items() if key in methods and not (oracle.needs_kernel and blur_set.source == "none")}
    started = time.perf_counter()
    params = tune(oracles, pairs()) if oracles else {}
    tuned = time.perf_counter()
    restorers = dict(models)
    for key, oracle in oracles.items():
        restorers[key, None] = lambda pair, oracle=oracle, chosen=params[key]: oracle.restore(pair, chosen)
    scores = score_set(restorers, pairs(), seconds["restore"])
    scored = time.perf_counter()
    seconds["tune"] += tuned - started
    seconds["score"] += scored - tuned
    log(f"{blur_set.key}: {len(scores['input', None])} images, tuned in {tuned - started:.0f} s, scored in {scored - tuned:.0f} s")
    records = {method: summary(method, scores, params.get(method)) for method in methods}
    return {
        "title": blur_set.title,
        "short_title": blur_set.short_title,
        "images": len(scores["input", None]),
        "methods": {method: record for method, record in records.items() if record is not None},
    }


def run_benchmark(args: argparse.Namespace, command: str) -> None:
    methods = [column for column in TITLES if column == "input" or column in args.methods]
    # A bad override, config or model fails at once, not after an hour of work.
    for method in (m for m in methods if m in RECIPES):
        load_config(RECIPES[method].config, recipe_overrides(RECIPES[method], args.overrides))
    generals = [Deblurrer(resolve_generator(model), device=args.device) for model in args.general] if "general" in methods else []
    photos = corpus_photos(args.corpus, args.split, with_train=any(m in RECIPES for m in methods))
    scored = [photo.name for photo in photos[: args.limit]]
    out = args.out or Path("bench/out/quality") / args.split
    seconds: dict[str, Any] = {"degrade": 0.0, "tune": 0.0, "score": 0.0, "restore": defaultdict(float)}

    started = time.perf_counter()
    # Every photo of the split, --limit or not: a set must not change with the photos scored.
    sets = {blur_set.key: degraded_set(blur_set, photos, out) for blur_set in BLUR_SETS}
    seconds["degrade"] = time.perf_counter() - started
    runs = {method: trained_runs(args, method) for method in methods if method in RECIPES}
    models = model_restorers(generals, runs, args.device)
    results_sets = {}
    for blur_set in BLUR_SETS:
        names = sorted(name for name, photo in sets[blur_set.key].items() if photo in scored)
        pairs = partial(load_pairs, out / "sets" / blur_set.key, names)
        results_sets[blur_set.key] = evaluate_set(blur_set, pairs, methods, models, seconds)

    figure_path = out / "figure.png"
    restorers = {"general model": generals[0]} if generals else {}
    save_figure(figure_examples(out, sets, scored), restorers, args.crop, figure_path)
    results = {
        "split": args.split,
        "corpus": str(args.corpus),
        "photos": scored,
        "noise_sigma": NOISE_SIGMA,
        "general_model": args.general if generals else [],
        "sets": results_sets,
        "training": {
            method: training_record(seeded, recipe_overrides(RECIPES[method], args.overrides), RECIPES[method])
            for method, seeded in runs.items()
        },
        "seconds": seconds,
        "machine": machine(args.device),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }
    results_path = out / "results.json"
    results_path.write_text(json.dumps(results, indent=1))
    print(markdown(results, methods))
    print(f"\nresults: {results_path}, figure: {figure_path}\n")
    print(command)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_override_argument(parser: argparse.ArgumentParser, help: str, flag: str = "--set", dest: str = "overrides") -> None:
    """`--set KEY=VALUE ...`: config overrides of the trained runs (repeatable)."""
    parser.add_argument(flag, dest=dest, action="extend", nargs="+", default=[], metavar="KEY=VALUE", help=help)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("bench/out/corpus"), help="bench/corpus.py's folder (default %(default)s)")
    parser.add_argument(
        "--split",
        choices=("val", "test"),
        default="test",
        help="the photos scored: val for every choice, test to report (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="the degraded sets, results.json, figure.png (default bench/out/quality/SPLIT)")
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("bench/out/quality/runs"),
        help="training tiles and trained runs, shared by both splits (default %(default)s)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=METHODS,
        metavar="METHOD",
        help=f"the columns besides the input: {', '.join(METHODS)} (default: all)",
    )
    parser.add_argument(
        "--general",
        nargs="+",
        default=["general"],
        metavar="MODEL",
        help="the general model: bundled name, run or generator folder, or Hub id; several: their mean and spread (default general)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2],
        metavar="N",
        help="train.seed of each run of the trained columns (default 0 1 2)",
    )
    add_override_argument(parser, "overrides for both training configs, e.g. train.max_steps=200")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="score the first N photos (by name) only")
    parser.add_argument("--retrain", action="store_true", help="train again where a finished run exists")
    parser.add_argument("--device", default="cpu", help="device of the model columns: cpu, cuda, cuda:1...")
    parser.add_argument("--crop", type=positive_int, default=160, help="side of the crops in figure.png (px, default %(default)s)")
    return parser.parse_args(argv)


def run_script(
    script: str,
    parse: Callable[[list[str]], argparse.Namespace],
    run: Callable[[argparse.Namespace, str], None],
    argv: list[str] | None,
) -> int:
    """A bench script's `main`: `run` gets the parsed arguments and the command line that reruns it; a user error
    ends in one line and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    try:
        run(args, shlex.join(["python", script, *argv]))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script("bench/quality.py", parse_args, run_benchmark, argv)


if __name__ == "__main__":
    sys.exit(main())
