"""Peak memory of training with each shipped config, as shipped (its crop, batch, networks and precision), on the CPU:
the peak RSS of a `cycledeblur train` process run for a few steps.

Rerun: python bench/memory.py [--configs default adapt ...] [--steps 3] [--out bench/out/memory]

Data: the demo photos (`cycledeblur.demo`), blurred by `synth` into unrelated halves (unpaired configs) and into
pairs (paired configs); `general.yaml` blurs the sharp half in its loader. `finetune-satellite.yaml` needs 4-band
images and is not run. Each config runs in its own process for --steps steps (no validation, no sample grid), and
the peak RSS is read from wait4's rusage: model, optimizer state, activations, the loader and the images held in
memory (`data.cache_images`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/memory.py` from anywhere: import bench.*

from bench.quality import machine  # noqa: E402
from cycledeblur.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    "default",
    "cpu-fast",
    "paired",
    "paired-cpu-fast",
    "general",
    "adapt",
    "adapt-gpu",
    "finetune-medical",
    "demo",
    "unit",
    "unit-cpu-fast",
]


def build_data(out: Path) -> Path:
    """OUT/data/{unpaired,paired}/{blur,sharp}, built once from the demo photos' training tiles."""
    from cycledeblur.demo import write_demo_photos
    from cycledeblur.synth import synthesize_folder

    data = out / "data"
    if not (data / "paired").is_dir():
        write_demo_photos(out / "photos")
        synthesize_folder(out / "photos" / "train", data / "unpaired", kind="mixed", seed=0, noise_sigma=0.005, progress=False)
        synthesize_folder(out / "photos" / "train", data / "paired", kind="mixed", seed=0, noise_sigma=0.005, paired=True, progress=False)
    return data


def data_overrides(name: str, data: Path) -> list[str]:
    config = load_config(ROOT / "configs" / f"{name}.yaml", [])
    if config.data.synthetic_blur is not None:
        return [f"data.sharp={data / 'unpaired' / 'sharp'}"]
    folder = data / ("paired" if config.train.mode == "paired" else "unpaired")
    return [f"data.blur={folder / 'blur'}", f"data.sharp={folder / 'sharp'}"]


def peak_rss(name: str, steps: int, data: Path, out: Path) -> float:
    """GiB: the peak RSS of `cycledeblur train --config configs/NAME.yaml` run for `steps` steps."""
    command = [
        *(sys.executable, "-m", "cycledeblur", "train", "--config", str(ROOT / "configs" / f"{name}.yaml")),
        *data_overrides(name, data),
        *(f"train.max_steps={steps}", "train.sample_every=1000000", "train.checkpoint_every=1000000"),
        *("train.log_every=1", f"output_dir={out / 'runs' / name}"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(out / ".cache")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{errors[-2000:]}")
    return usage.ru_maxrss / 2**20  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "memory")
    args = parser.parse_args(argv)
    data = build_data(args.out)
    print("| config | crop | batch | precision | peak RSS (GiB) |\n| --- | ---: | ---: | --- | ---: |")
    for name in args.configs:
        rss = peak_rss(name, args.steps, data, args.out)
        config = load_config(args.out / "runs" / name / "config.yaml", [])  # as the run resolved it (`auto`)
        cells = [f"`{name}.yaml`", config.data.crop_size, config.train.batch_size, config.train.mixed_precision, f"{rss:.2f}"]
        print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)
    described = machine()
    flags = ", ".join(flag for flag in ("avx512_bf16", "amx_bf16") if described[flag]) or "AVX2 only"
    date = datetime.now(timezone.utc).date().isoformat()
    print(f"\n{described['cpu']}, {described['cpu_count']} cores ({flags}), torch {described['torch']}, {date}")
    print("rerun: python bench/memory.py " + shlex.join(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
