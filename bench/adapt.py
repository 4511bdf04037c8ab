"""Unpaired adaptation on held-out photos: a base model zero-shot against the same model adapted to a blur by
configs/adapt.yaml, on unpaired folders, over seeds.

Rerun: python bench/adapt.py [--split val|test] [--rows motion blur-shift aerial medical scratch unit-medical]
[--base general] [--seeds 0 1 2] [--deliver worst-row|worst-pair|mean|guard] [--set K=V ...] [--unit-set K=V ...]

Rows (one user's blur and photos each):
- motion: camera shake. Training folders: the corpus's train tiles (bench/corpus.py), half of them blurred by
  `cycledeblur synth --kind motion` (noise 0.005), the other half sharp, so that no pair exists. Scored on the
  split's photos under bench/quality.py's mild and strong motion rows (its sets, its seeds). Base: --base.
- blur-shift: the same camera shake, adapted from a base that never saw it: configs/general.yaml without motion
  blur (BASE_RECIPES["no-motion"]), trained by this benchmark on the corpus's train photos and reused after.
- aerial, medical (content shift): the domain examples of `cycledeblur.domain_examples` (PyWavelets' aerial
  photograph; pydicom's CT, MR and radiography slices), split by `domain_corpus` into train / val / test bands of
  each image, blurred by `synth --kind gaussian`: a blur the base knows, on content it was not trained on. Scored
  under bench/quality.py's mild and strong Gaussian rows. Base: --base.
- scratch: the motion row's folders, unpaired from scratch (no `model.init_from`, SCRATCH_RECIPE): its change is
  over the input.
- unit-medical: the medical row's folders and scoring, in the variational mode: configs/unit-cpu-fast.yaml started
  from a UNIT run that this benchmark trains with it (seed 0) on the corpus's train photos, unpaired, Gaussian blur
  (BASE_RECIPES["unit-photos"]): the same recipe and budget as UNIT from scratch, moved to another content domain.
  `--unit-set` overrides configs/unit-cpu-fast.yaml for its base and adapted runs, where `--set` and `--base-set`
  override the other rows' configs.

Every adapted run scores itself on the val split's pairs of its row while it trains (`data.val_blur`) and delivers
its best step there (`train.keep_best`): with `--deliver worst-row` (the default) the step whose worst scored set
(mild, strong: one subfolder each) gained most over the start (`train.keep_best_by=worst`: no set may pay for
another), with `--deliver worst-pair` the same with every pair a group of its own (no pair may pay for another),
with `--deliver mean` the best mean over the pairs. With `--deliver guard` it delivers its last step unless the
no-reference guard (`train.guard`) prefers the start, as a user without pairs would run it, and the table reports
what the guard chose. The test split is only scored. With `--split val` the numbers are those of the very photos
the steps were chosen on: use them to compare recipes, not to report.

Writes OUT/results.json (every number, per seed and per image), OUT/figure-ROW.png (crops where the sharp photo has
most detail: input | zero-shot | adapted, first seed | sharp) and prints a Markdown table (zero-shot, adapted as
mean ± standard deviation over seeds, and the worst seed's change), then the command that reruns it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/adapt.py` from anywhere: import bench.*


from bench.quality import (  # noqa: E402
    BLUR_SETS,
    NOISE_SIGMA,
    ROOT,
    add_override_argument,
    corpus_photos,
    degraded_set,
    figure_examples,
    finished,
    load_pairs,
    log,
    machine,
    run_folder,
    run_script,
    save_figure,
    score_set,
    summary,
    train_run,
)
from cycledeblur.config import load_config  # noqa: E402
from cycledeblur.domain_examples import write_domain_splits  # noqa: E402
from cycledeblur.inference import Deblurrer, resolve_generator  # noqa: E402
from cycledeblur.synth import synthesize_folder  # noqa: E402
from cycledeblur.training.tracking import read_metrics  # noqa: E402

ADAPT_CONFIG = ROOT / "configs" / "adapt.yaml"
UNIT_CONFIG = ROOT / "configs" / "unit-cpu-fast.yaml"
DELIVERY = {
    "worst-row": ["train.keep_best=true", "train.keep_best_by=worst"],
    "worst-pair": ["train.keep_best=true", "train.keep_best_by=worst"],
    "mean": ["train.keep_best=true"],
    "guard": ["train.guard=true"],
}


GENERAL_CONFIG = ROOT / "configs" / "general.yaml"


@dataclass(frozen=True)
class BaseRecipe:
    """A base model that this benchmark trains (seed 0) on the corpus's train photos and reuses after."""

    config: Path
    overrides: tuple[str, ...] = ()
    # "": the config makes its pairs from the sharp photos (data.synthetic_blur); else unpaired folders of the
    # photos, half blurred by `synth --kind blur_kind` with seed blur_seed
    blur_kind: str = ""
    blur_seed: int = 0


