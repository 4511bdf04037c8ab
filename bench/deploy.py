"""Deployment figures for trained models on real photos: ONNX parity with PyTorch, file sizes, and what int8 costs
in quality.

Rerun: python bench/deploy.py [--out bench/out/deploy] [--quality-out bench/out/quality] [--models cpu-fast resnet]

Models (each trained once, then reused; delete its run folder to retrain):
- cpu-fast: `configs/cpu-fast.yaml` (the Wiener generator of `make demo` and the quality benchmark), trained as
  `bench/quality.py` trains it, into QUALITY_OUT/runs/cpu-fast (the quality benchmark's own run when it exists);
- resnet: a ResNet generator (32 channels, 6 residual blocks, 1.96 M parameters) trained pix2pix-style (L1 x 100 and
  LSGAN) for 2000 steps on the quality benchmark's paired training tiles: RESNET_RECIPE below, written to
  OUT/resnet-paired.yaml;
- resnet-9: the default config's generator (ResNet-9, 64 channels, 11.4 M parameters), untrained (its 9-block
  training is beyond a CPU budget): file sizes and parity only, its int8 quality is not measured.

Calibration (OUT/calibration, blur/ and sharp/ pairs): 12 of the quality benchmark's 28 paired training tiles
(every other one in name order, as `calib-*`), then its 4 held-out test photos (as `test-*`): `cycledeblur export`
holds out the last quarter in name order, so the int8 model is scored on exactly the test photos, which no model
trained on and no calibration saw. For each model this runs what

    cycledeblur export --model RUN --onnx OUT/NAME.onnx --dynamic --int8 --calibration OUT/calibration

runs (parity on 2 calibration images, 250 px crops; int8: PSNR / SSIM of fp32 and int8 against the
sharp test photos, whole images), prints a table and writes OUT/deploy.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/deploy.py` from anywhere: import bench.*

from bench.quality import build_data, train_run, untrained_generator  # noqa: E402
from cycledeblur.config import load_config  # noqa: E402
from cycledeblur.evaluation import matching_pairs  # noqa: E402
from cycledeblur.export.int8 import calibration_split, int8_report, quantize_int8  # noqa: E402
from cycledeblur.export.to_onnx import check_images, export_checked  # noqa: E402
from cycledeblur.inference import resolve_generator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
console = Console()
RESNET_RECIPE: dict[str, Any] = {
    "data": {"channels": 3, "crop_size": 64, "num_workers": 1},
    "model": {
        "generator": {"name": "resnet", "base_channels": 32, "n_blocks": 6, "residual_output": True},
        "discriminator": {"name": "patchgan", "base_channels": 16, "n_layers": 3},
    },
    "loss": {"gan_mode": "lsgan", "adv_deblur": 1.0, "paired_l1": 100.0, "tv": 0.0},
    "train": {
        "mode": "paired",
        "pretrain_steps": 0,
        "max_steps": 2000,
        "batch_size": 4,
        "lr_g": 1.0e-3,
        "lr_d": 2.0e-4,
        "lr_decay_start": 0.5,
        "mixed_precision": "no",
        "checkpoint_every": 1000,
        "sample_every": 1000,
        "sample_size": 256,
        "log_every": 100,
    },  # fmt: skip
}
CALIBRATION_TILES = 12


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/deploy"), help="default %(default)s")
    parser.add_argument(
        "--quality-out", type=Path, default=Path("bench/out/quality"),
        help="the quality benchmark's folder: its data (built if missing) and its cpu-fast run (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--models", nargs="+", default=["cpu-fast", "resnet", "resnet-9"], choices=["cpu-fast", "resnet", "resnet-9"]
    )
    return parser.parse_args(argv)


def calibration_folder(quality_out: Path, out: Path) -> Path:
    """OUT/calibration: `calib-*` training tiles, then the `test-*` photos, which the name-order split holds out."""
    folder = out / "calibration"
    shutil.rmtree(folder, ignore_errors=True)
    train_pairs = matching_pairs(quality_out / "train-paired" / "blur", quality_out / "train-paired" / "sharp")
    test_pairs = matching_pairs(quality_out / "test" / "blur", quality_out / "test" / "sharp")
    chosen = [("calib", pair) for pair in train_pairs[::2][:CALIBRATION_TILES]] + [("test", p) for p in test_pairs]
    for prefix, (_, blurred, sharp) in chosen:
        for side, path in (("blur", blurred), ("sharp", sharp)):
            (folder / side).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, folder / side / f"{prefix}-{path.name}")
    return folder


def trained_run(name: str, quality_out: Path, out: Path) -> Path:
    """The run folder of `name`, trained here unless it holds a generator already."""
    if name == "cpu-fast":
        run, config, train_dir = quality_out / "runs" / "cpu-fast", ROOT / "configs" / "cpu-fast.yaml", "train"
    else:
        run, config, train_dir = out / "runs" / "resnet-paired", out / "resnet-paired.yaml", "train-paired"
        out.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(RESNET_RECIPE, sort_keys=False))
    if (run / "generator").is_dir():
        console.print(f"reusing the trained run {run} (delete it to retrain)")
    else:
        train_run(config, [], run, quality_out / train_dir, quality_out)
    return run


def untrained_resnet9(out: Path) -> Path:
    """The default config's generator as training starts it, saved as a generator folder."""
    folder = out / "runs" / "resnet-9-untrained"
    untrained_generator(load_config(ROOT / "configs" / "default.yaml", [])).save_pretrained(folder)
    return folder


