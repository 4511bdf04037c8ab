"""A training run survives being killed at any moment, stops cleanly on SIGINT / SIGTERM, and loses nothing to a
full disk or an unwritable folder; a resumed run ends with the weights of an uninterrupted one, bit for bit.
Nothing from a checkpoint or model folder is unpickled into code, no token is written, and processes share no data."""

import errno
import itertools
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.data_loader import prepare_data_loader
from safetensors.torch import load_file
from torch.utils.data import Dataset

from cycledeblur.errors import TrainingDiverged, TrainingInterrupted, UserError
from cycledeblur.models import ResnetGenerator, load_generator
from cycledeblur.training import train
from cycledeblur.training import loop_state as loop_state_module
from cycledeblur.training.checkpoints import list_checkpoints
from cycledeblur.training.data_position import endless_batches
from cycledeblur.training.session import TrainingSession

from .conftest import ROOT, TINY_NETWORKS, TINY_OVERRIDES, TINY_TRAINING, checkpoint_weights

STEPS = (
    "train.max_steps=10",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=2",
    "train.batch_size=1",
    "train.pool_size=2",
    "train.ema_decay=0.9",
)


def harness(unpaired, run_dir, point: str, signal_name: str, resume: bool, base: str = "default.yaml") -> subprocess.CompletedProcess:
    """`cycledeblur train` of the tiny run of `base` in a fresh process, sent `signal_name` at `point` (see
    kill_harness.py)."""
    arguments = [
        "--config",
        str(ROOT / "configs" / base),
        *(["--resume"] if resume else []),
        f"data.blur={unpaired / 'blur'}",
        f"data.sharp={unpaired / 'sharp'}",
        f"output_dir={run_dir}",
        *TINY_NETWORKS[base],
        *TINY_TRAINING,
        *STEPS,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "kill_harness.py"), point, signal_name, *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def steps_of(run_dir) -> list[int]:
    return [int(path.name.removeprefix("step_")) for path in list_checkpoints(run_dir)]


@pytest.mark.slow
@pytest.mark.parametrize("base", ["default.yaml", "unit.yaml"])
def test_killed_four_times_the_run_ends_as_if_never_interrupted(tiny_config, unpaired, tmp_path, base):
    """UNIT too: two optimizer steps per step, the translator's weight average, the codes' noise."""
    straight = train(tiny_config(*STEPS, run="straight", base=base)).parent
    run = tmp_path / "killed"

    # SIGKILL mid-step: step 5's generators have been updated, its discriminators not.
    done = harness(unpaired, run, "optimizer_step:9", "SIGKILL", resume=False, base=base)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert steps_of(run) == [2, 4]

    # SIGKILL while the step-6 checkpoint is being written: it must not count as a checkpoint.
    done = harness(unpaired, run, "loop_state_write:1", "SIGKILL", resume=True, base=base)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert steps_of(run) == [2, 4] and (run / "checkpoints" / ".step_0000006.partial").is_dir()

    # SIGKILL half-way through deleting step 2 (pruned once step 6 is written): step 2 is gone, not half there.
    done = harness(unpaired, run, "checkpoint_delete:1", "SIGKILL", resume=True, base=base)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert steps_of(run) == [4, 6]

    # SIGTERM (a pre-emption) during step 7: the step ends, a checkpoint is written, the process exits 143.
    done = harness(unpaired, run, "optimizer_step:1", "SIGTERM", resume=True, base=base)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr[-2000:]
    assert "stopped by SIGTERM after step 7" in done.stderr and steps_of(run) == [6, 7]

    train(tiny_config(*STEPS, run="killed", base=base), resume=True)
    assert not [path.name for path in (run / "checkpoints").iterdir() if path.name.startswith(".")]  # leftovers gone
    for step in (8, 10):
        expected, resumed = checkpoint_weights(straight, step), checkpoint_weights(run, step)
        for name in expected:
            assert all((expected[name][key] == resumed[name][key]).all() for key in expected[name]), (step, name)
    delivered = [load_file(folder / "generator" / "model.safetensors") for folder in (straight, run)]
    assert all((delivered[0][key] == delivered[1][key]).all() for key in delivered[0])  # the weight average