BASE_RECIPES = {
    # configs/general.yaml without camera shake (the mixture's pairs of kinds include it too), on a third of its
    # schedule (its lr decay has the same shape), so that adapting to shake has something to learn.
    "no-motion": BaseRecipe(
        GENERAL_CONFIG,
        ("data.synthetic_blur.motion=0", "data.synthetic_blur.mixture=0", "train.max_steps=3000", "train.checkpoint_every=1000"),
    ),
    # UNIT from scratch on photos, unpaired, for a UNIT row on other content.
    "unit-photos": BaseRecipe(UNIT_CONFIG, blur_kind="gaussian", blur_seed=22),
}


# The scratch row: configs/adapt.yaml with nothing to start from, so nothing to hold or to guard, and the general
# recipe's learning rate for a deblurrer that has everything to learn.
SCRATCH_RECIPE = ["model.init_from=", "train.freeze=[]", "train.freeze_steps=0", "train.lr_g=1e-3"]
SCRATCH = "scratch"  # the base_recipe of a row trained from scratch

DOMAIN_PIECE_WIDTH = 128  # px: val and test bands are cut into pieces, so that the worst-pair choice has pairs


@dataclass(frozen=True)
class AdaptRow:
    key: str
    title: str
    kind: str  # the `cycledeblur synth --kind` of the user's blurred folder
    scored_sets: tuple[str, ...]  # bench/quality.py's rows that score it
    seed: int  # of the synthetic blur of the training folder
    base_recipe: str = ""  # a key of BASE_RECIPES, trained by this benchmark, or SCRATCH; "": the --base model
    photos: str = "corpus"  # the photo corpus (--corpus), or a key of DOMAIN_WRITERS
    config: Path = ADAPT_CONFIG  # of the adapted runs

    @property
    def variational(self) -> bool:
        return self.config == UNIT_CONFIG


MOTION_SETS = ("motion-mild", "motion-strong")
GAUSSIAN_SETS = ("gaussian-mild", "gaussian-strong")
ROWS = {
    row.key: row
    for row in (
        AdaptRow("motion", "motion blur", "motion", MOTION_SETS, 21),
        AdaptRow("blur-shift", "motion blur, base trained without it", "motion", MOTION_SETS, 21, "no-motion"),
        AdaptRow("aerial", "aerial photograph, Gaussian blur", "gaussian", GAUSSIAN_SETS, 22, photos="aerial"),
        AdaptRow("medical", "CT, MR and radiographs, Gaussian blur", "gaussian", GAUSSIAN_SETS, 23, photos="medical"),
        AdaptRow("scratch", "motion blur, unpaired from scratch", "motion", MOTION_SETS, 21, SCRATCH),
        AdaptRow(
            "unit-medical",
            "UNIT, CT, MR and radiographs, Gaussian blur, from UNIT on photos",
            "gaussian",
            GAUSSIAN_SETS,
            23,
            "unit-photos",
            photos="medical",
            config=UNIT_CONFIG,
        ),
    )
}


def domain_corpus(domain: str, folder: Path) -> Path:
    """FOLDER/{train,val,test}: `write_domain_splits`'s bands of `domain`, val and test cut into pieces
    DOMAIN_PIECE_WIDTH wide, so that the worst-pair choice has pairs; built once."""
    done = folder / "done"  # written last: a folder without it is incomplete
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        write_domain_splits(domain, folder, piece_width=DOMAIN_PIECE_WIDTH)
        done.write_text("")
    return folder


def row_corpus(args: argparse.Namespace, row: AdaptRow) -> Path:
    """The train / val / test photos of `row`: the photo corpus, or its domain's, built once under --runs."""
    return args.corpus if row.photos == "corpus" else domain_corpus(row.photos, args.runs / "domains" / row.photos)


