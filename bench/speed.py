"""Training throughput of the full CycleGAN step, switch by switch, against a plain baseline measured in the same run;
then inference throughput, whole and tiled.

Rerun: python bench/speed.py [--config configs/default.yaml] [--crops 128 256] [--batches 1 4 16]
       [--modes plain tuned fused_adam bf16 channels_last compile shipped] [--generators unet light wiener]
       [--steps 5] [--out DIR]
       [--inference-sizes 1280x720 4000x3000] [--tile 512] [--inference-precisions fp32 bf16]
       [--onnx-precisions fp32 int8] [--onnx-input-size N] [--inference-repeats 3] [--reference DIR]
(`--modes` with no mode skips the training rows, `--inference-sizes` with no size the inference rows,
`--onnx-precisions` with no precision the onnxruntime rows.)

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

With --reference DIR (a checkout of junyanz/pytorch-CycleGAN-and-pix2pix, the 2017 reference CycleGAN, with its
requirements installed for --reference-python), each crop and batch first times the reference's own `train.py
--model cycle_gan` on the same blurred (trainA) and sharp (trainB) folders, its defaults otherwise (ResNet-9
generators, 70x70 PatchGANs, fp32), from the per-iteration times it prints, and every row gets its speed over it.

Per row: images/s, its ratio to plain at the same crop and batch, peak memory (CUDA max allocated on a GPU, the
process's peak RSS on the CPU), the step's FLOPs (`torch.utils.flop_counter.FlopCounterMode` over one step of the
plain loop: a multiply-add counts 2), the achieved TFLOP/s, and on a GPU the MFU against the device's dense bf16
peak. A last row times the data loader alone. Prints the table (terminal and Markdown), writes OUT/speed.jsonl
(one JSON object per row), and ends with the command line.

Inference: `Deblurrer` (what `cycledeblur deblur` runs; PyTorch eager) with the config's generator on the `coffee`
photo resized to each size, whole and in --tile tiles (overlap 32), per precision: megapixels/s, images/s, and the
tiled run's time over the whole-image run's (the tiling overhead): the median of --inference-repeats passes, after
a warm-up pass on the photo itself. Next to them, per --onnx-precisions, the same generator exported to ONNX
(`export_checked`, dynamic axes or one --onnx-input-size, parity-checked against PyTorch on 2 real photos; int8: `quantize_int8`, calibrated
on 4 of the blurred demo photos in OUT/data/blur), both files in OUT/onnx, run by `OnnxDeblurrer` (what `cycledeblur
deblur --model FILE.onnx` runs) on the same photo, whole and tiled, with as many intra-op threads as torch uses
(recorded per CPU row), timed alike: on the CPU (CPUExecutionProvider), and on a GPU also with the
CUDAExecutionProvider when this onnxruntime has it (a GPU run then adds a PyTorch fp32 CPU row, the CPU rows'
reference). Every inference row names its backend (pytorch /
onnxruntime), where it runs (`runs_on`: cpu / cuda) and its precision, and carries its speed over the PyTorch fp32
row of the same generator, size, tiling and device (`vs_pytorch_fp32`); onnxruntime rows carry their model file's
size (`onnx_mb`). A generator family that cannot be exported gets a row with the reason (`note`) instead of its
onnxruntime rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
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
        "--generators",
        nargs="*",
        default=[],
        metavar="FAMILY",
        help="also time these registered generator families (default options), as shipped (default: none)",
    )
    parser.add_argument("--steps", type=int, default=5, help="warm-up steps, then as many timed ones (default 5)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/speed"), help="default %(default)s")
    parser.add_argument(
        "--inference-sizes",
        nargs="*",
        default=["1280x720", "4000x3000"],
        metavar="WxH",
        help="deblur one photo of each size, whole and tiled (default %(default)s; none: skip inference)",
    )
    parser.add_argument("--tile", type=int, default=512, help="tile size of the tiled inference rows (default 512)")
    parser.add_argument(
        "--inference-precisions",
        nargs="+",
        default=None,
        choices=["fp32", "bf16", "fp16"],
        help="default: fp32, bf16 and fp16 on a GPU; fp32 on the CPU (bf16 is 11-26x slower on AVX2-only CPUs)",
    )
    parser.add_argument(
        "--onnx-precisions",
        nargs="*",
        default=["fp32", "int8"],
        choices=["fp32", "int8"],
        help="also time the generator exported to ONNX, in onnxruntime, at these precisions (default %(default)s; none: skip)",
    )
    parser.add_argument(
        "--onnx-input-size",
        type=int,
        metavar="N",
        help="export for this one input size (onnxruntime then tiles at it) instead of with dynamic axes",
    )
    parser.add_argument("--inference-repeats", type=int, default=3, help="timed passes per inference row, median (default 3)")
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="DIR",
        help="a checkout of junyanz/pytorch-CycleGAN-and-pix2pix: time its train.py (cycle_gan) at each crop and batch",
    )
    parser.add_argument(
        "--reference-python",
        default=sys.executable,
        metavar="PYTHON",
        help="the Python that runs the reference, with its requirements (default: this one)",
    )
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
        *(MODES[mode] or []),
        f"data.crop_size={crop}",
        f"train.batch_size={batch}",
        f"train.max_steps={2 * steps}",
        f"train.log_every={log_every}",
        f"train.checkpoint_every={10 * steps}",
        f"train.sample_every={10 * steps}",
        "train.sample_size=64",
        "train.keep_checkpoints=1",
        f"output_dir={run_dir}",
        f"data.blur={data / 'blur'}",
        f"data.sharp={data / 'sharp'}",
    ]


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
    from cycledeblur.data.workers import loader_workers

    config = load_config(config_path, overrides)
    images = load_image_source(config.data.blur, key="data.blur")
    dataset = CropDataset(images, config.data, seed=0)
    sampler = EpochSampler(len(dataset), seed=0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    workers = loader_workers(config.data.num_workers, device, images_cached=config.data.cache_images != "none")[0]
    loader = DataLoader(dataset, config.train.batch_size, sampler=sampler, drop_last=True, num_workers=workers)

    def endless() -> Iterator[list[torch.Tensor]]:
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from loader

    stream = endless()
    next(stream)  # the first batch waits for the workers to start
    started = time.perf_counter()
    delivered = sum(len(next(stream)[0]) for _ in range(batches))  # a batch is (crops, skipped-file counts)
    return delivered / (time.perf_counter() - started)


def inference_rows(args: argparse.Namespace, on_gpu: bool, data: Path) -> list[dict[str, Any]]:
    """Megapixels/s of `Deblurrer` with the config's (untrained: speed does not depend on the weights) generator on a
    real photo resized to each size, whole and tiled, per precision; then of the same generator exported to ONNX,
    in onnxruntime, per --onnx-precisions and device. The tiled rows carry the tiling overhead, every row its speed
    over the PyTorch fp32 row of the same generator, size, tiling and device."""
    from PIL import Image

    from cycledeblur.config import load_config
    from cycledeblur.demo import load_photo
    from cycledeblur.export.runtime import OnnxDeblurrer
    from cycledeblur.inference import Deblurrer
    from cycledeblur.models import build_generator

    config = load_config(args.config)
    channels = config.data.channels
    families = [(config.model.generator.name, config.model.generator.options)]
    families += [(family, {}) for family in args.generators if family != config.model.generator.name]
    precisions = args.inference_precisions or (["fp32", "bf16", "fp16"] if on_gpu else ["fp32"])
    device = "cuda" if on_gpu else "cpu"
    threads = torch.get_num_threads()  # PyTorch's intra-op threads; onnxruntime gets as many
    ort_devices = onnx_devices(on_gpu) if args.onnx_precisions else []
    rows = []
    for family, options in families:
        generator = build_generator(family, in_channels=channels, out_channels=channels, **options)
        # Exported first, on the CPU (a Deblurrer on a GPU moves the generator there).
        precisions_to_export = args.onnx_precisions if ort_devices else []
        models, failures = export_models(generator, family, precisions_to_export, args.out, data, args.onnx_input_size)
        rows += [
            {"mode": "onnx export", "generator": family, "backend": "onnxruntime", "precision": precision, "note": note}
            for precision, note in failures.items()
        ]
        for size in args.inference_sizes:
            width, height = (int(side) for side in size.split("x"))
            photo = Image.fromarray(load_photo("coffee")).resize((width, height), Image.Resampling.BICUBIC)
            photo = np.asarray(photo, dtype=np.float32).transpose(2, 0, 1) / 255  # C x H x W in [0, 1], as to_tensor
            runs: list[tuple[str, str, str]] = [("pytorch", precision, device) for precision in precisions]
            if on_gpu and "cpu" in ort_devices and models:  # the reference of the onnxruntime CPU rows
                runs.append(("pytorch", "fp32", "cpu"))
            runs += [("onnxruntime", precision, where) for where in ort_devices for precision in models]
            size_rows = []
            for backend, precision, where in runs:
                if backend == "pytorch":

                    def make(tile, precision=precision, where=where, generator=generator):
                        return Deblurrer(generator, device=where, precision=precision, tile=tile)
                else:

                    def make(tile, precision=precision, where=where, models=models):
                        return OnnxDeblurrer(models[precision], device=where, tile=tile, threads=threads)

                try:
                    seconds = whole_and_tiled_seconds(make, photo, args.tile, args.inference_repeats)
                except Exception as error:  # an execution provider that cannot run this graph: say so, go on
                    if backend == "pytorch":
                        raise
                    size_rows.append(
                        {
                            "mode": "deblur",
                            "generator": family,
                            "size": size,
                            "backend": backend,
                            "runs_on": where,
                            "precision": precision,
                            "note": one_line(error),
                        }
                    )
                    continue
                for tiled in (False, True):
                    row = {
                        "mode": f"deblur {'tiled ' + str(args.tile) if tiled else 'whole'}",
                        "generator": family,
                        "size": size,
                        "backend": backend,
                        "runs_on": where,
                        "precision": precision,
                        "megapixels_per_second": width * height / 1e6 / seconds[tiled],
                        "images_per_second": 1 / seconds[tiled],
                    }
                    if tiled:
                        row["tiling_overhead"] = seconds[True] / seconds[False] - 1
                    if where == "cpu":
                        row["threads"] = threads
                    if backend == "onnxruntime":
                        row["onnx_mb"] = models[precision].stat().st_size / 1e6
                    size_rows.append(row)
            add_ratios(size_rows)
            rows += size_rows
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """`vs_pytorch_fp32`: each timed row's megapixels/s over that of the PyTorch fp32 row of the same tiling and
    device, among `rows` (one generator and size)."""
    references = {
        (row["mode"], row["runs_on"]): row["megapixels_per_second"]
        for row in rows
        if (row["backend"], row["precision"]) == ("pytorch", "fp32") and "megapixels_per_second" in row
    }
    for row in rows:
        reference = references.get((row["mode"], row["runs_on"]))
        if reference and "megapixels_per_second" in row:
            row["vs_pytorch_fp32"] = row["megapixels_per_second"] / reference


def onnx_devices(on_gpu: bool) -> list[str]:
    """Where the onnxruntime rows run: the CPU, and the GPU when this onnxruntime has the CUDA execution provider."""
    try:
        import onnxruntime
    except ImportError:
        console.print("note: onnxruntime is not installed (pip install 'cycledeblur[onnx]'): no onnxruntime rows")
        return []
    if not on_gpu:
        console.print("note: no GPU: the onnxruntime rows run on the CPU only", highlight=False)
        return ["cpu"]
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        console.print(
            "note: this onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu): the onnxruntime rows run on the CPU only",
            highlight=False,
        )
        return ["cpu"]
    return ["cpu", "cuda"]


def export_models(
    generator: torch.nn.Module, family: str, precisions: list[str], out: Path, data: Path, input_size: int | None
) -> tuple[dict[str, Path], dict[str, str]]:
    """The generator exported with dynamic axes, or for one `input_size` (fp32, checked against PyTorch on 2 real
    photos), and quantized to int8 (calibrated on 4 real photos), into OUT/onnx: {precision: file} and {precision:
    why it failed}."""
    if not precisions:
        return {}, {}
    from cycledeblur.export.int8 import quantize_int8
    from cycledeblur.export.to_onnx import check_images, export_checked
    from cycledeblur.image_files import list_images

    fp32 = out / "onnx" / f"{family}.onnx"
    console.print(f"exporting the {family} generator to {fp32} ...", highlight=False)
    try:
        shape = {"dynamic": True} if input_size is None else {"input_size": input_size}
        export_checked(generator, fp32, check_images(data / "blur", generator.in_channels), **shape)
    except Exception as error:  # the exporter raises many types; every one means no ONNX rows for this family
        return {}, {precision: f"export failed: {one_line(error)}" for precision in precisions}
    models, failures = {"fp32": fp32}, {}
    if "int8" in precisions:
        # One blurred tile of each of 4 different demo photos (the first tile of every photo, 4 spread over them).
        firsts: dict[str, Path] = {}
        for path in list_images(data / "blur"):  # name order: china_0.png, china_1.png, ..., flower_0.png, ...
            firsts.setdefault(path.stem.rsplit("_", 1)[0], path)
        photos = list(firsts.values())
        calibration = [photos[index * len(photos) // 4] for index in range(min(4, len(photos)))]
        int8 = out / "onnx" / f"{family}.int8.onnx"
        try:
            quantize_int8(fp32, int8, calibration)
            models["int8"] = int8
        except Exception as error:
            failures["int8"] = f"int8 quantization failed: {one_line(error)}"
    return {precision: models[precision] for precision in precisions if precision in models}, failures


def whole_and_tiled_seconds(make: Callable[[int | None], Any], photo: np.ndarray, tile: int, repeats: int) -> dict[bool, float]:
    """Median seconds of `repeats` `deblur` passes over `photo` by `make(None)` (whole) and `make(tile)` (tiled),
    after a warm-up pass on the photo itself: kernels, allocator, cuDNN's autotuning for these very shapes,
    onnxruntime's memory plan per input shape."""
    seconds = {}
    for tiled in (False, True):
        deblurrer = make(tile if tiled else None)
        deblurrer.deblur(photo)
        seconds[tiled] = median_seconds(lambda deblurrer=deblurrer: deblurrer.deblur(photo), repeats)  # a host array: waits for the device
    return seconds


