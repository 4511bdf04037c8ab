"""Bundle a finished training run's generator with the package, as the model `cycledeblur --model NAME` runs.

Rerun: python bench/bundle.py RUN [--name general] [--benchmark-table FILE.md] [--out DIR]

Copies RUN/generator/{config.json, model.safetensors} into cycledeblur/pretrained/NAME/ (or --out) and writes
there the model card (README.md) and bundle.json (what `cycledeblur models` shows): the commands that remake the
model, its steps and training time (read from RUN/logs/metrics.jsonl), the machine (read here: run this where RUN
was trained), the day training ended, the training data and its licences, and a quality table when given one.
Weights over 10 MB are refused: they would ship in every install of the package.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/bundle.py` from anywhere: import bench.*

from bench import corpus, quality  # noqa: E402
from bench.select_checkpoint import SELECTION_FILE  # noqa: E402
from cycledeblur.cli import print_error  # noqa: E402
from cycledeblur.config import Config, config_to_dict, load_config  # noqa: E402
from cycledeblur.errors import UserError  # noqa: E402
from cycledeblur.models import load_generator  # noqa: E402
from cycledeblur.models.hub import CONFIG_NAME, WEIGHTS_NAME  # noqa: E402
from cycledeblur.pretrained import BUNDLE_INFO, MODEL_CARD, PRETRAINED_ROOT, BundleInfo  # noqa: E402
from cycledeblur.pretrained.summary import duration, summary_lines  # noqa: E402
from cycledeblur.training.model_card import render_card  # noqa: E402
from cycledeblur.training.tracking import read_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAX_WEIGHTS_BYTES = 10_000_000
DATA_CARD = "data_cards/general-corpus.md"
WALL_TIME_METHOD = (
    "measured over the training loop, from its first step to its last log, as the sum over RUN/logs/metrics.jsonl"
    " of each logged interval's steps / perf/steps_per_second; sampling and checkpoints are in it, start-up"
    " (reading the photos, building the networks) and the final save are not"
)


@dataclass(frozen=True)
class Recipe:
    """How a bundled model is remade: its base config, the command that builds its photos, and what they are."""

    config: str
    corpus_command: str
    data: str


RECIPES = {
    "general": Recipe(
        config="configs/general.yaml",
        corpus_command="python bench/corpus.py bench/out/corpus",
        data=(
            f"{len(corpus.SPLITS['train'])} photographs of Debian's {corpus.WALLPAPER_PACKAGE} package (KDE Visual"
            " Design Group; LGPL-3.0 in each wallpaper's metadata.json, GPL-2+ in the package's copyright file),"
            f" downscaled by {' and '.join(map(str, corpus.TRAIN_SCALES))} and cut into {corpus.TILE} px tiles,"
            f" blurred in the loader; data card: {DATA_CARD}"
        ),
    ),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="finished run folder (config.yaml, generator/, logs/metrics.jsonl)")
    parser.add_argument("--name", default="general", choices=list(RECIPES), help="the bundled model's name")
    parser.add_argument(
        "--benchmark-table", type=Path, metavar="FILE.md", help="a Markdown table of measured quality, pasted into the card"
    )
    parser.add_argument("--out", type=Path, help="write here instead of cycledeblur/pretrained/NAME/")
    return parser.parse_args(argv)


def overrides(run: dict[str, Any], base: dict[str, Any], prefix: str = "") -> list[str]:
    """`key=value` overrides that turn the `base` config (as a dict) into `run`. A section that lost keys is given
    whole (a network of another family, say): an override can set keys but not remove them."""
    found = []
    for key, value in run.items():
        was = base.get(key)
        if isinstance(value, dict) and isinstance(was, dict) and set(was) <= set(value):
            found += overrides(value, was, f"{prefix}{key}.")
        elif value != was:
            found.append(f"{prefix}{key}={value if isinstance(value, str) else json.dumps(value)}")
    return found


def training_command(config: Config, base: str) -> str:
    """`cycledeblur train` on the `base` config, with the overrides that make it this run's (but its output_dir)."""
    run, recipe = config_to_dict(config), config_to_dict(load_config(ROOT / base))
    run["output_dir"] = recipe["output_dir"]
    return shlex.join(["cycledeblur", "train", "--config", base, *overrides(run, recipe)])


def training_time(metrics: list[dict[str, Any]], log_every: int) -> tuple[int, float]:
    """The last step, and the training loop's seconds: each logged interval's steps over its steps per second. A
    resumed launch logs from its checkpoint again, a multiple of `log_every` below its first logged step."""
    seconds, previous = 0.0, None
    for line in metrics:
        step = line["step"]
        if previous is None:
            start = 0
        elif step <= previous:
            start = (step - 1) // log_every * log_every
        else:
            start = previous
        seconds += (step - start) / line["perf/steps_per_second"]
        previous = step
    return previous or 0, seconds


