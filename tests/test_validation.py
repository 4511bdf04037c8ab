"""Validation pairs while training (`data.val_blur`): the start is scored, then every `train.val_every` steps, and
`train.keep_best` delivers the best scoring, so that a fine-tune that only hurts delivers what it started from."""

import json

import pytest
from safetensors.torch import load_file

from cycledeblur import pretrained
from cycledeblur.cli import main
from cycledeblur.config import load_config
from cycledeblur.errors import ConfigError, UserError
from cycledeblur.training import train

from .conftest import ROOT, TINY_GENERAL_RUN


def fine_tune(photo_folder, paired, run, *overrides):
    """configs/general.yaml from the bundled model on a few crops, scored on real blurred/sharp pairs."""
    config = load_config(
        ROOT / "configs" / "general.yaml",
        [f"data.sharp={photo_folder}", f"output_dir={run}", "model.init_from=general",
         f"data.val_blur={paired / 'blur'}", f"data.val_sharp={paired / 'sharp'}", *TINY_GENERAL_RUN, *overrides],
    )  # fmt: skip
    train(config)
    return [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]


def test_the_start_is_scored_like_evaluate_and_a_harmful_fine_tune_delivers_the_start(photo_folder, paired, tmp_path, capsys):
    # A learning rate that wrecks any network: every later scoring is worse than the start.
    wrecking = ("train.lr_g=0.5", "train.val_every=1", "train.keep_best=true")
    rows = [row for row in fine_tune(photo_folder, paired, tmp_path / "run", *wrecking) if "val/psnr" in row]
    assert [row["step"] for row in rows] == [0, 1, 2]
    assert rows[1]["val/psnr"] < rows[0]["val/psnr"] and rows[-1]["val/best_step"] == 0
    assert "delivering the weights of step 0" in capsys.readouterr().out

    report = tmp_path / "general.json"
    assert main(["evaluate", "--blur", str(paired / "blur"), "--sharp", str(paired / "sharp"), "--json", str(report)]) == 0
    assert rows[0]["val/psnr"] == pytest.approx(json.loads(report.read_text())["output"]["psnr"], abs=1e-6)
    delivered = load_file(tmp_path / "run" / "generator" / "model.safetensors")
    bundled = load_file(pretrained.PRETRAINED_ROOT / "general" / "model.safetensors")
    assert all((delivered[key] == bundled[key]).all() for key in bundled)
    assert "Training steps: 0" in (tmp_path / "run" / "generator" / "README.md").read_text()


def test_without_keep_best_the_last_weights_are_delivered(photo_folder, paired, tmp_path):
    fine_tune(photo_folder, paired, tmp_path / "run", "train.lr_g=0.5", "train.val_every=5")
    delivered = load_file(tmp_path / "run" / "generator" / "model.safetensors")
    bundled = load_file(pretrained.PRETRAINED_ROOT / "general" / "model.safetensors")
    assert any((delivered[key] != bundled[key]).any() for key in bundled)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["train.keep_best=true"], ConfigError, "train.keep_best delivers the best step on the validation pairs: set data.val_blur"),
        (["data.val_blur=x"], ConfigError, "data.val_blur and data.val_sharp go together"),
        (["data.val_blur=missing", "data.val_sharp=missing"], UserError, "data.val_blur=missing: no such folder"),
        (["train.val_every=0"], ConfigError, "train.val_every must be >= 1, got 0"),
    ],
)
def test_validation_errors_name_the_key(photo_folder, tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        train(load_config(ROOT / "configs" / "general.yaml", [f"data.sharp={photo_folder}", f"output_dir={tmp_path / 'run'}", *overrides]))


def test_pairs_without_twins_are_one_line(photo_folder, paired, tmp_path):
    overrides = [f"data.sharp={photo_folder}", f"output_dir={tmp_path / 'run'}",
                 f"data.val_blur={paired / 'blur'}", f"data.val_sharp={tmp_path}"]  # fmt: skip
    with pytest.raises(UserError, match="no file has a twin of the same name in data.val_sharp"):
        train(load_config(ROOT / "configs" / "general.yaml", overrides))
