"""bench/adapt.py end to end on a tiny corpus, with a tiny base model and tiny adapted runs: the plumbing."""

import json

import numpy as np
import pytest
from PIL import Image

from bench import adapt, guard_check, quality
from cycledeblur.config import load_config
from cycledeblur.models import build_generator

from .conftest import TINY_NETWORKS

TINY_BASE = {"width": 4, "encoder_blocks": (0, 1), "middle_blocks": 1, "decoder_blocks": (1, 0)}
# Two steps on 32 px crops, scored on the val pairs at every step.
TINY_SCHEDULE = [
    "train.max_steps=2",
    "train.batch_size=1",
    "data.crop_size=32",
    "data.num_workers=0",
    "train.val_every=1",
    "train.log_every=1",
    "train.sample_size=32",
    "train.report=false",
]
TINY = [
    *TINY_NETWORKS["adapt.yaml"],
    "model.generator.width=4",
    "model.generator.encoder_blocks=[0, 1]",
    "model.generator.middle_blocks=1",
    "model.generator.decoder_blocks=[1, 0]",
    *TINY_SCHEDULE,
]


# The blur-shift row's base, trained by the benchmark: configs/general.yaml with TINY's generator, for two steps.
TINY_BASE_RECIPE = [
    *(option for option in TINY if option.startswith("model.generator.")),
    "train.max_steps=2",
    "train.batch_size=1",
    "data.crop_size=32",
    "data.num_workers=0",
    "train.sample_size=32",
    "train.mixed_precision=no",
]


def benchmark_arguments(corpus, out, runs, base, options: str) -> list[str]:
    """bench/adapt.py's arguments for a tiny run in tmp_path (whose paths have no spaces)."""
    arguments = f"--corpus {corpus} --out {out} --runs {runs} --base {base} --threads 1 {options}".split()
    return [*arguments, "--set", *TINY, "--base-set", *TINY_BASE_RECIPE]


def tiny_benchmark(tmp_path, corpus, options: str):
    """bench/adapt.py with OPTIONS from a tiny base model, in tmp_path; returns the base, --out and --runs."""
    base, out, runs = tmp_path / "base", tmp_path / "out", tmp_path / "runs"
    build_generator("nafnet", **TINY_BASE).save_pretrained(base)
    assert adapt.main(benchmark_arguments(corpus, out, runs, base, options)) == 0
    return base, out, runs


