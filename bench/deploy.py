"""ONNX deployment of the bundled general model on real photos: parity with PyTorch, file sizes, what int8 costs in
quality, and the time of a 1280x720 photo in PyTorch and in onnxruntime on the CPU.

Rerun: python bench/deploy.py [--general MODEL] [--models general cpu-fast] [--rows ROW ...] [--limit N]
       [--repeats N] [--corpus DIR] [--quality-out DIR] [--runs DIR] [--out DIR]

Models (`--models`, default general):
- general: the bundled model (`--general`: a bundled name, run or generator folder, or Hub id);
- cpu-fast: bench/quality.py's unpaired cpu-fast run of seed 0 at its default budget, in RUNS (bench/quality.py's
  --runs), trained there first unless it is finished.

Each model is exported with dynamic axes (`export_checked`: the largest |ONNX - PyTorch fp32| on the [-1, 1]
outputs of 2 real 250 px crops must stay within the parity tolerance), then quantized to int8 (`quantize_int8`),
calibrated on 12 tiles spread over the corpus's train split, blurred as bench/quality.py blurs its paired training
tiles (mixed blur, noise 0.005, fixed seed; RUNS/data/paired, built once). No scored photo is calibrated on.

Quality: both files deblur whole images of the test split's degraded sets of bench/quality.py (QUALITY_OUT/sets/ROW,
built as bench/quality.py builds them where missing or stale), scored against the sharp photos (PSNR / SSIM by
FullReferenceMetrics), per --rows (default all); `--limit N` scores the first N test photos only.

Latency: seconds per 1280x720 photo (the first test photo, scaled and centre-cropped to fill it) of PyTorch fp32
eager (`Deblurrer`, whole image, default settings) and of the fp32 and int8 files in onnxruntime on the CPU
(`OnnxDeblurrer`, whole image) with as many threads as PyTorch uses (the machine's cores unless OMP_NUM_THREADS
says otherwise): the median of --repeats passes after a warm-up pass.

Writes OUT/MODEL.onnx, OUT/MODEL.int8.onnx and OUT/deploy.json (every number, with the machine, date and command);
prints the tables in Markdown, then the command that reruns them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/deploy.py` from anywhere: import bench.*

from bench import quality  # noqa: E402
from bench.speed import median_seconds  # noqa: E402
from cycledeblur.export.int8 import CalibrationSplit, int8_report, quantize_int8  # noqa: E402
from cycledeblur.export.runtime import OnnxDeblurrer  # noqa: E402
from cycledeblur.export.to_onnx import check_images, export_checked  # noqa: E402
from cycledeblur.image_files import list_images  # noqa: E402
from cycledeblur.inference import Deblurrer, resolve_generator  # noqa: E402

MODELS = ("general", "cpu-fast")
ROWS = [blur_set.key for blur_set in quality.BLUR_SETS]
CALIBRATION_TILES = 12
LATENCY_SIZE = (1280, 720)  # width, height
Pairs = list[tuple[str, Path, Path]]  # (name, blurred, sharp), as int8_report scores them


# Inputs ------------------------------------------------------------------------------------------------------


def cpu_fast_run(corpus: Path, runs: Path) -> Path:
    """bench/quality.py's unpaired cpu-fast run of seed 0, as it trains it: reused when finished."""
    settings = argparse.Namespace(corpus=corpus, runs=runs, seeds=[0], overrides=[], retrain=False)
    return quality.trained_runs(settings, "unpaired")[0].folder


