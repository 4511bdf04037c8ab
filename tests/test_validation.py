"""Validation pairs while training (`data.val_blur`): the start is scored, then every `train.val_every` steps, and
`train.keep_best` delivers the best scoring, so that a fine-tune that only hurts delivers what it started from."""

import json
import shutil
from contextlib import nullcontext

import pytest
import torch
from safetensors.torch import load_file

from cycledeblur import pretrained
from cycledeblur.cli import main
from cycledeblur.config import load_config
from cycledeblur.errors import ConfigError, UserError
from cycledeblur.training import train

from .conftest import ROOT, TINY_GENERAL_RUN, TINY_NETWORKS


def fine_tune(photo_folder, paired, run, *overrides):
    """configs/general.yaml from the bundled model on a few crops, scored on real blurred/sharp pairs."""
    config = load_config(
        ROOT / "configs" / "general.yaml",
        [
            f"data.sharp={photo_folder}",
            f"output_dir={run}",
            "model.init_from=general",
            f"data.val_blur={paired / 'blur'}",
            f"data.val_sharp={paired / 'sharp'}",
            *TINY_GENERAL_RUN,
            *overrides,
        ],
    )
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
    evaluated = json.loads(report.read_text())
    assert rows[0]["val/psnr"] == pytest.approx(evaluated["output"]["psnr"], abs=1e-6)
    # Every pair's PSNR at every scoring, for choosing the step another way after the run.
    per_pair = [json.loads(line) for line in (tmp_path / "run" / "logs" / "validation.jsonl").read_text().splitlines()]
    assert [row["step"] for row in per_pair] == [0, 1, 2]
    assert per_pair[0]["psnr"] == pytest.approx({image["name"]: image["output"]["psnr"] for image in evaluated["per_image"]}, abs=1e-6)
    for row, logged in zip(per_pair, rows):
        assert sum(row["psnr"].values()) / len(row["psnr"]) == pytest.approx(logged["val/psnr"])
    delivered = load_file(tmp_path / "run" / "generator" / "model.safetensors")
    bundled = load_file(pretrained.PRETRAINED_ROOT / "general" / "model.safetensors")
    assert all((delivered[key] == bundled[key]).all() for key in bundled)
    assert "Training steps: 0" in (tmp_path / "run" / "generator" / "README.md").read_text()


def test_without_keep_best_the_last_weights_are_delivered(photo_folder, paired, tmp_path):
    fine_tune(photo_folder, paired, tmp_path / "run", "train.lr_g=0.5", "train.val_every=5")
    delivered = load_file(tmp_path / "run" / "generator" / "model.safetensors")
    bundled = load_file(pretrained.PRETRAINED_ROOT / "general" / "model.safetensors")
    assert any((delivered[key] != bundled[key]).any() for key in bundled)