@pytest.mark.slow
def test_adapt_benchmark_scores_zero_shot_and_adapted_runs(tmp_path, corpus, capsys):
    base, out, runs = tiny_benchmark(tmp_path, corpus, "--rows motion blur-shift --seeds 0 1")
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert printed.strip().splitlines()[-1] == results["command"]
    motion = results["rows"]["motion"]
    assert motion["photos"] == ["astronaut.png", "chelsea.png"]  # the test split
    assert set(motion["sets"]) == {"motion-mild", "motion-strong"} and set(motion["runs"]) == {"0", "1"}
    with Image.open(motion["figure"]) as figure:  # two rows (mild, strong) of 4 crops: input | zero-shot | adapted | sharp
        side = (figure.width - 3 * quality.GAP) / 4
        assert side == int(side) > 0 and figure.height == 2 * (quality.CAPTION_HEIGHT + side)
    for scored in motion["sets"].values():
        adapted, zero_shot = scored["methods"]["adapted"], scored["methods"]["zero-shot"]
        assert set(adapted["seeds"]) == {"0", "1"} and adapted["psnr_std"] is not None
        changes = [seed["psnr"] - zero_shot["psnr"] for seed in adapted["seeds"].values()]
        assert scored["change"]["worst"] == min(changes)
        assert f"| motion blur: {scored['title']} |" in printed
    # Each run scored itself on the val split's motion pairs and delivered the step whose worst set gained most.
    for run in motion["runs"].values():
        rows = [json.loads(line) for line in open(f"{run}/logs/metrics.jsonl")]
        assert [row["step"] for row in rows if "val/psnr" in row] == [0, 1, 2]
        assert load_config(f"{run}/config.yaml").train.keep_best_by == "worst"
    # The blur-shift row adapts, to the same folders, a base that the benchmark trained without motion blur.
    shift = results["rows"]["blur-shift"]
    base_config = load_config(f"{shift['base']}/config.yaml")
    assert base_config.data.synthetic_blur.motion == 0 == base_config.data.synthetic_blur.mixture
    for run in shift["runs"].values():
        assert load_config(f"{run}/config.yaml").model.init_from == shift["base"]
    assert f"| motion blur, base trained without it: {shift['sets']['motion-mild']['title']} |" in printed
    assert f"motion blur: `{base}`, 2 photos; motion blur, base trained without it: `{shift['base']}`, 2 photos" in printed
    # The guard's verdict on each run's last step, against the truth on the same test pairs.
    assert guard_check.main([str(out / "results.json")]) == 0
    checked = json.loads((out / "guard.json").read_text())["runs"]
    assert [(verdict["row"], verdict["seed"]) for verdict in checked] == [(r, s) for r in ("motion", "blur-shift") for s in ("0", "1")]
    for verdict in checked:
        assert verdict["kept"] == ("last step" if verdict["guard"]["trained"] >= verdict["guard"]["start"] else "start")
        assert set(verdict["last_step_change"]) == {"motion-mild", "motion-strong"}
        assert verdict["right"] == ((verdict["kept"] == "start") == (min(verdict["last_step_change"].values()) < -0.1))
    assert f"Right on {sum(verdict['right'] for verdict in checked)} of 4 runs." in capsys.readouterr().out
    # The val pairs, one subfolder per scored set: the groups of train.keep_best_by=worst.
    val_blur = runs / "val-pairs" / "corpus-motion-by-set" / "blur"
    assert load_config(f"{run}/config.yaml").data.val_blur == str(val_blur)
    assert sorted(p.relative_to(val_blur).as_posix() for p in val_blur.rglob("*.png")) == [
        f"{row}/{photo}.png" for row in ("motion-mild", "motion-strong") for photo in ("hubble_deep_field", "immunohistochemistry")
    ]


@pytest.mark.slow
def test_with_the_guard_the_table_says_what_it_delivered(tmp_path, corpus, capsys):
    _, out, _ = tiny_benchmark(tmp_path, corpus, "--rows motion --seeds 0 --deliver guard")
    (guard,) = json.loads((out / "results.json").read_text())["rows"]["motion"]["guard"].values()
    assert guard["delivered"] == ("trained" if guard["trained"] >= guard["start"] else "start")
    assert f"seed 0: {guard['delivered']} ({guard['trained']:.2f} vs {guard['start']:.2f} dB)" in capsys.readouterr().out


@pytest.mark.slow
def test_content_shift_and_scratch_rows(tmp_path, corpus, capsys):
    """The aerial row adapts on the domain's own train band and is scored on its test band; the scratch row has no
    base, so its change is over the input. Delivered by the worst val pair: the pairs side by side, one folder."""
    base, out, runs = tiny_benchmark(tmp_path, corpus, "--rows aerial scratch --seeds 0 --deliver worst-pair")
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    aerial, scratch = results["rows"]["aerial"], results["rows"]["scratch"]
    assert aerial["photos"] == [f"aero_0_0_{piece}.png" for piece in range(4)] and set(aerial["sets"]) == set(adapt.GAUSSIAN_SETS)
    (run,) = aerial["runs"].values()
    config = load_config(f"{run}/config.yaml")
    assert config.model.init_from == str(base) and config.data.sharp == str(runs / "data" / "aerial-gaussian" / "sharp")
    val_blur = runs / "val-pairs" / "aerial-gaussian" / "blur"
    assert config.data.val_blur == str(val_blur) and config.train.keep_best_by == "worst"
    assert sorted(p.name for p in val_blur.iterdir()) == [f"{key}_aero_0_0_{i}.png" for key in adapt.GAUSSIAN_SETS for i in range(4)]
    assert (out / "aerial" / "sets" / "gaussian-mild" / "blur" / "aero_0_0_0.png").is_file()
    (run,) = scratch["runs"].values()
    config = load_config(f"{run}/config.yaml")
    assert config.model.init_from == "" and config.train.freeze_steps == 0 and scratch["base"] == "none (from scratch)"
    for scored in scratch["sets"].values():
        assert "zero-shot" not in scored["methods"] and scored["reference"] == "input"
        assert scored["change"]["worst"] == scored["methods"]["adapted"]["psnr"] - scored["methods"]["input"]["psnr"]
        assert f"| motion blur, unpaired from scratch: {scored['title']} | " in printed and "(over the input)" in printed