def test_sigint_in_process_checkpoints_and_raises(tiny_config, tmp_path, monkeypatch):
    """Ctrl-C in an interactive run: the handler lets the step finish, then the run checkpoints and stops."""
    original_step, calls = torch.optim.Adam.step, []

    def step_then_ctrl_c(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the generators' update of step 2
            os.kill(os.getpid(), signal.SIGINT)
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_then_ctrl_c)
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGINT after step 2") as stopped:
        train(tiny_config("train.max_steps=6", "train.checkpoint_every=100"))
    assert stopped.value.signal_number == signal.SIGINT
    assert steps_of(tmp_path / "run") == [2]
    assert signal.getsignal(signal.SIGINT) is previous  # the run gave the handler back


def test_a_full_disk_keeps_the_earlier_checkpoints(tiny_config, tmp_path, monkeypatch):
    save_file, writes = loop_state_module.save_file, []

    def fills_the_disk(tensors, path, *args, **kwargs):
        writes.append(path)
        if len(writes) > 2:  # the second checkpoint's files (the first has a shared and a per-process file)
            raise OSError(28, "No space left on device")
        save_file(tensors, path, *args, **kwargs)

    monkeypatch.setattr(loop_state_module, "save_file", fills_the_disk)
    with pytest.raises(UserError, match=r"cannot write the checkpoint .*step_0000004: No space left on device.*intact \(step_0000002\)"):
        train(tiny_config("train.max_steps=6", "train.checkpoint_every=2"))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["step_0000002"]  # no half-written folder either
    checkpoint_weights(tmp_path / "run", 2)  # and it loads


def test_an_unwritable_output_dir_is_one_clear_error(tiny_config, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match="output_dir=.*a_file/run.* cannot be written"):
        train(tiny_config(run="a_file/run"))


def test_an_incomplete_checkpoint_is_refused_by_name(tiny_config, tmp_path):
    train(tiny_config("train.max_steps=2", "train.checkpoint_every=1"))
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000002"
    (checkpoint / "replicas.json").unlink()  # as if the write had stopped before its last file
    assert steps_of(tmp_path / "run") == [1]
    with pytest.raises(UserError, match="step_0000002: an incomplete checkpoint"):
        train(tiny_config("train.max_steps=4"), resume=str(checkpoint))


def test_checkpoints_hold_no_pickle_of_ours(tiny_config, tmp_path):
    """The loop's state (step, image pools, weight average) is safetensors; Accelerate's own pickles (optimizer,
    scheduler, random states) load with torch.load(weights_only=True), which cannot run code."""
    train(tiny_config("train.max_steps=2", "train.checkpoint_every=2", "train.ema_decay=0.9"))
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000002"
    assert not list(checkpoint.glob("custom_checkpoint_*"))
    shared = load_file(checkpoint / "loop_state.safetensors")
    assert int(shared["train.step"]) == 2 and "weight_average.n_averaged" in shared
    own = load_file(checkpoint / "loop_state_rank0.safetensors")
    assert own["fake_sharp_pool.images"].shape == (4, 3, 32, 32) and "fake_blurred_pool.generator" in own  # full


