"""Runs `cycledeblur train` in this process and sends it a real signal at a chosen point of the run.

    python tests/kill_harness.py POINT:N SIGNAL train-arguments...

POINT:N is where the N-th event of a kind happens (counted from 1 in this process):
- `optimizer_step:N`: the N-th optimizer update is about to run (an unpaired step has two: the generators', then
  the discriminators'; an odd N lands mid-step, between them);
- `loop_state_write:N`: the N-th loop-state file of a checkpoint has just been written (Accelerate's files are
  there, the checkpoint is not complete);
- `checkpoint_delete:N`: the N-th deletion of an old checkpoint has removed one file of it.
SIGNAL is a signal name: SIGKILL ends the process there and then; SIGTERM / SIGINT go through the run's handlers.
"""

import os
import shutil
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cycledeblur.cli import main  # noqa: E402
from cycledeblur.training import checkpoints, loop_state  # noqa: E402


def signal_at(event: str, count: int, signal_number: int) -> None:
    seen = 0

    def arrived() -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            os.kill(os.getpid(), signal_number)

    if event == "optimizer_step":
        step = torch.optim.Adam.step

        def counted_step(self, *args, **kwargs):
            arrived()
            return step(self, *args, **kwargs)

        torch.optim.Adam.step = counted_step
    elif event == "loop_state_write":
        save_file = loop_state.save_file

        def counted_save_file(*args, **kwargs):
            save_file(*args, **kwargs)
            arrived()

        loop_state.save_file = counted_save_file
    elif event == "checkpoint_delete":

        def counted_rmtree(path, ignore_errors=False):
            if Path(path).name.endswith(".deleting"):  # an old checkpoint, not a leftover or a stale partial
                next(Path(path).rglob("*.safetensors")).unlink()
                arrived()
            shutil.rmtree(path, ignore_errors=ignore_errors)

        checkpoints.shutil = type(sys)("shutil_with_a_kill")
        checkpoints.shutil.rmtree = counted_rmtree
    else:
        raise SystemExit(f"unknown kill point {event}")


if __name__ == "__main__":
    torch.set_num_threads(1)  # as in the tests' own process: the same arithmetic, bit for bit
    point, signal_name, *arguments = sys.argv[1:]
    event, count = point.split(":")
    signal_at(event, int(count), signal.Signals[signal_name])
    sys.exit(main(["train", *arguments]))
