"""bench/deploy.py end to end on a tiny corpus of real photos, with a tiny NAFNet as the general model: the plumbing,
not the scores."""

import json

import pytest

from bench import deploy
from cycledeblur.evaluation import score_pairs
from cycledeblur.export.runtime import OnnxDeblurrer
from cycledeblur.image_files import list_images
from cycledeblur.models import build_generator

from .conftest import CORPUS_SPLITS


@pytest.mark.slow
def test_deploy_benchmark_exports_scores_and_times_the_general_model(tmp_path, corpus, capsys):
    general, out, quality_out, runs = (tmp_path / name for name in ("general", "out", "quality", "runs"))
    build_generator("nafnet", width=4, encoder_blocks=(0, 1), middle_blocks=1, decoder_blocks=(1, 0)).save_pretrained(general)
    arguments = [
        "--general",
        str(general),
        "--corpus",
        str(corpus),
        "--quality-out",
        str(quality_out),
        "--runs",
        str(runs),
        "--out",
        str(out),
        "--limit",
        "1",
        "--repeats",
        "1",
    ]
    assert deploy.main(arguments) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "deploy.json").read_text())
    assert printed.strip().splitlines()[-1] == results["command"]  # printed last, to be copied
    assert "| model | parameters | max abs ONNX - PyTorch |" in printed
    assert "| general | motion, strong | 1 |" in printed
    assert {"cpu", "avx512_bf16", "amx_bf16"} <= set(results["machine"]) and results["date"]

    (row,) = results["models"].values()
    assert row["max_difference"] <= 1e-3
    assert (out / "general.int8.onnx").stat().st_size == pytest.approx(row["int8_mb"] * 1e6)
    assert all(seconds > 0 for seconds in row["seconds"].values()) and len(row["seconds"]) == 3
    # Calibration: blurred train tiles only; the scored photos are the first test photo's, from quality.py's sets.
    assert {path.split(".")[0] for path in results["calibration"]} == set(CORPUS_SPLITS["train"])
    assert results["photos"] == ["astronaut.png"] and results["latency_photo"] == "astronaut.png"
    assert list(row["quality"]) == deploy.ROWS
    assert row["quality"]["pyblur"]["images"] == 50 and row["quality"]["motion-mild"]["images"] == 1
    # The fp32 scores are what `evaluate` gives the exported file on the same pairs.
    pairs = deploy.scored_sets(["motion-strong"], list_images(corpus / "test"), ["astronaut.png"], quality_out)
    expected = score_pairs(OnnxDeblurrer(out / "general.onnx"), pairs["motion-strong"]).mean("output")
    scores = row["quality"]["motion-strong"]
    assert scores["fp32"]["psnr"] == pytest.approx(expected["psnr"], abs=1e-6)
    assert scores["psnr_drop"] == pytest.approx(scores["fp32"]["psnr"] - scores["int8"]["psnr"])
    assert (quality_out / "sets" / "sharp" / "manifest.json").is_file()  # built as bench/quality.py builds it


def test_a_missing_general_model_ends_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    assert deploy.main(["--general", str(tmp_path / "empty"), "--corpus", str(corpus), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "empty" in error and len(error.strip().splitlines()) == 1
    assert not corpus.exists() and not out.exists()  # it stopped before any work
