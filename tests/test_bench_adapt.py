"""bench/adapt.py end to end on a tiny corpus, with a tiny base model and tiny adapted runs: the plumbing."""

import json

import pytest
from PIL import Image

from bench import adapt, quality
from cycledeblur.config import load_config
from cycledeblur.models import build_generator

from .conftest import TINY_NETWORKS

TINY_BASE = {"width": 4, "encoder_blocks": (0, 1), "middle_blocks": 1, "decoder_blocks": (1, 0)}
TINY = [
    *TINY_NETWORKS["adapt.yaml"],
    "model.generator.width=4",
    "model.generator.encoder_blocks=[0, 1]",
    "model.generator.middle_blocks=1",
    "model.generator.decoder_blocks=[1, 0]",
    "train.max_steps=2",
    "train.batch_size=1",
    "data.crop_size=32",
    "data.num_workers=0",
    "train.val_every=1",
    "train.log_every=1",
    "train.sample_size=32",
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


@pytest.mark.slow
def test_adapt_benchmark_scores_zero_shot_and_adapted_runs(tmp_path, corpus, capsys):
    base = tmp_path / "base"
    build_generator("nafnet", **TINY_BASE).save_pretrained(base)
    out, runs = tmp_path / "out", tmp_path / "runs"
    assert adapt.main(benchmark_arguments(corpus, out, runs, base, "--seeds 0 1")) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert printed.strip().splitlines()[-1] == results["command"]
    assert results["photos"] == ["astronaut.png", "chelsea.png"]  # the test split
    motion = results["rows"]["motion"]
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
    # Each run scored itself on the val split's motion pairs and delivered its best step.
    for run in motion["runs"].values():
        rows = [json.loads(line) for line in open(f"{run}/logs/metrics.jsonl")]
        assert [row["step"] for row in rows if "val/psnr" in row] == [0, 1, 2]
    # The blur-shift row adapts, to the same folders, a base that the benchmark trained without motion blur.
    shift = results["rows"]["blur-shift"]
    base_config = load_config(f"{shift['base']}/config.yaml")
    assert base_config.data.synthetic_blur.motion == 0 == base_config.data.synthetic_blur.mixture
    for run in shift["runs"].values():
        assert load_config(f"{run}/config.yaml").model.init_from == shift["base"]
    assert f"| motion blur, base trained without it: {shift['sets']['motion-mild']['title']} |" in printed
    assert f"motion blur: `{base}`; motion blur, base trained without it: `{shift['base']}`" in printed
    val_pairs = sorted(p.name for p in (runs / "val-pairs" / "motion" / "blur").iterdir())
    assert val_pairs == [
        f"{row}_{photo}.png" for row in ("motion-mild", "motion-strong") for photo in ("hubble_deep_field", "immunohistochemistry")
    ]


@pytest.mark.slow
def test_with_the_guard_the_table_says_what_it_delivered(tmp_path, corpus, capsys):
    base = tmp_path / "base"
    build_generator("nafnet", **TINY_BASE).save_pretrained(base)
    out = tmp_path / "out"
    assert adapt.main(benchmark_arguments(corpus, out, tmp_path / "runs", base, "--rows motion --seeds 0 --deliver guard")) == 0
    (guard,) = json.loads((out / "results.json").read_text())["rows"]["motion"]["guard"].values()
    assert guard["delivered"] == ("trained" if guard["trained"] >= guard["start"] else "start")
    assert f"seed 0: {guard['delivered']} ({guard['trained']:.2f} vs {guard['start']:.2f} dB)" in capsys.readouterr().out