def test_domain_splits_are_bands_of_each_image_that_share_no_pixel(tmp_path):
    """train: the top half (its left and right halves), val and test: the next quarters, cut into pieces."""
    import pywt.data

    folder = adapt.domain_corpus("aerial", tmp_path / "aerial")
    expected = pywt.data.aero()  # 8 bits, stored by the example writer as 16 (257 v), come back exactly

    def joined(split, names):
        return np.hstack([np.asarray(Image.open(folder / split / f"{name}.png").convert("L")) for name in names])

    assert (joined("train", ["aero_0_0_left", "aero_0_0_right"]) == expected[:256]).all()
    assert (joined("val", [f"aero_0_0_{i}" for i in range(4)]) == expected[256:384]).all()
    assert (joined("test", [f"aero_0_0_{i}" for i in range(4)]) == expected[384:]).all()
    with Image.open(folder / "test" / "aero_0_0_0.png") as piece:
        assert piece.mode == "RGB" and piece.size == (adapt.DOMAIN_PIECE_WIDTH, 128)


TINY_UNIT = [*TINY_NETWORKS["unit.yaml"], *TINY_SCHEDULE]


@pytest.mark.slow
def test_the_unit_row_adapts_a_unit_run_on_photos_to_scans(tmp_path, corpus, capsys):
    """The base: UNIT trained by the benchmark on the corpus's photos, unpaired, Gaussian blur; the adapted runs start
    from it on the scans' unpaired folders, with --unit-set (not --set) as their overrides."""
    out, runs = tmp_path / "out", tmp_path / "runs"
    arguments = f"--corpus {corpus} --out {out} --runs {runs} --threads 1 --rows unit-medical --seeds 0".split()
    # --set belongs to configs/adapt.yaml's rows: a key it lacks stops no UNIT row
    assert adapt.main([*arguments, "--set", "no.such=1", "--unit-set", *TINY_UNIT]) == 0
    printed = capsys.readouterr().out
    row = json.loads((out / "results.json").read_text())["rows"]["unit-medical"]
    base = load_config(f"{row['base']}/config.yaml")
    assert base.train.mode == "unit" and base.model.init_from == "" and base.train.max_steps == 2
    assert base.data.blur == str(runs / "data" / "corpus-gaussian" / "blur")
    (run,) = row["runs"].values()
    adapted = load_config(f"{run}/config.yaml")
    assert adapted.train.mode == "unit" and adapted.model.init_from == row["base"] and adapted.train.keep_best_by == "worst"
    assert adapted.data.sharp == str(runs / "data" / "medical-gaussian" / "sharp")
    assert set(row["sets"]) == set(adapt.GAUSSIAN_SETS)
    for scored in row["sets"].values():
        assert scored["reference"] == "zero-shot" and set(scored["methods"]) == {"input", "zero-shot", "adapted"}
        assert f"| UNIT, CT, MR and radiographs, Gaussian blur, from UNIT on photos: {scored['title']} |" in printed
