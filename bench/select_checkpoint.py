"""Which checkpoint of a training run to deliver, chosen on the validation split of the quality benchmark.

Rerun: python bench/select_checkpoint.py RUN [--out bench/out/select/RUN_NAME] [--deliver]

Every complete checkpoint of RUN (and RUN/generator, the end of training) is written out as a generator folder
(the weight average when the run keeps one: what the run would deliver had it stopped there), scored by
`bench/quality.py --split val --methods general`, and ranked by its mean PSNR gain over the blurred rows, with the
do-no-harm row (sharp photos in) beside it. The test split is never read. `--deliver` copies the winner into
RUN/generator, where `bench/bundle.py` takes it from.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from cycledeblur.config import load_config
from cycledeblur.errors import UserError
from cycledeblur.models import build_generator
from cycledeblur.training.checkpoints import list_checkpoints, network_weights, unwrapped_state

ROOT = Path(__file__).resolve().parents[1]
AVERAGE_PREFIX = "weight_average.module."
SELECTION_FILE = "selected.json"


def checkpoint_generator(run: Path, checkpoint: Path, folder: Path) -> Path:
    """The generator `checkpoint` would deliver, saved in `folder` (config.json + model.safetensors)."""
    config = load_config(run / "config.yaml")
    options = config.model.generator.options
    generator = build_generator(config.model.generator.name, in_channels=config.data.channels, out_channels=config.data.channels, **options)
    loop_state = load_file(checkpoint / "loop_state.safetensors")
    averaged = {key.removeprefix(AVERAGE_PREFIX): value for key, value in loop_state.items() if key.startswith(AVERAGE_PREFIX)}
    weights = unwrapped_state(averaged) if averaged else network_weights(checkpoint, config.train.mode)["deblur"]
    generator.load_state_dict(weights, strict=True)
    generator.save_pretrained(folder)
    return folder


def score_on_val(generator: Path, out: Path, corpus: Path) -> dict:
    command = [
        sys.executable,
        str(ROOT / "bench" / "quality.py"),
        "--split",
        "val",
        "--methods",
        "general",
        "--general",
        str(generator),
        "--out",
        str(out),
        "--corpus",
        str(corpus),
    ]
    if subprocess.run(command, stdout=subprocess.DEVNULL).returncode != 0:
        raise UserError(f"scoring {generator} failed: {' '.join(command)}")
    return json.loads((out / "results.json").read_text())


def gains(results: dict) -> tuple[float, float]:
    """Mean PSNR gain over the blurred rows, and the PSNR of sharp photos passed through (do no harm)."""
    blurred, harmless = [], float("nan")
    for key, row in results["sets"].items():
        psnr = row["methods"]["general"]["psnr"]
        if key == "sharp":
            harmless = psnr
        else:
            blurred.append(psnr - row["methods"]["input"]["psnr"])
    return sum(blurred) / len(blurred), harmless


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, help="default bench/out/select/RUN_NAME")
    parser.add_argument("--corpus", type=Path, default=Path("bench/out/corpus"))
    parser.add_argument("--deliver", action="store_true", help="copy the best generator into RUN/generator")
    args = parser.parse_args(argv)
    out = args.out or Path("bench/out/select") / args.run.name
    candidates = {f"step {int(c.name.split('_')[1])}": c for c in list_checkpoints(args.run)}
    if not candidates:
        print(f"error: {args.run} has no complete checkpoints", file=sys.stderr)
        return 2
    ranked = []
    for label, checkpoint in candidates.items():
        folder = checkpoint_generator(args.run, checkpoint, out / "generators" / checkpoint.name)
        results = score_on_val(folder, out, args.corpus)  # one OUT for all: the val sets are built once
        shutil.copy2(out / "results.json", out / f"results-{checkpoint.name}.json")
        gain, harmless = gains(results)
        ranked.append((gain, harmless, label, folder))
        print(f"{label}: mean gain {gain:+.2f} dB over the blurred val rows, sharp photos in -> {harmless:.2f} dB", flush=True)
    best = max(ranked)
    rows = [f"| {label}{' (chosen)' if label == best[2] else ''} | {gain:+.2f} | {harmless:.2f} |" for gain, harmless, label, _ in ranked]
    header = ["| checkpoint | mean PSNR gain, blurred val rows (dB) | sharp photos in: PSNR (dB) |", "| --- | ---: | ---: |"]
    table = "\n".join([*header, *rows])
    print("\n" + table)
    command = "python bench/select_checkpoint.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.deliver:
        (args.run / "generator").mkdir(exist_ok=True)  # a run stopped before its end has none yet
        for file in ("config.json", "model.safetensors"):
            shutil.copy2(best[3] / file, args.run / "generator" / file)
        # What bench/bundle.py reports as the delivered weights.
        selection = {"step": int(best[2].split()[1]), "command": command, "table": table}
        (args.run / "generator" / SELECTION_FILE).write_text(json.dumps(selection, indent=1) + "\n")
        print(f"\n{best[2]} copied into {args.run / 'generator'}")
    print("\nrerun: " + command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
