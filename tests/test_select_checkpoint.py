"""bench/select_checkpoint.py on a tiny general run: each checkpoint's delivered weights scored on val, the best
copied into the run's generator/ with a record of the choice."""

import json

import pytest

from bench import select_checkpoint
from cycledeblur.training import train


@pytest.mark.slow
def test_every_checkpoint_is_scored_on_val_and_the_best_is_delivered(tiny_config, photo_folder, corpus, tmp_path, capsys):
    train(
        tiny_config(
            "data.blur=",
            f"data.sharp={photo_folder}",
            "train.max_steps=4",
            "train.checkpoint_every=2",
            "train.keep_checkpoints=3",
            base="general.yaml",
        )
    )
    run, out = tmp_path / "run", tmp_path / "select"

    assert select_checkpoint.main([str(run), "--out", str(out), "--corpus", str(corpus), "--deliver"]) == 0

    printed = capsys.readouterr().out
    scored = {}
    for step in (2, 4):
        results = json.loads((out / f"results-step_{step:07d}.json").read_text())
        assert results["split"] == "val" and results["photos"] == ["hubble_deep_field.png", "immunohistochemistry.png"]
        scored[step] = select_checkpoint.gains(results)[0]
        assert f"| step {step}" in printed
    selection = json.loads((run / "generator" / select_checkpoint.SELECTION_FILE).read_text())
    assert selection["step"] == max(scored, key=scored.get)
    assert f"| step {selection['step']} (chosen) |" in selection["table"]
    chosen = out / "generators" / f"step_{selection['step']:07d}" / "model.safetensors"
    assert (run / "generator" / "model.safetensors").read_bytes() == chosen.read_bytes()
    assert (out / "generators" / "step_0000002" / "model.safetensors").read_bytes() != (
        out / "generators" / "step_0000004" / "model.safetensors"
    ).read_bytes()
