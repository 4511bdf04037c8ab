"""Whether the no-reference guard of an unpaired fine-tune (`train.guard`) makes the right call, on the runs of
bench/adapt.py: the guard's verdict on each run's last step against the truth on the photos the benchmark scores.

Rerun: python bench/guard_check.py RESULTS [RESULTS ...]   (each a results.json written by bench/adapt.py)

For each adapted run with a start (`model.init_from`): its last step (the weight average of its final checkpoint:
what the run delivers when nothing chooses) and its start deblur the run's sharp photos blurred by its final
reblurring generator, exactly as `train.guard` does at the end of a run (cycledeblur/training/guard.py, here in
fp32), and the guard keeps whichever scores higher. The truth is the last step's PSNR change over the start on the
row's scored pairs, set by set (bench/adapt.py's sets of that split). The guard is right when it keeps the last step
and that step harms no set by more than 0.1 dB (the adaptation's allowance), or keeps the start and the last step
does. Writes OUT/guard.json beside each results.json and prints a Markdown table, then the command that reruns it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/guard_check.py` from anywhere: import bench.*

from bench.adapt import ROWS, scored_folder  # noqa: E402
from bench.quality import load_pairs, psnr, run_script  # noqa: E402
from bench.select_checkpoint import checkpoint_generator  # noqa: E402
from cycledeblur.config import load_config  # noqa: E402
from cycledeblur.data import list_images, load_image_tensor  # noqa: E402
from cycledeblur.errors import UserError  # noqa: E402
from cycledeblur.inference import Deblurrer, resolve_generator  # noqa: E402
from cycledeblur.models import build_generator  # noqa: E402
from cycledeblur.training.checkpoints import list_checkpoints, network_weights  # noqa: E402
from cycledeblur.training.guard import GUARD_PHOTOS, centre_crops, pseudo_pair_psnr, starting_generator  # noqa: E402
from cycledeblur.training.samples import spread_indices  # noqa: E402

ALLOWED_HARM = 0.1  # dB, the adaptation's "never below zero-shot by more than"


def guard_scores(run: Path, last: torch.nn.Module) -> dict[str, float]:
    """`train.guard`'s scores of the last step and of the start, on the run's sharp photos and final reblurring."""
    config = load_config(run / "config.yaml")
    spec, channels = config.model.reblur_generator, config.data.channels
    reblur = build_generator(spec.name, in_channels=channels, out_channels=channels, **spec.options)
    reblur.load_state_dict(network_weights(list_checkpoints(run)[-1], config.train.mode)["reblur"])
    reblur.train()  # as in training: the sensor noise it learned is part of the blur
    sharp = list_images(Path(config.data.sharp))
    photos = [load_image_tensor(sharp[i], channels) for i in spread_indices(len(sharp), GUARD_PHOTOS)]
    candidates = {"trained": last, "start": starting_generator(last, config.model.init_from, channels)}
    crops = centre_crops(photos, last.size_multiple)
    return pseudo_pair_psnr(candidates, reblur, crops, torch.device("cpu"), contextlib.nullcontext)


def truth(row_key: str, out: Path, sets: dict, last: Deblurrer, start: Deblurrer) -> dict[str, float]:
    """Set key -> the last step's mean PSNR change over the start on that set's scored pairs."""
    changes = {}
    for set_key in sets:
        folder = scored_folder(out, ROWS[row_key]) / "sets" / set_key
        names = sorted(json.loads((folder / "manifest.json").read_text())["images"])
        changes[set_key] = statistics.fmean(
            psnr(last(pair.blurred), pair.sharp) - psnr(start(pair.blurred), pair.sharp) for pair in load_pairs(folder, names)
        )
    return changes


def check(results_path: Path) -> list[dict]:
    results = json.loads(results_path.read_text())
    out, checked = results_path.parent, []
    for row_key, row in results["rows"].items():
        for seed, run in row["runs"].items():
            run = Path(run)
            if not load_config(run / "config.yaml").model.init_from:
                continue  # from scratch: no start to fall back to, so no guard
            folder = checkpoint_generator(run, list_checkpoints(run)[-1], out / "guard" / f"{row_key}-seed{seed}")
            last = resolve_generator(str(folder))
            scores = guard_scores(run, last)
            changes = truth(row_key, out, row["sets"], Deblurrer(last), Deblurrer(resolve_generator(row["base"])))
            kept = "last step" if scores["trained"] >= scores["start"] else "start"
            harmful = min(changes.values()) < -ALLOWED_HARM
            checked.append(
                {
                    "row": row_key,
                    "seed": seed,
                    "guard": scores,
                    "kept": kept,
                    "last_step_change": changes,
                    "right": (kept == "start") == harmful,
                }
            )
    (out / "guard.json").write_text(json.dumps({"split": results["split"], "runs": checked}, indent=1))
    return checked


def markdown(checked: list[dict], split: str) -> str:
    lines = [
        f"| row | seed | guard: last step vs start (dB, pseudo-pairs) | kept | last step - start, {split} (dB, per set) | right |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    for run in checked:
        guard = run["guard"]
        changes = ", ".join(f"{key} {change:+.2f}" for key, change in run["last_step_change"].items())
        lines.append(
            f"| {run['row']} | {run['seed']} | {guard['trained']:.2f} vs {guard['start']:.2f} | {run['kept']} | {changes} | "
            f"{'yes' if run['right'] else 'no'} |"
        )
    right = sum(run["right"] for run in checked)
    lines.append(f"\nRight on {right} of {len(checked)} runs.")
    return "\n".join(lines)


def run_check(args: argparse.Namespace, command: str) -> None:
    for path in args.results:
        if not path.is_file():
            raise UserError(f"{path}: no such file (a results.json of bench/adapt.py)")
        print(markdown(check(path), json.loads(path.read_text())["split"]) + "\n")
    print(command)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json files of bench/adapt.py")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_script("bench/guard_check.py", parse_args, run_check, argv)


if __name__ == "__main__":
    sys.exit(main())