def measure(name: str, model: Path, calibration: Path, out: Path, score_int8: bool) -> dict[str, Any]:
    generator = resolve_generator(model)
    onnx_path = out / f"{name}.onnx"
    started = time.perf_counter()
    report = export_checked(
        generator, onnx_path, check_images(calibration / "blur", generator.in_channels), dynamic=True
    )
    row: dict[str, Any] = {
        "model": name,
        "run": str(model),
        "parameters": sum(p.numel() for p in generator.parameters()),
        "export_seconds": time.perf_counter() - started,
        "fp32_mb": report.size_bytes / 1e6,
        "max_difference": report.max_difference,
        "checked_images": report.checked_images,
        "command": shlex.join(
            ["cycledeblur", "export", "--model", str(model), "--onnx", str(onnx_path), "--dynamic"]
            + ["--int8", "--calibration", str(calibration)]
        ),
    }
    split = calibration_split(calibration)
    int8_path = onnx_path.with_suffix(".int8.onnx")
    quantize_int8(onnx_path, int8_path, split.calibration)
    row["int8_mb"] = int8_path.stat().st_size / 1e6
    if score_int8:
        quality = int8_report(onnx_path, int8_path, split)
        row |= {
            "held_out": [name for name, _, _ in split.held_out],
            "fp32_psnr": quality.fp32_scores["psnr"],
            "int8_psnr": quality.int8_scores["psnr"],
            "fp32_ssim": quality.fp32_scores["ssim"],
            "int8_ssim": quality.int8_scores["ssim"],
            "psnr_drop": quality.psnr_drop,
        }
    return row


def report(rows: list[dict[str, Any]], command: str, date: str) -> None:
    """The table in Markdown (the README's), then each model's `cycledeblur export` command and the rerun line."""
    headers = ["model", "parameters", "max abs ONNX - PyTorch", "fp32 MB", "int8 MB", "smaller",
               "fp32 PSNR / SSIM", "int8 PSNR / SSIM", "int8 PSNR drop (dB)"]  # fmt: skip
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for row in rows:
        quality = [
            f"{row['fp32_psnr']:.2f} / {row['fp32_ssim']:.4f}", f"{row['int8_psnr']:.2f} / {row['int8_ssim']:.4f}",
            f"{row['psnr_drop']:.2f}",
        ] if "psnr_drop" in row else ["not measured (untrained)"] * 3  # fmt: skip
        sizes = [f"{row['fp32_mb']:.2f}", f"{row['int8_mb']:.2f}", f"{row['fp32_mb'] / row['int8_mb']:.1f}x"]
        cells = [row["model"], f"{row['parameters'] / 1e6:.2f} M", f"{row['max_difference']:.1e}", *sizes, *quality]
        lines.append("| " + " | ".join(cells) + " |")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)
    for row in rows:
        console.print(f"{row['model']}: {row['command']}", highlight=False, soft_wrap=True)
    machine = platform.processor() or platform.machine()
    console.print(f"{machine}, {date}; rerun: {command}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "bench/deploy.py", *(sys.argv[1:] if argv is None else argv)])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    build_data(args.quality_out)
    calibration = calibration_folder(args.quality_out, args.out)
    rows = []
    for name in args.models:
        model = untrained_resnet9(args.out) if name == "resnet-9" else trained_run(name, args.quality_out, args.out)
        rows.append(measure(name, model, calibration, args.out, score_int8=name != "resnet-9"))
    (args.out / "deploy.json").write_text(json.dumps({"rows": rows, "date": date, "command": command}, indent=2))
    report(rows, command, date)
    return 0


if __name__ == "__main__":
    sys.exit(main())