def one_line(error: Exception) -> str:
    """The error's type and first line, without terminal colour codes (the ONNX exporter colours its messages)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return f"{type(error).__name__}: {(text.splitlines() or [''])[0]}"


def median_seconds(run: Callable[[], Any], repeats: int) -> float:
    """The median wall time of `repeats` calls of `run`: one slow pass (another process's burst) does not count."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


REFERENCE_NAME = "reference (pytorch-CycleGAN-and-pix2pix)"
# "(epoch: 1, iters: 2, time: 3.120, data: 0.003)": seconds of compute per image, and the wait for the batch.
REFERENCE_TIMES = re.compile(r"time: ([0-9.]+), data: ([0-9.]+)")


def reference_row(args: argparse.Namespace, crop: int, batch: int, data: Path) -> dict[str, Any]:
    """The reference CycleGAN's train.py on the same blurred / sharp folders, its iterations timed by its own log:
    images/s over the last --steps of 2 x --steps iterations (one printed per iteration), and its peak RSS."""
    dataroot = args.out / "reference-data"
    dataroot.mkdir(parents=True, exist_ok=True)
    for side, folder in (("trainA", data / "blur"), ("trainB", data / "sharp")):
        if not (dataroot / side).exists():
            (dataroot / side).symlink_to(folder.resolve())
    options = (args.reference / "options" / "base_options.py").read_text()
    newer = "--load_size" in options  # the flags were renamed in 2019
    sizes = ["--load_size", str(crop), "--crop_size", str(crop), "--batch_size", str(batch)]
    if not newer:
        sizes = ["--loadSize", str(crop), "--fineSize", str(crop), "--batchSize", str(batch)]
    epochs = ["--n_epochs", "1000", "--n_epochs_decay", "0"] if newer else ["--niter", "1000", "--niter_decay", "0"]
    command = [
        *(args.reference_python, "train.py", "--dataroot", str(dataroot.resolve()), "--name", f"speed-{crop}-{batch}"),
        *("--model", "cycle_gan", "--gpu_ids", "0" if torch.cuda.is_available() else "-1", *sizes, *epochs),
        *("--display_id", "0", "--no_html", "--print_freq", str(batch), "--save_latest_freq", "1000000000"),
        *("--save_epoch_freq", "1000000", "--checkpoints_dir", str((args.out / "reference-runs").resolve())),
    ]
    process = subprocess.Popen(command, cwd=args.reference, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds, output = [], []
    for line in process.stdout:
        output.append(line)
        if found := REFERENCE_TIMES.search(line):
            seconds.append(float(found[1]) * batch + float(found[2]))  # one iteration: its batch and the wait for it
            if len(seconds) == 2 * args.steps:
                process.terminate()
                break
    process.stdout.close()
    _, _, usage = os.wait4(process.pid, 0)
    if len(seconds) < 2 * args.steps:
        raise SystemExit(f"the reference stopped after {len(seconds)} iterations ({shlex.join(command)}):\n" + "".join(output[-20:]))
    return {"images_per_second": batch * args.steps / sum(seconds[args.steps :]), "peak_memory_gib": usage.ru_maxrss / 2**20}


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
    flags = ", ".join(flag for flag in ("avx512_bf16", "amx_bf16") if computer[flag]) or "AVX2 only, no bf16 instructions"
    return {"device": f"{computer['cpu']} ({computer['cpu_count']} cores, {flags})", "bf16_peak_flops": None}


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
        jsonl.write(json.dumps({**row, "config": str(args.config), "device": described["device"], "date": date, "command": command}) + "\n")
        jsonl.flush()

    runs = [(mode, None) for mode in modes] + [("shipped", family) for family in args.generators]
    for crop in args.crops:
        for batch in args.batches:
            reference = None
            if args.reference:  # first, so that every row of this crop and batch is compared with it
                console.print(f"{REFERENCE_NAME}, crop {crop}, batch {batch} ...", highlight=False)
                reference = {"mode": REFERENCE_NAME, "crop": crop, "batch": batch, **reference_row(args, crop, batch, data)}
                reference["peak_memory_kind"] = "peak RSS"
                results.append(reference)
                record(reference)
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
                plain = (
                    row
                    if name == "plain"
                    else next((r for r in results if (r["mode"], r["crop"], r["batch"]) == ("plain", crop, batch)), None)
                )
                if plain:
                    row["vs_plain"] = row["images_per_second"] / plain["images_per_second"]
                if reference:
                    row["vs_reference"] = row["images_per_second"] / reference["images_per_second"]
                results.append(row)
                record(row)
    if runs:
        loader_overrides = row_overrides(args, "shipped", args.crops[0], args.batches[0], args.out / "runs" / "loader", data)
        loader, _ = child(
            [
                sys.executable,
                __file__,
                "--config",
                str(args.config),
                "--steps",
                str(args.steps),
                "--row",
                json.dumps({"overrides": loader_overrides, "loader": True}),
            ]
        )
        record({"mode": "data loader alone", **loader})
    inference = inference_rows(args, on_gpu, data) if args.inference_sizes else []
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
    headers = ["mode", "crop", "batch", "images/s", "vs plain", "vs reference", "peak memory (GiB)", "TFLOP/s", "MFU"]
    lines = []
    for row in results:
        mfu = f"{row['mfu']:.1%}" if "mfu" in row else ""
        lines.append(
            [
                row["mode"],
                str(row["crop"]),
                str(row["batch"]),
                f"{row['images_per_second']:.3g}",
                f"{row['vs_plain']:.2f}x" if "vs_plain" in row else "",
                f"{row['vs_reference']:.2f}x" if "vs_reference" in row else "",
                f"{row['peak_memory_gib']:.2f}",
                f"{row['tflops_per_second']:.3f}" if "tflops_per_second" in row else "",
                mfu,
            ]
        )
    table = Table(title=f"Training step, {args.config} on {described['device']}")
    for header in headers:
        table.add_column(header, justify="left" if header == "mode" else "right")
    for line in lines:
        table.add_row(*line)
    console.print(table)
    loader_line = (
        f"data loader alone (one side, crop {args.crops[0]}, batch {args.batches[0]}, the config's workers): "
        f"{loader['images_per_second']:.1f} images/s"
    )
    console.print(loader_line, highlight=False)
    markdown = ["| " + " | ".join(headers) + " |", "| --- " * len(headers) + "|"]
    markdown += ["| " + " | ".join(line) + " |" for line in lines]
    print("\n" + "\n".join(markdown) + f"\n\n{loader_line}\n{described['device']}, torch {torch.__version__}, {date}\n")


def report_inference(rows: list[dict[str, Any]]) -> None:
    headers = [
        "deblur",
        "generator",
        "size",
        "backend",
        "on",
        "precision",
        "threads",
        "megapixels/s",
        "images/s",
        "vs PyTorch fp32",
        "tiling overhead",
        "file (MB)",
        "note",
    ]
    lines = [
        [
            row["mode"],
            row["generator"],
            row.get("size", ""),
            row.get("backend", ""),
            row.get("runs_on", ""),
            row["precision"],
            str(row.get("threads", "")),
            f"{row['megapixels_per_second']:.3g}" if "megapixels_per_second" in row else "",
            f"{row['images_per_second']:.3g}" if "images_per_second" in row else "",
            f"{row['vs_pytorch_fp32']:.2f}x" if "vs_pytorch_fp32" in row else "",
            f"{row['tiling_overhead']:+.0%}" if "tiling_overhead" in row else "",
            f"{row['onnx_mb']:.2f}" if "onnx_mb" in row else "",
            row.get("note", ""),
        ]
        for row in rows
    ]
    print("| " + " | ".join(headers) + " |\n" + "| --- " * len(headers) + "|")
    print("\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
