"""Training throughput of the full CycleGAN step, switch by switch, against a plain baseline measured in the same run;
then inference throughput, whole and tiled.

Rerun: python bench/speed.py [--config configs/default.yaml] [--crops 128 256] [--batches 1 4 16]
       [--modes plain tuned fused_adam bf16 channels_last compile shipped] [--generators unet light wiener]
       [--steps 5] [--out DIR]
       [--inference-sizes 1280x720 4000x3000] [--tile 512] [--inference-precisions fp32 bf16]
(`--modes` with no mode skips the training rows, `--inference-sizes` with no size the inference rows.)

Every row runs the real training loop (`cycledeblur.training.train`, data loading included) in its own process, on
the demo photos blurred by `synth` (built once in OUT/data), for 2 x --steps steps. The first --steps steps are the
warm-up (compilation, allocator, data workers); the throughput is that of the last --steps steps, from the loop's
own `perf/` log entries. Modes, each on top of the config (its networks and loss):

- plain: eager fp32, NCHW, a host read-out of every loss at every step (`train.log_every=1`), PyTorch's default Adam;
- tuned: plain, but the losses read out once per --steps steps (no per-step host synchronisation);
- fused_adam / bf16 / fp16 / channels_last / compile: tuned plus that one switch (fp16 only on a GPU);
- shipped: the config exactly as it is (what `cycledeblur train --config CONFIG` runs).
With --generators, each named generator family (its default options, as the blur->sharp and the sharp->blur
generator) adds a shipped row per crop and batch and its own inference rows.

Per row: images/s, its ratio to plain at the same crop and batch, peak memory (CUDA max allocated on a GPU, the
process's peak RSS on the CPU), the step's FLOPs (`torch.utils.flop_counter.FlopCounterMode` over one step of the
plain loop: a multiply-add counts 2), the achieved TFLOP/s, and on a GPU the MFU against the device's dense bf16
peak. A last row times the data loader alone. Prints the table (terminal and Markdown), writes OUT/speed.jsonl
(one JSON object per row), and ends with the command line.

Inference: `Deblurrer` (what `cycledeblur deblur` runs) with the config's generator on the `coffee` photo resized to
each size, whole and in --tile tiles (overlap 32), per precision: megapixels/s, images/s, and the tiled run's time
over the whole-image run's (the tiling overhead), after a warm-up pass.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/speed.py` from anywhere: import bench.*
from rich.table import Table

console = Console()
EAGER = ["train.mixed_precision=no", "train.channels_last=false", "train.compile=false", "train.fused_optimizer=false"]
MODES = {  # name -> overrides on top of the config; None: the config as shipped
    "plain": EAGER,
    "tuned": EAGER,
    "fused_adam": [*EAGER, "train.fused_optimizer=true"],
    "bf16": [*EAGER, "train.mixed_precision=bf16"],
    "fp16": [*EAGER, "train.mixed_precision=fp16"],
    "channels_last": [*EAGER, "train.channels_last=true"],
    "compile": [*EAGER, "train.compile=true"],
    "shipped": None,
}
# Dense bf16 tensor-core peaks (FLOP/s), from the vendors' data sheets (SXM parts; sparsity not counted).
BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/default.yaml"), help="default %(default)s")
    parser.add_argument("--crops", type=int, nargs="+", default=[128, 256], help="crop sizes (default %(default)s)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="batch sizes (default %(default)s)")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES), help="default: all that apply")
    parser.add_argument(
        "--generators", nargs="*", default=[], metavar="FAMILY",
        help="also time these registered generator families (default options), as shipped (default: none)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=5, help="warm-up steps, then as many timed ones (default 5)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/speed"), help="default %(default)s")
    parser.add_argument(
        "--inference-sizes", nargs="*", default=["1280x720", "4000x3000"], metavar="WxH",
        help="deblur one photo of each size, whole and tiled (default %(default)s; none: skip inference)",
    )  # fmt: skip
    parser.add_argument("--tile", type=int, default=512, help="tile size of the tiled inference rows (default 512)")
    parser.add_argument(
        "--inference-precisions", nargs="+", default=None, choices=["fp32", "bf16", "fp16"],
        help="default: fp32, bf16 and fp16 on a GPU; fp32 on the CPU (bf16 is 11-26x slower on AVX2-only CPUs)",
    )  # fmt: skip
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row in this process, print its JSON
    return parser.parse_args(argv)


def build_data(out: Path) -> Path:
    """The demo training tiles, split and blurred by `synth` into OUT/data/{blur,sharp} (built once)."""
    from cycledeblur.demo import write_demo_photos
    from cycledeblur.synth import synthesize_folder

    data = out / "data"
    if not (data / "blur").is_dir():
        write_demo_photos(out / "photos")
        synthesize_folder(out / "photos" / "train", data, kind="mixed", seed=0, noise_sigma=0.005, progress=False)
    return data


def row_overrides(args: argparse.Namespace, mode: str, crop: int, batch: int, run_dir: Path, data: Path) -> list[str]:
    steps = args.steps
    log_every = 1 if mode == "plain" else steps
    return [
        *(MODES[mode] or []), f"data.crop_size={crop}", f"train.batch_size={batch}", f"train.max_steps={2 * steps}",
        f"train.log_every={log_every}", f"train.checkpoint_every={10 * steps}", f"train.sample_every={10 * steps}",
        "train.sample_size=64", "train.keep_checkpoints=1", f"output_dir={run_dir}",
        f"data.blur={data / 'blur'}", f"data.sharp={data / 'sharp'}",
    ]  # fmt: skip


def family_overrides(family: str | None) -> list[str]:
    """A generator family with its default options, for both generators (None: the config's networks)."""
    return [f"model.generator={{name: {family}}}", "model.reblur_generator=null"] if family else []


def run_row(config_path: Path, overrides: list[str], steps: int, count_flops: bool) -> dict[str, Any]:
    """In this process: train, then read the timed steps' throughput from the run's log."""
    from cycledeblur.config import load_config
    from cycledeblur.training import train
    from cycledeblur.training.tracking import read_metrics

    config = load_config(config_path, overrides)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train(config)
    logged = [row for row in read_metrics(Path(config.output_dir)) if "perf/steps_per_second" in row]
    # Each entry's rate covers the steps since the entry before it; the timed ones come after the warm-up.
    starts = [0] + [row["step"] for row in logged[:-1]]
    seconds = sum((row["step"] - start) / row["perf/steps_per_second"] for start, row in zip(starts, logged) if start >= steps)
    result: dict[str, Any] = {"images_per_second": steps * config.train.batch_size / seconds}
    if torch.cuda.is_available():
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if count_flops:
        result["flops_per_step"] = step_flops(config_path, overrides)
    return result


def step_flops(config_path: Path, overrides: list[str]) -> float:
    """FLOPs of one training step: the loop run for 2 steps minus the loop run for 1 (what both runs share, such
    as the final sample grid and the start-up checks, cancels out)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState
    from torch.utils.flop_counter import FlopCounterMode

    from cycledeblur.config import load_config
    from cycledeblur.training import train

    totals = []
    for steps in (1, 2):
        for state in (AcceleratorState, GradientState):
            state._reset_state()
        PartialState._reset_state()
        config = load_config(config_path, [*overrides, f"train.max_steps={steps}", "data.num_workers=0"])
        config.output_dir += f"-flops{steps}"
        with FlopCounterMode(display=False) as counter:
            train(config)
        totals.append(counter.get_total_flops())
    return float(totals[1] - totals[0])


def loader_throughput(config_path: Path, overrides: list[str], batches: int) -> float:
    """Images/s of one side's data loader alone (decode, crop, augment, collate), as the loop builds it."""
    from torch.utils.data import DataLoader

    from cycledeblur.config import load_config
    from cycledeblur.data import CropDataset, EpochSampler, load_image_source

    config = load_config(config_path, overrides)
    images = load_image_source(config.data.blur, key="data.blur")
    dataset = CropDataset(images, config.data, seed=0)
    sampler = EpochSampler(len(dataset), seed=0)
    loader = DataLoader(dataset, config.train.batch_size, sampler=sampler, drop_last=True,
                        num_workers=config.data.num_workers)  # fmt: skip

    def endless() -> Iterator[list[torch.Tensor]]:
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from loader

    stream = endless()
    next(stream)  # the first batch waits for the workers to start
    started = time.perf_counter()
    delivered = sum(len(next(stream)[0]) for _ in range(batches))  # a batch is (crops, skipped-file counts)
    return delivered / (time.perf_counter() - started)


def inference_rows(args: argparse.Namespace, on_gpu: bool) -> list[dict[str, Any]]:
    """Megapixels/s of `Deblurrer` with the config's (untrained: speed does not depend on the weights) generator on a
    real photo resized to each size, whole and tiled, per precision; the tiled rows carry the tiling overhead."""
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    from cycledeblur.config import load_config
    from cycledeblur.demo import load_photo
    from cycledeblur.inference import Deblurrer
    from cycledeblur.models import build_generator

    config = load_config(args.config)
    channels = config.data.channels
    families = [(config.model.generator.name, config.model.generator.options)]
    families += [(family, {}) for family in args.generators if family != config.model.generator.name]
    precisions = args.inference_precisions or (["fp32", "bf16", "fp16"] if on_gpu else ["fp32"])
    device = "cuda" if on_gpu else "cpu"
    rows = []
    for (family, options), size, precision in itertools.product(families, args.inference_sizes, precisions):
        generator = build_generator(family, in_channels=channels, out_channels=channels, **options)
        width, height = (int(side) for side in size.split("x"))
        photo = to_tensor(Image.fromarray(load_photo("coffee")).resize((width, height), Image.Resampling.BICUBIC))
        seconds = {}
        for tiled in (False, True):
            deblurrer = Deblurrer(generator, device=device, precision=precision, tile=args.tile if tiled else None)
            # Warm-up: kernels, allocator; on a GPU cuDNN autotunes for these very shapes (on the CPU a crop will do).
            deblurrer(photo if on_gpu else photo[:, :256, :256])
            seconds[tiled] = mean_seconds(lambda: deblurrer(photo))  # returns on the CPU: waits for the device
        for tiled in (False, True):
            row = {"mode": f"deblur {'tiled ' + str(args.tile) if tiled else 'whole'}", "generator": family,
                   "size": size, "precision": precision, "megapixels_per_second": width * height / 1e6 / seconds[tiled],
                   "images_per_second": 1 / seconds[tiled]}  # fmt: skip
            if tiled:
                row["tiling_overhead"] = seconds[True] / seconds[False] - 1
            rows.append(row)
    return rows


def mean_seconds(run: Callable[[], Any], budget: float = 2.0) -> float:
    """Mean wall time of `run`, repeated until `budget` seconds have passed (at least once)."""
    started, runs = time.perf_counter(), 0
    while runs == 0 or time.perf_counter() - started < budget:
        run()
        runs += 1
    return (time.perf_counter() - started) / runs


def child(command: list[str]) -> tuple[dict[str, Any], float]:
    """Run `command`, return its last stdout line as JSON and its peak RSS in GiB (from wait4's rusage)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"a benchmark row failed ({shlex.join(command)}), exit code {process.returncode}")
    return json.loads(output.strip().splitlines()[-1]), usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def device_description() -> dict[str, Any]:
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peak = next((flops for key, flops in BF16_PEAK.items() if key in name), None)
        return {"device": name, "bf16_peak_flops": peak}
    from bench.quality import machine

    computer = machine()
    return {"device": f"{computer['cpu']} ({computer['cpu_count']} cores)", "bf16_peak_flops": None}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.row:
        spec = json.loads(args.row)
        if spec.get("loader"):
            print(json.dumps({"images_per_second": loader_throughput(args.config, spec["overrides"], 10 * args.steps)}))
        else:
            print(json.dumps(run_row(args.config, spec["overrides"], args.steps, spec["count_flops"])))
        return 0

    on_gpu = torch.cuda.is_available()
    modes = [mode for mode in args.modes if on_gpu or mode != "fp16"]
    data = build_data(args.out)
    described = device_description()
    results, flops = [], {}
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    command = shlex.join(["python", "bench/speed.py", *argv])
    args.out.mkdir(parents=True, exist_ok=True)
    jsonl = (args.out / "speed.jsonl").open("w")  # row by row, so that a long run shows (and keeps) its progress

    def record(row: dict[str, Any]) -> None:
        jsonl.write(json.dumps({**row, "config": str(args.config), "device": described["device"], "date": date,
                                "command": command}) + "\n")  # fmt: skip
        jsonl.flush()

    runs = [(mode, None) for mode in modes] + [("shipped", family) for family in args.generators]
    for crop in args.crops:
        for batch in args.batches:
            for mode, family in runs:
                name = f"{family} generator" if family else mode
                run_dir = args.out / "runs" / f"{name.replace(' ', '-')}-{crop}-{batch}"
                for stale in args.out.glob(f"runs/{run_dir.name}*"):  # an earlier run's log would mix into this one's
                    shutil.rmtree(stale)
                overrides = row_overrides(args, mode, crop, batch, run_dir, data) + family_overrides(family)
                count = mode == "plain" or family is not None
                spec = json.dumps({"overrides": overrides, "count_flops": count})
                row_command = [sys.executable, __file__, "--config", str(args.config), "--steps", str(args.steps), "--row", spec]
                console.print(f"{name}, crop {crop}, batch {batch} ...", highlight=False)
                measured, rss = child(row_command)
                if count:
                    flops[(crop, batch, family)] = measured["flops_per_step"]
                row = {"mode": name, "crop": crop, "batch": batch, **measured}
                row.setdefault("peak_memory_gib", rss)
                row["peak_memory_kind"] = "cuda max allocated" if on_gpu else "peak RSS"
                if (crop, batch, family) in flops:
                    row["tflops_per_second"] = flops[(crop, batch, family)] / batch * row["images_per_second"] / 1e12
                    if described["bf16_peak_flops"]:
                        row["mfu"] = row["tflops_per_second"] * 1e12 / described["bf16_peak_flops"]
                plain = row if name == "plain" else next(
                    (r for r in results if (r["mode"], r["crop"], r["batch"]) == ("plain", crop, batch)), None
                )
                if plain:
                    row["vs_plain"] = row["images_per_second"] / plain["images_per_second"]
                results.append(row)
                record(row)
    if runs:
        loader_overrides = row_overrides(args, "shipped", args.crops[0], args.batches[0], args.out / "runs" / "loader", data)
        loader, _ = child([sys.executable, __file__, "--config", str(args.config), "--steps", str(args.steps), "--row",
                           json.dumps({"overrides": loader_overrides, "loader": True})])  # fmt: skip
        record({"mode": "data loader alone", **loader})
    inference = inference_rows(args, on_gpu) if args.inference_sizes else []
    for row in inference:
        record(row)
    jsonl.close()
    if runs:
        report(results, loader, described, args, command, date)
    if inference:
        report_inference(inference)
    print(command)
    return 0


def report(results: list[dict], loader: dict, described: dict, args: argparse.Namespace, command: str, date: str) -> None:
    headers = ["mode", "crop", "batch", "images/s", "vs plain", "peak memory (GiB)", "TFLOP/s", "MFU"]
    lines = []
    for row in results:
        mfu = f"{row['mfu']:.1%}" if "mfu" in row else ""
        lines.append([row["mode"], str(row["crop"]), str(row["batch"]), f"{row['images_per_second']:.3g}",
                      f"{row['vs_plain']:.2f}x" if "vs_plain" in row else "", f"{row['peak_memory_gib']:.2f}",
                      f"{row.get('tflops_per_second', 0):.3f}", mfu])  # fmt: skip
    table = Table(title=f"Training step, {args.config} on {described['device']}")
    for header in headers:
        table.add_column(header, justify="left" if header == "mode" else "right")
    for line in lines:
        table.add_row(*line)
    console.print(table)
    loader_line = (f"data loader alone (one side, crop {args.crops[0]}, batch {args.batches[0]}, the config's workers): "
                   f"{loader['images_per_second']:.1f} images/s")  # fmt: skip
    console.print(loader_line, highlight=False)
    markdown = ["| " + " | ".join(headers) + " |", "| --- " * len(headers) + "|"]
    markdown += ["| " + " | ".join(line) + " |" for line in lines]
    print("\n" + "\n".join(markdown) + f"\n\n{loader_line}\n{described['device']}, torch {torch.__version__}, {date}\n")


def report_inference(rows: list[dict[str, Any]]) -> None:
    headers = ["deblur", "generator", "size", "precision", "megapixels/s", "images/s", "tiling overhead"]
    lines = [[row["mode"], row["generator"], row["size"], row["precision"], f"{row['megapixels_per_second']:.3g}",
              f"{row['images_per_second']:.3g}", f"{row['tiling_overhead']:+.0%}" if "tiling_overhead" in row else ""]
             for row in rows]  # fmt: skip
    print("| " + " | ".join(headers) + " |\n" + "| --- " * len(headers) + "|")
    print("\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
