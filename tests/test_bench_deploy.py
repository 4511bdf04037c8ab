"""bench/deploy.py end to end on the demo photos, with a tiny trained cpu-fast run: the plumbing, not the scores."""

import json
import shutil

import pytest

from bench import deploy
from cycledeblur.evaluation import evaluate_pairs
from cycledeblur.export.runtime import OnnxDeblurrer

from .test_export import train_tiny


def test_deploy_benchmark_scores_fp32_and_int8_on_the_held_out_test_photos(unpaired, tmp_path, capsys):
    quality_out, out = tmp_path / "quality", tmp_path / "deploy"
    train_tiny(unpaired, quality_out / "runs" / "cpu-fast", "cpu-fast.yaml", "train.max_steps=2")
    assert deploy.main(["--out", str(out), "--quality-out", str(quality_out), "--models", "cpu-fast"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "deploy.json").read_text())
    (row,) = results["rows"]
    assert printed.strip().splitlines()[-1].endswith(f"rerun: {results['command']}")
    # The held-out quarter is exactly the quality benchmark's 4 test photos, which calibration never saw.
    assert row["held_out"] == [f"test-{name}" for name in ("camera", "chelsea", "coffee", "stereo_motorcycle")]
    names = sorted(path.name for path in (out / "calibration" / "blur").iterdir())
    assert len(names) == 16 and all(name.startswith("calib-") for name in names[:12])
    assert row["max_difference"] <= 1e-3 and (out / "cpu-fast.int8.onnx").stat().st_size == pytest.approx(row["int8_mb"] * 1e6)
    # The fp32 row is what `evaluate` reports for the exported model on the test photos.
    test_dir = quality_out / "test"
    expected = evaluate_pairs(OnnxDeblurrer(out / "cpu-fast.onnx"), test_dir / "blur", test_dir / "sharp")
    assert row["fp32_psnr"] == pytest.approx(expected.mean("output")["psnr"], abs=1e-6)
    assert row["psnr_drop"] == pytest.approx(row["fp32_psnr"] - row["int8_psnr"])
    shutil.rmtree(quality_out)  # 60 MB of photos
