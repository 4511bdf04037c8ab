"""bench/quality.py end to end on a tiny corpus, with tiny trained runs: the plumbing, not the scores."""

import json
import math

import pytest
import torch
from PIL import Image

from bench import quality
from cycledeblur.models import build_generator

from .conftest import TINY_NETWORKS

CROP = 32
TINY = [
    *TINY_NETWORKS["cpu-fast.yaml"],
    "train.max_steps=4",
    "train.batch_size=1",
    "data.crop_size=32",
    "data.num_workers=0",
    "train.checkpoint_every=4",
    "train.sample_every=4",
    "train.log_every=1",
    "train.sample_size=32",
]


@pytest.mark.slow
def test_benchmark_writes_tables_results_and_figure(tmp_path, corpus, capsys):
    general = tmp_path / "general"
    tiny = build_generator("nafnet", width=4, encoder_blocks=(0, 1), middle_blocks=1, decoder_blocks=(1, 0))
    tiny.save_pretrained(general)
    out, runs = tmp_path / "out", tmp_path / "runs"
    arguments = f"--corpus {corpus} --out {out} --runs {runs} --general {general} --limit 1 --seeds 0 --crop {CROP} --set".split()
    arguments += TINY
    methods = ["unsharp", "wiener-gaussian", "wiener-true", "general", "unpaired", "paired"]  # the UNIT column: below
    assert quality.main([*arguments, "--methods", *methods]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert printed.strip().splitlines()[-1] == results["command"]  # printed last, to be copied
    assert results["command"].startswith("python bench/quality.py --corpus")
    assert "| PSNR (dB), gain over the input, test | input | unsharp mask (oracle) |" in printed
    mean_row = next(line for line in printed.splitlines() if line.startswith("| **mean of the blurred rows**"))
    assert mean_row.count("(") == mean_row.count("|") - 3  # a gain in every column but the input's

    assert results["photos"] == ["astronaut.png"]  # --limit 1: the first test photo by name
    sets = results["sets"]
    assert list(sets) == [blur_set.key for blur_set in quality.BLUR_SETS]
    for key, blur_set in sets.items():
        records = blur_set["methods"]
        assert list(records) == [
            "input",
            "unsharp",
            "wiener-gaussian",
            *(["wiener-true"] if key != "sharp" else []),
            "general",
            "unpaired",
            "paired",
        ]
        for method in ("unsharp", "wiener-gaussian", "general"):
            assert math.isfinite(records[method]["psnr"]) and 0 < records[method]["ssim"] <= 1, (key, method)
        for method in ("unpaired", "paired"):
            assert set(records[method]["seeds"]) == {"0"} and records[method]["psnr_std"] is None
            assert math.isfinite(records[method]["psnr"]), (key, method)
        assert set(records["unsharp"]["params"]) == set(quality.ORACLES["unsharp"].grid)
    # Unchanged photos: PSNR infinite, SSIM 1, and every method can only lose.
    assert sets["sharp"]["methods"]["input"]["psnr"] == math.inf
    assert sets["sharp"]["methods"]["input"]["ssim"] == pytest.approx(1)
    # The true kernel is the best a Wiener filter can know: it beats one Gaussian guessed for all photos.
    motion = sets["motion-strong"]["methods"]
    assert motion["wiener-true"]["psnr"] > motion["wiener-gaussian"]["psnr"]
    # pyblur's 100 PSFs are spread over the split's 2 photos, 50 each; the first photo's are scored.
    assert len(list((out / "sets" / "pyblur" / "kernels").glob("*.npy"))) == 100
    assert sets["pyblur"]["images"] == 50 and len(sets["pyblur"]["methods"]["input"]["per_image"]) == 50

    training = results["training"]
    assert training["paired"]["overrides"] == [o for o in TINY if not o.startswith("model.reblur_generator")]
    assert training["unpaired"]["steps"] == training["paired"]["steps"] == 4
    assert all(training[method]["runs"]["0"]["train_seconds"] > 0 for method in ("unpaired", "paired"))
    assert {"cpu", "avx512_bf16", "amx_bf16", "gpu", "torch"} <= set(results["machine"])

    with Image.open(out / "figure.png") as figure:  # input | general | sharp, one row per blurred set
        assert figure.width == 3 * CROP * quality.UPSCALE + 2 * quality.GAP
        assert figure.height == (len(quality.BLUR_SETS) - 1) * (quality.CAPTION_HEIGHT + CROP * quality.UPSCALE)

    # A second run reuses the degraded sets and the finished runs.
    assert quality.main([*arguments, "--methods", "paired"]) == 0
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["training"]["paired"]["runs"]["0"]["reused"]
    assert rerun["sets"]["motion-mild"]["methods"]["input"] == sets["motion-mild"]["methods"]["input"]

    # Several general models (one per seed of its recipe): one column, their mean and spread.
    other = tmp_path / "general-other"
    torch.manual_seed(1)
    build_generator("nafnet", width=4, encoder_blocks=(0, 1), middle_blocks=1, decoder_blocks=(1, 0)).save_pretrained(other)
    assert quality.main([*arguments, "--methods", "general", "--general", str(general), str(other)]) == 0
    both = json.loads((out / "results.json").read_text())["sets"]["motion-mild"]["methods"]["general"]
    assert set(both["seeds"]) == {"0", "1"} and both["psnr_std"] > 0
    assert both["seeds"]["0"]["psnr"] == pytest.approx(sets["motion-mild"]["methods"]["general"]["psnr"])
    assert both["psnr"] == pytest.approx((both["seeds"]["0"]["psnr"] + both["seeds"]["1"]["psnr"]) / 2)
    assert f"- general model: mean ± standard deviation over `{general}`, `{other}`." in capsys.readouterr().out


def test_a_missing_general_model_ends_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    assert quality.main(["--general", str(tmp_path / "empty"), "--corpus", str(corpus), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "empty" in error and len(error.strip().splitlines()) == 1
    assert not corpus.exists() and not out.exists()  # it stopped before any work


def test_a_run_is_reused_only_under_the_recipe_it_was_trained_with(tmp_path):
    from cycledeblur.config import load_config, save_config

    config, run, tiles = tmp_path / "recipe.yaml", tmp_path / "run", tmp_path / "tiles"
    config.write_text((quality.ROOT / "configs" / "cpu-fast.yaml").read_text())
    overrides = ["train.seed=1"]
    assert not quality.finished(run, config, tiles, overrides)  # nothing trained yet
    (run / "generator").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (run / "generator" / name).write_text("")
    saved = load_config(config, [*quality.training_overrides(run, tiles, overrides), "train.mixed_precision=bf16"])
    save_config(saved, run / "config.yaml")
    assert quality.finished(run, config, tiles, overrides)  # the precision `auto` chose is no difference
    assert not quality.finished(run, config, tiles, ["train.seed=2"])
    moved = tmp_path / "moved"
    run.rename(moved)
    assert quality.finished(moved, config, tiles, overrides)  # the same recipe, in another folder
    config.write_text(config.read_text().replace("max_steps:", "max_steps: 7 #"))  # a default edited since
    assert not quality.finished(moved, config, tiles, overrides)


@pytest.mark.slow
def test_the_unit_column_trains_on_the_unpaired_tiles_and_is_scored(tmp_path, corpus, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    arguments = f"--corpus {corpus} --out {out} --runs {runs} --limit 1 --seeds 0 --crop {CROP} --methods unit --set".split()
    overrides = [*TINY_NETWORKS["unit.yaml"], *(o for o in TINY if not o.startswith("model."))]
    assert quality.main([*arguments, *overrides]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["training"]["unit"]["config"] == "configs/unit-cpu-fast.yaml"
    assert (runs / "data" / "unpaired" / "blur").is_dir() and not (runs / "data" / "paired").exists()
    for blur_set in results["sets"].values():
        assert list(blur_set["methods"]) == ["input", "unit"] and math.isfinite(blur_set["methods"]["unit"]["psnr"])
    assert "| PSNR (dB), gain over the input, test | input | unpaired UNIT unit-cpu-fast, from scratch |" in capsys.readouterr().out
