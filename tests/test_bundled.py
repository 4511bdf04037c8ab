"""The model bundled with the package (`general`): the default `--model` of deblur, evaluate and export, a
starting point for fine-tuning, listed by `cycledeblur models`, and put in place by bench/bundle.py."""

import json

import pytest
from safetensors.torch import load_file

from bench import bundle
from cycledeblur import pretrained
from cycledeblur.cli import main
from cycledeblur.config import load_config
from cycledeblur.inference import resolve_generator
from cycledeblur.models import NAFNetGenerator, ResnetGenerator, load_generator
from cycledeblur.training import train
from cycledeblur.training.init_from import initial_weights

from .conftest import ROOT, TINY_GENERAL_RUN

BUNDLED = pretrained.PRETRAINED_ROOT / "general"


@pytest.fixture(scope="module")
def fine_tuned(photo_folder, tmp_path_factory):
    """A run of configs/general.yaml started from the bundled model (`model.init_from=general`)."""
    run = tmp_path_factory.mktemp("bundled") / "run"
    overrides = [f"data.sharp={photo_folder}", f"output_dir={run}", "model.init_from=general", *TINY_GENERAL_RUN]
    train(load_config(ROOT / "configs" / "general.yaml", overrides))
    return run


def test_deblur_without_model_runs_the_bundled_model(photo_folder, tmp_path, capsys):
    assert main(["deblur", str(photo_folder), "--out", str(tmp_path / "default")]) == 0
    assert main(["deblur", str(photo_folder), "--model", str(BUNDLED), "--out", str(tmp_path / "folder")]) == 0
    written = sorted(path.name for path in (tmp_path / "default").iterdir())
    assert written == sorted(path.name for path in photo_folder.iterdir())
    for name in written:
        default, explicit = (tmp_path / "default" / name).read_bytes(), (tmp_path / "folder" / name).read_bytes()
        assert default == explicit and default != (photo_folder / name).read_bytes()