def base_model(args: argparse.Namespace, row: AdaptRow) -> str:
    """The model `row` adapts: --base, or its base recipe's run on the corpus's train photos (trained unless reused);
    "" for a row trained from scratch."""
    if not row.base_recipe:
        return args.base
    if row.base_recipe == SCRATCH:
        return ""
    recipe = BASE_RECIPES[row.base_recipe]
    overrides = [*recipe.overrides, *row_overrides(args, row, base=True), "train.seed=0"]
    if recipe.blur_kind:
        tiles = user_folders(args.corpus, args.runs, "corpus", recipe.blur_kind, recipe.blur_seed)
    else:  # pairs from the sharp photos alone: no blurred folder
        tiles = args.corpus
        overrides = [f"data.sharp={args.corpus / 'train'}", "data.blur=", *overrides]
    run = run_folder(args.runs, f"base-{row.base_recipe}", 0, overrides)
    if args.retrain_base or not finished(run, recipe.config, tiles, overrides):
        train_run(recipe.config, overrides, run, tiles, args.runs / ".cache", threads=args.threads)
    return str(run)


def row_overrides(args: argparse.Namespace, row: AdaptRow, base: bool = False) -> list[str]:
    """The command line's overrides of `row`'s adapted runs, or of its base's: --unit-set for the variational rows."""
    if row.variational:
        return args.unit_overrides
    return args.base_overrides if base else args.overrides


def start_overrides(base: str) -> list[str]:
    """How adapted runs start: from `base`, or from scratch ("")."""
    return [f"model.init_from={base}"] if base else SCRATCH_RECIPE


def user_folders(corpus: Path, runs: Path, photos: str, kind: str, seed: int) -> Path:
    """Unpaired folders (blur/, sharp/) of the corpus's train photos, half blurred by `synth --kind KIND`, made once."""
    folder = runs / "data" / f"{photos}-{kind}"  # rows of the same photos and blur share them
    done = folder / "synth.json"  # written last: a folder without it is incomplete
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        summary = synthesize_folder(corpus / "train", folder, kind=kind, seed=seed, noise_sigma=NOISE_SIGMA)
        done.write_text(json.dumps(summary, indent=1))
    return folder


def row_sets(row: AdaptRow, photos: list[Path], out: Path) -> dict[str, dict[str, str]]:
    """bench/quality.py's degraded sets that score `row`, built under OUT/sets (set key -> image -> photo)."""
    return {blur_set.key: degraded_set(blur_set, photos, out) for blur_set in BLUR_SETS if blur_set.key in row.scored_sets}


def scored_folder(out: Path, row: AdaptRow) -> Path:
    """Where `row`'s degraded sets are built: each corpus has its own, as bench/quality.py's sets are keyed by blur."""
    return out if row.photos == "corpus" else out / row.photos


def merged_validation_pairs(row: AdaptRow, corpus: Path, runs: Path, by_set: bool) -> Path:
    """One folder of the val split's pairs of `row` (blur/, sharp/), for `data.val_blur` while training: BLUR/SET/NAME
    `by_set` (each scored set a group of `train.keep_best_by=worst`), else BLUR/SET_NAME (each pair its own)."""
    # Rows of the same photos and blur share their scoring.
    folder = runs / "val-pairs" / f"{row.photos}-{row.kind}{'-by-set' if by_set else ''}"
    val_out = scored_folder(runs / "val-sets", row)
    sets = row_sets(row, corpus_photos(corpus, "val", with_train=False), val_out)
    if not (folder / "done").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        for side in ("blur", "sharp"):
            (folder / side).mkdir(parents=True)
            for key, images in sets.items():
                for name in images:
                    target = folder / side / (f"{key}/{name}.png" if by_set else f"{key}_{name}.png")
                    target.parent.mkdir(exist_ok=True)
                    shutil.copy(val_out / "sets" / key / side / f"{name}.png", target)
        (folder / "done").write_text("")
    return folder