def spread(paths: list[Path], count: int) -> list[Path]:
    """`count` of `paths` evenly spaced in their order: the tiles of one photo sit next to each other."""
    return [paths[index * len(paths) // count] for index in range(count)] if len(paths) > count else paths


def scored_sets(rows: list[str], photos: list[Path], scored: list[str], quality_out: Path) -> dict[str, Pairs]:
    """Row -> the pairs of the `scored` photos, from bench/quality.py's degraded sets of the test split `photos`."""
    sets = {}
    for blur_set in (s for s in quality.BLUR_SETS if s.key in rows):
        # Every photo of the split, as bench/quality.py degrades it: otherwise it would rebuild the set.
        images = quality.degraded_set(blur_set, photos, quality_out)
        folder = quality_out / "sets" / blur_set.key
        sets[blur_set.key] = [
            (name, folder / "blur" / f"{name}.png", folder / "sharp" / f"{name}.png") for name in sorted(images) if images[name] in scored
        ]
    return sets


def latency_photo(path: Path) -> np.ndarray:
    """The photo scaled and centre-cropped to fill LATENCY_SIZE, C x H x W in [0, 1] as `deblur` takes it."""
    with Image.open(path) as photo:
        filled = ImageOps.fit(photo.convert("RGB"), LATENCY_SIZE, Image.Resampling.BICUBIC)
    return np.asarray(filled, dtype=np.float32).transpose(2, 0, 1) / 255


# Measurements ------------------------------------------------------------------------------------------------


def warm_median(deblurrer: Deblurrer | OnnxDeblurrer, photo: np.ndarray, repeats: int) -> float:
    """Seconds per `deblur` of `photo`, after one pass that pays for the allocator and onnxruntime's memory plan."""
    deblurrer.deblur(photo)
    return median_seconds(lambda: deblurrer.deblur(photo), repeats)


def latency(generator: torch.nn.Module, fp32: Path, int8: Path, photo: np.ndarray, repeats: int) -> dict[str, float]:
    threads = torch.get_num_threads()
    return {
        "pytorch_fp32": warm_median(Deblurrer(generator), photo, repeats),
        "onnx_fp32": warm_median(OnnxDeblurrer(fp32, threads=threads), photo, repeats),
        "onnx_int8": warm_median(OnnxDeblurrer(int8, threads=threads), photo, repeats),
    }


def int8_quality(fp32: Path, int8: Path, calibration: list[Path], pairs: Pairs) -> dict[str, Any]:
    report = int8_report(fp32, int8, CalibrationSplit(calibration, pairs))
    return {"images": len(pairs), "fp32": report.fp32_scores, "int8": report.int8_scores, "psnr_drop": report.psnr_drop}


def measure(
    name: str,
    generator: torch.nn.Module,
    tiles: Path,
    calibration: list[Path],
    sets: dict[str, Pairs],
    photo: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Export, parity, int8 quantization, quality per row and latency of one model, into OUT/NAME(.int8).onnx."""
    fp32, int8 = args.out / f"{name}.onnx", args.out / f"{name}.int8.onnx"
    quality.log(f"{name}: exporting to {fp32} and {int8}")
    export = export_checked(generator, fp32, check_images(tiles, generator.in_channels), dynamic=True)
    quantize_int8(fp32, int8, calibration)
    quality.log(f"{name}: scoring fp32 and int8 on {sum(map(len, sets.values()))} images")
    scores = {row: int8_quality(fp32, int8, calibration, pairs) for row, pairs in sets.items()}
    quality.log(f"{name}: timing a {LATENCY_SIZE[0]}x{LATENCY_SIZE[1]} photo")
    return {
        "parameters": sum(parameter.numel() for parameter in generator.parameters()),
        "max_difference": export.max_difference,
        "checked_images": export.checked_images,
        "fp32_mb": export.size_bytes / 1e6,
        "int8_mb": int8.stat().st_size / 1e6,
        "seconds": latency(generator, fp32, int8, photo, args.repeats),
        "quality": scores,
    }


# Report ------------------------------------------------------------------------------------------------------


def model_table(results: dict[str, Any]) -> list[str]:
    size = "x".join(map(str, LATENCY_SIZE))
    headers = [
        "model",
        "parameters",
        "max abs ONNX - PyTorch",
        "fp32 MB",
        "int8 MB",
        "smaller",
        f"PyTorch fp32 s / {size}",
        f"ONNX fp32 s / {size}",
        f"ONNX int8 s / {size}",
    ]
    lines = ["| " + " | ".join(headers) + " |", "| --- |" + " ---: |" * (len(headers) - 1)]
    for name, row in results["models"].items():
        seconds = row["seconds"]
        cells = [
            name,
            f"{row['parameters'] / 1e6:.2f} M",
            f"{row['max_difference']:.1e}",
            f"{row['fp32_mb']:.2f}",
            f"{row['int8_mb']:.2f}",
            f"{row['fp32_mb'] / row['int8_mb']:.1f}x",
            f"{seconds['pytorch_fp32']:.3f}",
            f"{seconds['onnx_fp32']:.3f}",
            f"{seconds['onnx_int8']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def quality_table(results: dict[str, Any]) -> list[str]:
    headers = ["model", "blur (test split)", "images", "fp32 PSNR / SSIM", "int8 PSNR / SSIM", "int8 PSNR drop (dB)"]
    lines = ["| " + " | ".join(headers) + " |", "| --- | --- |" + " ---: |" * (len(headers) - 2)]
    titles = {blur_set.key: blur_set.short_title for blur_set in quality.BLUR_SETS}
    for name, row in results["models"].items():
        for key, scores in row["quality"].items():
            fp32, int8 = scores["fp32"], scores["int8"]
            cells = [
                name,
                titles[key],
                str(scores["images"]),
                f"{fp32['psnr']:.2f} / {fp32['ssim']:.4f}",
                f"{int8['psnr']:.2f} / {int8['ssim']:.4f}",
                f"{scores['psnr_drop']:+.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def notes(results: dict[str, Any]) -> list[str]:
    computer = results["machine"]
    units = [flag for flag in ("avx512_bf16", "amx_bf16") if computer[flag]]
    return [
        f"- Parity on {len(next(iter(results['models'].values()))['checked_images'])} real 250 px crops; int8"
        f" calibrated on {len(results['calibration'])} blurred train tiles ({results['calibration_folder']}).",
        f"- Latency: {results['latency_photo']} filled to {results['latency_size']}, whole image, median of"
        f" {results['repeats']} passes after a warm-up, {results['threads']} thread(s).",
        f"- {computer['cpu']} ({computer['cpu_count']} cores, {', '.join(units) or 'no bf16 units'}), torch"
        f" {computer['torch']}, onnxruntime {computer['onnxruntime']}, {results['date']}.",
    ]


# The benchmark -----------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace, command: str) -> None:
    # A bad --general fails at once, not after the sets and tiles are built.
    generators = {"general": resolve_generator(args.general)} if "general" in args.models else {}
    photos = quality.corpus_photos(args.corpus, "test", with_train=True)
    scored = [photo.name for photo in photos[: args.limit]]
    sets = scored_sets(args.rows, photos, scored, args.quality_out)
    tiles = quality.training_tiles(args.corpus, args.runs, paired=True) / "blur"
    calibration = spread(list_images(tiles), CALIBRATION_TILES)
    if "cpu-fast" in args.models:
        generators["cpu-fast"] = resolve_generator(cpu_fast_run(args.corpus, args.runs))
    photo = latency_photo(photos[0])
    args.out.mkdir(parents=True, exist_ok=True)
    models = {name: measure(name, model, tiles, calibration, sets, photo, args) for name, model in generators.items()}
    results = {
        "models": models,
        "general_model": args.general if "general" in args.models else None,
        "corpus": str(args.corpus),
        "photos": scored,
        "calibration_folder": str(tiles),
        "calibration": [path.name for path in calibration],
        "latency_photo": photos[0].name,
        "latency_size": "x".join(map(str, LATENCY_SIZE)),
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "machine": {**quality.machine("cpu"), "onnxruntime": importlib.metadata.version("onnxruntime")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }
    results_path = args.out / "deploy.json"
    results_path.write_text(json.dumps(results, indent=1))
    print("\n".join([*model_table(results), "", *quality_table(results), "", *notes(results)]))
    print(f"\nresults: {results_path}\n")
    print(command)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--general",
        default="general",
        metavar="MODEL",
        help="the general model: bundled name, run or generator folder, or Hub id (default %(default)s)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        default=["general"],
        help="general, and cpu-fast (bench/quality.py's unpaired run, trained unless finished) (default general)",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=ROWS,
        default=ROWS,
        metavar="ROW",
        help=f"bench/quality.py's blur rows scored: {', '.join(ROWS)} (default: all)",
    )
    parser.add_argument("--limit", type=quality.positive_int, metavar="N", help="score the first N test photos only")
    parser.add_argument("--repeats", type=quality.positive_int, default=5, help="timed passes per latency, median (default %(default)s)")
    parser.add_argument("--corpus", type=Path, default=Path("bench/out/corpus"), help="bench/corpus.py's folder (default %(default)s)")
    parser.add_argument(
        "--quality-out",
        type=Path,
        default=Path("bench/out/quality/test"),
        help="bench/quality.py's --out of the test split, holding its degraded sets (default %(default)s)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("bench/out/quality/runs"),
        help="bench/quality.py's --runs: the blurred training tiles and the cpu-fast run (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/deploy"), help="default %(default)s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return quality.run_script("bench/deploy.py", parse_args, run_benchmark, argv)


if __name__ == "__main__":
    sys.exit(main())