def test_evaluate_without_model_scores_the_bundled_model(paired, tmp_path, capsys):
    report = tmp_path / "scores.json"
    assert main(["evaluate", "--blur", str(paired / "blur"), "--sharp", str(paired / "sharp"), "--json", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert scores["n_images"] == len(list((paired / "blur").iterdir()))
    assert scores["output"]["psnr"] != scores["input"]["psnr"]


@pytest.mark.slow
def test_export_without_model_exports_the_bundled_model(paired, tmp_path, capsys):
    path = tmp_path / "general.onnx"
    assert main(["export", "--onnx", str(path), "--input-size", "64"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert path.is_file() and "checking parity on the package's sample photos" in out and "max |ONNX - PyTorch|" in out


def test_fine_tuning_starts_from_the_bundled_weights(fine_tuned, capsys):
    weights, channels = initial_weights("general")
    bundled = load_file(BUNDLED / "model.safetensors")
    assert channels == 3 and list(weights) == ["deblur"]
    assert all((weights["deblur"][key] == value).all() for key, value in bundled.items())
    # Two steps at a learning rate of 1e-3 move a weight by a few thousandths; a fresh network is far away.
    tuned = load_file(fine_tuned / "generator" / "model.safetensors")
    options = json.loads((BUNDLED / "config.json").read_text())
    del options["architecture"]
    fresh = NAFNetGenerator(**options)
    assert max((tuned[key] - value).abs().max().item() for key, value in bundled.items()) < 0.02
    assert max((value - bundled[key]).abs().max().item() for key, value in fresh.state_dict().items()) > 0.1


def test_a_local_path_named_general_wins(photo_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert isinstance(resolve_generator("general"), NAFNetGenerator)  # no such path here: the bundled model
    ResnetGenerator(base_channels=4, n_blocks=1).save_pretrained(tmp_path / "general")
    assert isinstance(resolve_generator("general"), ResnetGenerator)
    assert isinstance(load_generator("general"), ResnetGenerator)
    assert "encoder.0.weight" in initial_weights("general")[0]["deblur"]
    (tmp_path / "general" / "model.safetensors").unlink()
    assert main(["deblur", str(photo_folder), "--out", str(tmp_path / "out")]) == 2
    assert "--model general:" in capsys.readouterr().err


def test_models_lists_the_bundled_model_as_its_files_are(capsys):
    assert main(["models"]) == 0
    printed = capsys.readouterr().out
    info = json.loads((BUNDLED / "bundle.json").read_text())
    parameters = sum(p.numel() for p in load_generator(BUNDLED).parameters())
    size_mb = (BUNDLED / "model.safetensors").stat().st_size / 1e6
    assert f"general: nafnet, {parameters / 1e6:.2f} M parameters, {size_mb:.2f} MB" in printed
    assert info["parameters"] == parameters and info["family"] == "nafnet"
    assert "cycledeblur train --config configs/general.yaml" in printed
    assert "python bench/corpus.py bench/out/corpus" in printed
    assert f"{info['steps']} steps in" in printed and "data_cards/general-corpus.md" in printed


def test_a_bundled_folder_missing_files_is_one_line(tmp_path, monkeypatch, photo_folder, capsys):
    (tmp_path / "general").mkdir()
    (tmp_path / "general" / "config.json").write_text((BUNDLED / "config.json").read_text())
    monkeypatch.setattr(pretrained, "PRETRAINED_ROOT", tmp_path)
    assert main(["models"]) == 2
    assert main(["deblur", str(photo_folder), "--out", str(tmp_path / "out")]) == 2
    listing, deblurring = capsys.readouterr().err.strip().splitlines()
    assert "general is incomplete" in listing and "no model.safetensors and no README.md and no bundle.json" in listing
    assert deblurring.endswith(
        f"{tmp_path / 'general'} has no model.safetensors (reinstall cycledeblur; in a source"
        " checkout: python bench/bundle.py RUN --name general)"
    )


def test_bundle_script_bundles_a_run_with_its_recipe_time_and_table(fine_tuned, tmp_path, capsys):
    table = tmp_path / "quality.md"
    table.write_text("| model | PSNR |\n| --- | --- |\n| general | 30.00 |\n")
    out = tmp_path / "general"
    assert bundle.main([str(fine_tuned), "--benchmark-table", str(table), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "bundle.json", "config.json", "model.safetensors"]
    assert (out / "model.safetensors").read_bytes() == (fine_tuned / "generator" / "model.safetensors").read_bytes()
    info = json.loads((out / "bundle.json").read_text())
    assert info["steps"] == 2 and info["family"] == "nafnet"
    # The command remakes the run from configs/general.yaml: its overrides, but not where it wrote.
    command = info["training_command"]
    assert command.startswith("cycledeblur train --config configs/general.yaml ") and "output_dir" not in command
    assert "train.max_steps=2" in command and "data.crop_size=32" in command and "model.init_from=general" in command
    logged = [json.loads(line) for line in (fine_tuned / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert info["wall_seconds"] == pytest.approx(sum(1 / line["perf/steps_per_second"] for line in logged), abs=0.1)
    card = (out / "README.md").read_text()
    assert "| general | 30.00 |" in card and command in card and "cycledeblur deblur --model general" in card
    assert printed.strip().splitlines()[-1] == f"rerun: python bench/bundle.py {fine_tuned} --benchmark-table {table} --out {out}"


def test_bundle_script_refuses_weights_over_the_limit(fine_tuned, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bundle, "MAX_WEIGHTS_BYTES", 1_000_000)
    assert bundle.main([str(fine_tuned), "--out", str(tmp_path / "general")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "MB: a bundled model ships in every install, at most 1 MB" in line
    assert not (tmp_path / "general").exists()


def test_training_time_counts_a_resumed_launch_from_its_checkpoint():
    """Launched to step 300 (logged every 100), resumed from the checkpoint at 200: 200-300 is run twice."""
    logged = [(100, 2.0), (200, 2.0), (300, 2.0), (300, 1.0), (400, 1.0)]
    steps, seconds = bundle.training_time([{"step": s, "perf/steps_per_second": r} for s, r in logged], 100)
    assert steps == 400 and seconds == pytest.approx(150 + 100 + 100)