class CodeOnLoad:
    """Unpickling this creates `marker`: what a hostile checkpoint would do with a real payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_hostile_pickles_are_never_run(tiny_config, tmp_path):
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(CodeOnLoad(marker))
    # A generator folder with a pickle where model.safetensors should be: refused, not unpickled.
    generator = ResnetGenerator(base_channels=4, n_blocks=1)
    generator.save_pretrained(tmp_path / "generator")
    (tmp_path / "generator" / "model.safetensors").unlink()
    (tmp_path / "generator" / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(UserError, match="has no model.safetensors"):
        load_generator(tmp_path / "generator")
    # A checkpoint whose optimizer state is a hostile pickle: resuming stops with one line, the payload never runs.
    train(tiny_config("train.max_steps=2", "train.checkpoint_every=2"))
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000002"
    (checkpoint / "optimizer.bin").write_bytes(payload)
    with pytest.raises(UserError, match="cannot resume from .*step_0000002"):
        train(tiny_config("train.max_steps=4"), resume=True)
    assert not marker.exists()


def test_no_hub_token_reaches_the_run_folder(tiny_config, tmp_path, monkeypatch):
    secret = "hf_" + "s3cr3t" * 6
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.setenv(variable, secret)
    run = train(tiny_config("train.max_steps=2", "train.checkpoint_every=2", "train.sample_every=2")).parent
    files = [path for path in run.rglob("*") if path.is_file()]
    assert len(files) > 10  # config, logs, samples, checkpoint, generator and its card
    assert not [path for path in files if secret.encode() in path.read_bytes()]


class EchoKeys(Dataset):
    """Returns the sampler's (epoch, index) keys themselves, so a test sees which items each process got."""

    def __len__(self):
        return 10

    def __getitem__(self, key):
        return torch.tensor(key)


def test_two_processes_get_disjoint_data_and_resume_mid_epoch_where_they_were(tiny_config):
    """The loop's loaders, sharded as Accelerate shards them over 2 processes: within each epoch no item goes to
    both (the leftover batch is dropped, not repeated), and a stream restarted after k batches (a resume) goes on
    exactly as the uninterrupted one."""
    session = TrainingSession(tiny_config(), resume=None)

    def stream(rank: int, start: int) -> list[tuple[int, int]]:
        loader, sampler = session.data.loader(EchoKeys(), seed=3, batch_size=2)
        shard = prepare_data_loader(loader, num_processes=2, process_index=rank)
        batches = endless_batches(session.accelerator, shard, sampler, start)
        return [tuple(key.tolist()) for batch in itertools.islice(batches, 6 - start) for key in batch]

    ranks = [stream(rank, start=0) for rank in (0, 1)]
    for epoch in (0, 1, 2):  # 10 items, batches of 2 over 2 processes: 2 batches each per epoch, 2 items dropped
        per_rank = [{index for seen_epoch, index in keys if seen_epoch == epoch} for keys in ranks]
        assert len(per_rank[0]) == len(per_rank[1]) == 4 and not per_rank[0] & per_rank[1], epoch
    for rank in (0, 1):
        assert stream(rank, start=3) == ranks[rank][3 * 2 :]  # resumed after 3 batches, mid-epoch 1


def test_a_nan_is_caught_within_ten_steps_between_sparse_log_steps(tiny_config, tmp_path):
    """Logging every 1000 steps, the losses are still checked every 10 steps (one host sync each), so a blown-up run
    stops at step 10 naming a loss term, not at its next log step."""
    config = tiny_config(
        "train.max_steps=40",
        "train.log_every=1000",
        "train.checkpoint_every=1000",
        "train.lr_g=1e4",
        "train.lr_d=1e4",
        "model.generator.residual_output=false",
        "model.generator.norm=none",
    )
    with pytest.raises(TrainingDiverged, match=r"training diverged by step 10: loss/\w+ is (nan|inf)"):
        train(config)


def test_a_full_disk_outside_checkpoints_is_one_line_too(unpaired, tmp_path, capsys, monkeypatch):
    """A sample grid that cannot be written (the disk filled up): the command ends in one line naming the file."""
    from cycledeblur.cli import main
    from cycledeblur.training import samples

    def disk_full(tensor, path, **options):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(samples, "save_image", disk_full)
    run = tmp_path / "run"
    arguments = [
        "train",
        "--config",
        str(ROOT / "configs" / "default.yaml"),
        f"data.blur={unpaired / 'blur'}",
        f"data.sharp={unpaired / 'sharp'}",
        f"output_dir={run}",
        *TINY_OVERRIDES,
        "train.max_steps=2",
    ]
    assert main(arguments) == 2
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert errors[0].startswith("error: cannot write") and "step_0000002.png: No space left on device" in errors[0]