def adapted_runs(args: argparse.Namespace, row: AdaptRow, base: str) -> dict[int, Path]:
    """Seed -> the finished adapted run of `row` from `base` ("": from scratch), trained now unless reused."""
    corpus = row_corpus(args, row)
    folders = user_folders(corpus, args.runs, row.photos, row.kind, row.seed)
    val_pairs = merged_validation_pairs(row, corpus, args.runs, by_set=args.deliver == "worst-row")
    scoring = [f"data.val_blur={val_pairs / 'blur'}", f"data.val_sharp={val_pairs / 'sharp'}"]
    overrides = [*start_overrides(base), *DELIVERY[args.deliver], *scoring, *row_overrides(args, row)]
    runs = {}
    for seed in args.seeds:
        run = run_folder(args.runs, row.key, seed, overrides)
        seeded = [*overrides, f"train.seed={seed}"]
        if args.retrain or not finished(run, row.config, folders, seeded):
            train_run(row.config, seeded, run, folders, args.runs / ".cache", threads=args.threads)
        runs[seed] = run
    return runs


def guard_choices(runs: dict[int, Path]) -> dict[str, dict[str, float | str]]:
    """Seed -> the guard's scores of the trained deblurrer and of its start, and which it delivered."""
    choices = {}
    for seed, run in runs.items():
        (scores,) = [row for row in read_metrics(run) if "guard/start_psnr" in row]
        trained, start = scores["guard/trained_psnr"], scores["guard/start_psnr"]
        choices[str(seed)] = {"trained": trained, "start": start, "delivered": "trained" if trained >= start else "start"}
    return choices


def change_over_seeds(adapted: dict[str, Any], zero_shot: dict[str, Any]) -> dict[str, float]:
    """Adapted minus zero-shot PSNR: the mean over seeds, and the worst seed's."""
    changes = [seed["psnr"] - zero_shot["psnr"] for seed in adapted["seeds"].values()]
    return {"mean": statistics.fmean(changes), "worst": min(changes)}