def delivered(run: Path, steps: int) -> str:
    """Which weights of the run ship: those chosen on the validation split, when bench/select_checkpoint.py chose."""
    selection_file = run / "generator" / SELECTION_FILE
    if not selection_file.is_file():
        return f"the weights at the end of training (step {steps})"
    selection = json.loads(selection_file.read_text())
    return (
        f"the weights of step {selection['step']} of {steps}, the best on the validation split of bench/quality.py"
        f" (`{selection['command']}`):\n\n{selection['table']}\n"
    )


def machine() -> str:
    """This machine's GPU, or its CPU with its cores and bf16 instructions (what `mixed_precision: bf16` needs)."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA)"
    computer = quality.machine()
    bf16 = [flag for flag in ("avx512_bf16", "amx_bf16") if computer[flag]]
    return f"{computer['cpu']}, {computer['cpu_count']} CPUs, " + (" + ".join(bf16) if bf16 else "no avx512_bf16 or amx_bf16")


def read_run(run: Path) -> tuple[Config, list[dict[str, Any]]]:
    """The run's config and logged metrics, once checked to be a finished run."""
    needed = [run / "config.yaml", run / "generator" / CONFIG_NAME, run / "generator" / WEIGHTS_NAME]
    needed.append(run / "logs" / "metrics.jsonl")
    missing = [str(path.relative_to(run)) for path in needed if not path.is_file()]
    if missing:
        raise UserError(f"{run} is not a finished run: it has no {', no '.join(missing)}")
    metrics = [line for line in read_metrics(run) if "perf/steps_per_second" in line]
    if not metrics:
        raise UserError(f"{run}/logs/metrics.jsonl logs no perf/steps_per_second: its training time is unknown")
    return load_config(run / "config.yaml"), metrics


def card_sections(info: BundleInfo) -> str:
    """The card's account of how the model was made, and of its measured quality."""
    made = [
        "## How it was made",
        "",
        "```bash",
        info["corpus_command"],
        info["training_command"],
        "```",
        "",
        f"- Steps: {info['steps']}, in {duration(info['wall_seconds'])} of training, {info['wall_time_method']}",
        f"- Delivered: {info['delivered']}",
        f"- Machine: {info['machine']}",
        f"- Training ended: {info['date']}",
        f"- Data: {info['data']}",
        f"- Bundled with `{info['bundle_command']}`; `cycledeblur models` lists it",
        "",
        "## Quality",
        "",
        info["benchmark"].strip() if info["benchmark"] else "Not measured when it was bundled.",
    ]
    return "\n".join(made)


def bundle(args: argparse.Namespace, out: Path, command: str) -> BundleInfo:
    recipe = RECIPES[args.name]
    config, metrics = read_run(args.run)
    weights = args.run / "generator" / WEIGHTS_NAME
    size = weights.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        limit = f"at most {MAX_WEIGHTS_BYTES / 1e6:.0f} MB"
        raise UserError(f"{weights} is {size / 1e6:.1f} MB: a bundled model ships in every install, {limit}")
    generator = load_generator(args.run / "generator")  # strictly, as `--model NAME` will: a broken run stops here
    steps, seconds = training_time(metrics, config.train.log_every)
    ended = datetime.fromtimestamp(weights.stat().st_mtime, timezone.utc)  # generator/ is written as training ends
    benchmark = args.benchmark_table.read_text(encoding="utf-8") if args.benchmark_table else None
    info: BundleInfo = {
        "name": args.name,
        "family": generator.architecture,
        "parameters": sum(parameter.numel() for parameter in generator.parameters()),
        "weights_bytes": size,
        "corpus_command": recipe.corpus_command,
        "training_command": training_command(config, recipe.config),
        "steps": steps,
        "delivered": delivered(args.run, steps),
        "wall_seconds": round(seconds, 1),
        "wall_time_method": WALL_TIME_METHOD,
        "machine": machine(),
        "date": ended.strftime("%Y-%m-%d"),
        "data": recipe.data,
        "benchmark": benchmark,
        "bundle_command": command,
    }
    out.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copyfile(args.run / "generator" / name, out / name)
    last_metrics = {key: value for key, value in metrics[-1].items() if key != "step"}
    card = render_card(
        config,
        info["family"],
        steps,
        model_id=args.name,
        losses=last_metrics,
        data_card=f"`{DATA_CARD}`",
        sections=card_sections(info),
    )
    card.save(out / MODEL_CARD)
    (out / BUNDLE_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join(["python", "bench/bundle.py", *argv])
    out = args.out or PRETRAINED_ROOT / args.name
    try:
        info = bundle(args, out, command)
    except (UserError, OSError) as error:
        print_error(error)
        return 2
    print("\n".join(summary_lines(info, out)))
    print(f"rerun: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