def validation_folder(paired, tmp_path, layout: list[str]):
    """blur/ and sharp/ folders of real pairs (the `paired` fixture's first one) under the names of `layout`."""
    source = sorted((paired / "blur").iterdir())[0].name
    for side in ("blur", "sharp"):
        for name in layout:
            (tmp_path / side / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(paired / side / source, tmp_path / side / f"{name}.png")
    return tmp_path


def scripted_validation(folder, monkeypatch, scorings, *overrides):
    """A `Validation` on FOLDER's pairs whose scorings return `scorings` in turn: each the pairs' PSNRs, in order."""
    from cycledeblur.evaluation import EvaluationReport, ImageScores
    from cycledeblur.training import validation

    tracker = validation.Validation(
        load_config(None, [f"data.val_blur={folder / 'blur'}", f"data.val_sharp={folder / 'sharp'}", *overrides])
    )

    def report(psnrs):
        images = [ImageScores(name, {"psnr": 20.0, "ssim": 0.5}, {"psnr": p, "ssim": 0.5}) for (name, _, _), p in zip(tracker.pairs, psnrs)]
        return EvaluationReport("paired", images)

    reports = iter([report(psnrs) for psnrs in scorings])
    monkeypatch.setattr(validation, "score_pairs", lambda deblurrer, pairs: next(reports))
    monkeypatch.setattr(validation, "Deblurrer", lambda generator, device: generator)
    return tracker


def best_steps(tracker, steps):
    network = torch.nn.Conv2d(3, 3, 1)
    return [tracker.score(network, step, torch.device("cpu"))["val/best_step"] for step in steps]


def test_a_gain_within_the_margin_keeps_the_start(paired, tmp_path, monkeypatch):
    """The best step moves only for a scoring better by `train.keep_best_margin` dB than the best so far."""
    folder = validation_folder(paired, tmp_path, ["photo"])
    tracker = scripted_validation(folder, monkeypatch, [[30.0], [30.08], [29.0], [30.15], [30.2]], "train.keep_best_margin=0.1")
    assert best_steps(tracker, range(5)) == [0, 0, 0, 3, 3]  # +0.08 and then +0.05 over the best are within the margin
    with pytest.raises(ConfigError, match="train.keep_best_margin must be >= 0"):
        load_config(None, ["train.keep_best_margin=-0.1"])


def test_ranking_by_the_worst_pair_lets_no_pair_pay_for_another(paired, tmp_path, monkeypatch):
    """`keep_best_by=worst` over pairs side by side (each a group of its own): a step whose mean gain hides a loss on
    one pair does not replace the start; one that gains on every pair does, and the ranking survives a checkpoint."""
    folder = validation_folder(paired, tmp_path, ["a", "b"])
    scorings = [[30.0, 24.0], [31.0, 23.8], [30.3, 24.1], [31.0, 24.2]]
    by_mean = scripted_validation(folder, monkeypatch, scorings, "train.keep_best=true")
    assert best_steps(by_mean, range(4)) == [0, 1, 1, 3]  # step 1: mean +0.4 dB, though the second pair lost 0.2
    worst = scripted_validation(folder, monkeypatch, scorings, "train.keep_best=true", "train.keep_best_by=worst")
    network = torch.nn.Conv2d(3, 3, 1)
    logged = [worst.score(network, step, torch.device("cpu")) for step in range(3)]
    assert [row["val/best_step"] for row in logged] == [0, 0, 2]
    assert [row["val/worst_change"] for row in logged] == pytest.approx([0.0, -0.2, 0.1])
    resumed = scripted_validation(folder, monkeypatch, scorings[3:], "train.keep_best=true", "train.keep_best_by=worst")
    resumed.load_state_dict(worst.state_dict())
    assert best_steps(resumed, [3]) == [3] and resumed.best_score == pytest.approx(0.2)  # changes still from step 0
    with pytest.raises(ConfigError, match="train.keep_best_by must be one of 'mean', 'worst'; got 'median'"):
        load_config(None, ["train.keep_best_by=median"])


def test_ranking_by_the_worst_group_weighs_each_subfolder_by_its_mean(paired, tmp_path, monkeypatch):
    """Subfolders of data.val_blur are groups (mild/, strong/): a pair may lose where its group gains on the whole,
    but no group may lose for another."""
    folder = validation_folder(paired, tmp_path, ["mild/a", "mild/b", "strong/c"])
    scorings = [
        [30.0, 30.0, 24.0],
        [30.9, 29.7, 24.3],  # mild +0.9 and -0.3: +0.3 on the whole; strong +0.3
        [32.0, 32.0, 23.9],  # mild +2.0, strong -0.1: the mean's favourite, which no group may pay for
    ]
    tracker = scripted_validation(folder, monkeypatch, scorings, "train.keep_best=true", "train.keep_best_by=worst")
    network = torch.nn.Conv2d(3, 3, 1)
    logged = [tracker.score(network, step, torch.device("cpu")) for step in range(3)]
    assert [row["val/worst_change"] for row in logged] == pytest.approx([0.0, 0.3, -0.1])
    assert [row["val/best_step"] for row in logged] == [0, 1, 1]


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
    overrides = [
        f"data.sharp={photo_folder}",
        f"output_dir={tmp_path / 'run'}",
        f"data.val_blur={paired / 'blur'}",
        f"data.val_sharp={tmp_path}",
    ]
    with pytest.raises(UserError, match="no file has a twin of the same name in data.val_sharp"):
        train(load_config(ROOT / "configs" / "general.yaml", overrides))


def adapt(unpaired, run, *overrides):
    """configs/adapt.yaml, from the bundled model, on a few crops of real unpaired photos."""
    config = load_config(
        ROOT / "configs" / "adapt.yaml",
        [
            f"data.blur={unpaired / 'blur'}",
            f"data.sharp={unpaired / 'sharp'}",
            f"output_dir={run}",
            *TINY_NETWORKS["adapt.yaml"],
            *TINY_GENERAL_RUN,
            *overrides,
        ],
    )
    train(config)
    return [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]


def test_the_guard_delivers_the_start_when_training_broke_the_deblurrer(unpaired, tmp_path, capsys):
    rows = adapt(unpaired, tmp_path / "run", "train.lr_g=0.5", "train.freeze_steps=0", "train.guard=true")
    (scores,) = [row for row in rows if "guard/start_psnr" in row]
    assert scores["guard/start_psnr"] > scores["guard/trained_psnr"] + 1
    assert "delivering the start" in capsys.readouterr().out
    delivered = load_file(tmp_path / "run" / "generator" / "model.safetensors")
    bundled = load_file(pretrained.PRETRAINED_ROOT / "general" / "model.safetensors")
    assert all((delivered[key] == bundled[key]).all() for key in bundled)
    assert "Training steps: 0" in (tmp_path / "run" / "generator" / "README.md").read_text()


class Shift(torch.nn.Module):
    def __init__(self, offset: float):
        super().__init__()
        self.offset = offset

    def forward(self, images):
        return images + self.offset


def test_the_guard_scores_both_candidates_on_the_same_pseudo_pairs(unpaired):
    from cycledeblur.image_files import read_pixels
    from cycledeblur.models.kernel import KernelBlurGenerator
    from cycledeblur.training.guard import centre_crops, pseudo_pair_psnr

    paths = sorted((unpaired / "sharp").iterdir())[:3]
    photos = [torch.tensor(read_pixels(path)).permute(2, 0, 1).float() / 255 for path in paths]
    crops = centre_crops(photos, multiple=16)
    assert all(crop.shape[-2] % 16 == 0 and crop.shape[-1] % 16 == 0 and crop.shape[-1] <= 256 for crop in crops)
    reblur = KernelBlurGenerator(kernel_size=9, base_channels=4, initial_sigma=2.0, initial_noise=0.01)
    # The same network twice scores the same: both candidates see the same blur and the same noise draws.
    scores = pseudo_pair_psnr({"a": Shift(0.0), "b": Shift(0.0), "dark": Shift(-0.5)}, reblur, crops, "cpu", nullcontext)
    assert scores["a"] == scores["b"] and 15 < scores["a"] < 45
    assert scores["dark"] < scores["a"] - 5


@pytest.mark.parametrize(
    "overrides",
    [["train.guard=true", "model.init_from="], ["train.guard=true", "data.val_blur=x", "data.val_sharp=x", "train.keep_best=true"]],
)
def test_guard_needs_a_start_and_leaves_validation_pairs_to_keep_best(unpaired, tmp_path, overrides):
    base = [f"data.blur={unpaired / 'blur'}", f"data.sharp={unpaired / 'sharp'}", f"output_dir={tmp_path / 'run'}"]
    with pytest.raises(ConfigError, match="train.guard checks an unpaired fine-tune from model.init_from"):
        load_config(ROOT / "configs" / "adapt.yaml", [*base, *overrides])