def markdown(results: dict[str, Any]) -> str:
    split = results["split"]
    lines = [
        f"| PSNR (dB), {split} | input | zero-shot | adapted (mean ± std over seeds) | adapted - zero-shot (or input) | worst seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results["rows"].values():
        for scored in row["sets"].values():
            methods, change = scored["methods"], scored["change"]
            adapted = methods["adapted"]
            std = f" ± {adapted['psnr_std']:.2f}" if adapted.get("psnr_std") is not None else ""
            zero_shot = f"{methods['zero-shot']['psnr']:.2f}" if "zero-shot" in methods else "-"
            over = "" if scored["reference"] == "zero-shot" else " (over the input)"
            lines.append(
                f"| {row['title']}: {scored['title']} | {methods['input']['psnr']:.2f} | {zero_shot} | "
                f"{adapted['psnr']:.2f}{std} | {change['mean']:+.2f}{over} | {change['worst']:+.2f} |"
            )
    for row in results["rows"].values():
        if row.get("guard"):
            chosen = ", ".join(
                f"seed {seed}: {guard['delivered']} ({guard['trained']:.2f} vs {guard['start']:.2f} dB)"
                for seed, guard in row["guard"].items()
            )
            lines.append(f"\nGuard, {row['title']} (trained vs start on the reblurred sharp photos): {chosen}.")
    computer = results["machine"]
    lines.append("")
    bases = "; ".join(f"{row['title']}: `{row['base']}`, {len(row['photos'])} photos" for row in results["rows"].values())
    lines.append(
        f"Adapted from ({bases}) of the {split} split, seeds {' '.join(map(str, results['seeds']))}, delivering "
        f"{results['deliver']}; {computer['cpu']} ({computer['cpu_count']} cores"
        f"{''.join(f', {flag}' for flag in ('avx512_bf16', 'amx_bf16') if computer.get(flag)) or ', no bf16 units'}), "
        f"{results['date']}."
    )
    return "\n".join(lines)


def run_benchmark(args: argparse.Namespace, command: str) -> None:
    for row in (ROWS[key] for key in args.rows):  # a bad override, or a delivery the row cannot have, fails at once
        start = start_overrides("" if row.base_recipe == SCRATCH else args.base)
        scoring = ["data.val_blur=v", "data.val_sharp=v"]
        load_config(row.config, [*start, *DELIVERY[args.deliver], *scoring, *row_overrides(args, row)])
    out = args.out or Path("bench/out/adapt") / args.split
    results_rows = {}
    for key in args.rows:
        row = ROWS[key]
        photos = corpus_photos(row_corpus(args, row), args.split, with_train=True)
        row_out = scored_folder(out, row)
        base = base_model(args, row)
        runs = adapted_runs(args, row, base)
        # A row from scratch has no zero-shot: its change is over the input.
        reference = "zero-shot" if base else "input"
        models = {("input", None): lambda pair: pair.blurred}
        restorers = {}
        if base:
            zero_shot = Deblurrer(resolve_generator(base))
            models["zero-shot", None] = lambda pair, zero_shot=zero_shot: zero_shot(pair.blurred)
            restorers["zero-shot"] = zero_shot
        for seed, run in runs.items():
            deblurrer = Deblurrer(resolve_generator(run))
            models["adapted", seed] = lambda pair, deblurrer=deblurrer: deblurrer(pair.blurred)
        methods_scored = sorted({method for method, _ in models}, key=["input", "zero-shot", "adapted"].index)
        sets = row_sets(row, photos, row_out)
        scored_sets = {}
        for blur_set in (s for s in BLUR_SETS if s.key in sets):
            pairs = partial(load_pairs, row_out / "sets" / blur_set.key, sorted(sets[blur_set.key]))
            scores = score_set(models, pairs(), dict.fromkeys(methods_scored, 0.0))
            methods = {method: summary(method, scores, None) for method in methods_scored}
            scored_sets[blur_set.key] = {
                "title": blur_set.title,
                "methods": methods,
                "reference": reference,
                "change": change_over_seeds(methods["adapted"], methods[reference]),
            }
            log(f"{key} / {blur_set.key}: scored")
        first_seed = min(runs)
        restorers[f"adapted (seed {first_seed})"] = Deblurrer(resolve_generator(runs[first_seed]))
        figure = out / f"figure-{key}.png"
        save_figure(figure_examples(row_out, sets, [photo.name for photo in photos]), restorers, args.crop, figure)
        results_rows[key] = {
            "title": row.title,
            "base": base or "none (from scratch)",
            "photos": [photo.name for photo in photos],
            "runs": {str(s): str(r) for s, r in runs.items()},
            "sets": scored_sets,
            "figure": str(figure),
        }
        if args.deliver == "guard":
            results_rows[key]["guard"] = guard_choices(runs)
    results = {
        "split": args.split,
        "seeds": args.seeds,
        "overrides": args.overrides,
        "unit_overrides": args.unit_overrides,
        "deliver": args.deliver,
        "rows": results_rows,
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))
    print(f"\nresults: {out / 'results.json'}\n")
    print(command)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("bench/out/corpus"), help="bench/corpus.py's folder")
    parser.add_argument("--split", choices=("val", "test"), default="test", help="the photos scored (default %(default)s)")
    parser.add_argument("--out", type=Path, help="the scored sets and results.json (default bench/out/adapt/SPLIT)")
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("bench/out/adapt/runs"),
        help="the user's folders, the val pairs and the adapted runs, shared by both splits (default %(default)s)",
    )
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS), metavar="ROW")
    parser.add_argument("--base", default="general", help="the model adapted (default: the bundled general model)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="N")
    parser.add_argument(
        "--deliver",
        choices=list(DELIVERY),
        default="worst-row",
        help="worst-row: the val step whose worst scored set gained most (train.keep_best_by=worst); worst-pair: whose "
        "worst pair did; mean: the best mean val step; guard: the last step or the start (train.guard)",
    )
    add_override_argument(parser, "overrides of configs/adapt.yaml, e.g. train.max_steps=200")
    add_override_argument(parser, "overrides of the rows' base recipes (configs/general.yaml)", "--base-set", "base_overrides")
    add_override_argument(
        parser, "overrides of configs/unit-cpu-fast.yaml for the UNIT rows, base and adapted", "--unit-set", "unit_overrides"
    )
    parser.add_argument("--retrain", action="store_true", help="train the adapted runs again where finished ones exist")
    parser.add_argument("--retrain-base", action="store_true", help="train the rows' base recipes again (BASE_RECIPES)")
    parser.add_argument("--threads", type=int, default=2, help="compute threads of each training run")
    parser.add_argument("--crop", type=int, default=160, help="side of the figures' crops (px, default %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_script("bench/adapt.py", parse_args, run_benchmark, argv)


if __name__ == "__main__":
    sys.exit(main())
