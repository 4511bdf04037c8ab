"""bench/quality.py end to end on the demo photos, with a tiny config: the plumbing, not the scores."""

import json
import math
import subprocess
import sys

import pytest
from PIL import Image

from bench import quality
from cycledeblur.evaluation import evaluate_pairs
from cycledeblur.inference import Deblurrer, resolve_generator

from .conftest import ROOT, TINY_NETWORKS

SCRIPT = ROOT / "bench" / "quality.py"

TINY = [
    *TINY_NETWORKS["cpu-fast.yaml"], "train.max_steps=2", "train.batch_size=1", "data.crop_size=32",
    "data.num_workers=0", "train.checkpoint_every=2", "train.sample_every=2", "train.log_every=1",
    "train.sample_size=64",
]  # fmt: skip
CROP = 64


def test_benchmark_writes_results_and_figure(tmp_path):
    # One test photo keeps the oracle grid searches (50 settings) within seconds.
    arguments = ["--config", "configs/cpu-fast.yaml", *(f"--set={override}" for override in TINY),
                 "--out", str(tmp_path), "--test-limit", "1", "--crop", str(CROP)]  # fmt: skip
    done = subprocess.run([sys.executable, str(SCRIPT), *arguments], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "runs" / "cpu-fast"
    results = json.loads((run / "results.json").read_text())
    rerun = done.stdout.strip().splitlines()[-1]  # printed last, to be copied
    assert rerun == results["command"] and rerun.startswith("python bench/quality.py --config configs/cpu-fast.yaml")
    rows = {row["name"]: row for row in results["rows"]}
    assert list(rows) == [
        "blurred input",
        quality.UNSHARP.name,
        quality.WIENER.name,
        quality.TRUE_KERNEL_ROW,
        "cycledeblur, untrained (step 0)",
        "cycledeblur unpaired (cpu-fast, 2 steps)",
        "cycledeblur paired, upper bound (cpu-fast-paired, 2 steps)",
    ]
    for row in rows.values():
        assert math.isfinite(row["psnr"]) and 0 < row["ssim"] <= 1, row["name"]
    assert rows["cycledeblur unpaired (cpu-fast, 2 steps)"]["train_seconds"] > 0
    assert rows["cycledeblur, untrained (step 0)"]["steps"] == 0
    paired_run = tmp_path / "runs" / "cpu-fast-paired"
    assert (paired_run / "config.yaml").read_text().count("mode: paired") == 1
    assert rows["cycledeblur paired, upper bound (cpu-fast-paired, 2 steps)"]["train_seconds"] > 0
    unpaired_gain, paired_gain = (rows[name]["psnr"] - rows["blurred input"]["psnr"] for name in list(rows)[-2:])
    share = results["share_of_paired_gain"]
    assert share == pytest.approx(unpaired_gain / paired_gain) if paired_gain > 0 else share is None

    test_dir = tmp_path / "test-first-1"
    assert results["test_set"] == str(test_dir)
    deblurrer = Deblurrer(resolve_generator(run))
    assert rows["blurred input"]["psnr"] == pytest.approx(
        evaluate_pairs(deblurrer, test_dir / "blur", test_dir / "sharp").mean("input")["psnr"], rel=1e-6
    )
    assert rows[quality.TRUE_KERNEL_ROW]["params"]["regularization"] in quality.TRUE_KERNEL_REGULARIZATION
    # The true kernel is the best a Wiener filter can know: it beats one Gaussian guessed for all photos.
    assert rows[quality.TRUE_KERNEL_ROW]["psnr"] > rows[quality.WIENER.name]["psnr"]
    for baseline in (quality.UNSHARP, quality.WIENER):
        params = rows[baseline.name]["params"]
        assert set(params) == set(baseline.grid)
        assert all(value in baseline.grid[key] for key, value in params.items())

    with Image.open(run / "figure.png") as figure:
        assert figure.width == 4 * CROP * quality.UPSCALE + 3 * quality.GAP
        assert figure.height == quality.CAPTION_HEIGHT + CROP * quality.UPSCALE  # one row: one test photo


def test_a_missing_config_ends_in_one_line(tmp_path, capsys):
    assert quality.main(["--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "missing.yaml" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # it stopped before building any data
