"""The loss terms of a run: summed on the device step after step, read out (one host sync) as means at log steps,
and checked for NaN or infinity in between."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from accelerate import Accelerator

from ..errors import TrainingDiverged
from .checkpoints import list_checkpoints

# Steps between checks for non-finite losses when no log step comes sooner: each check waits for the device once.
DIVERGENCE_CHECK_EVERY = 10


class RunningMeans:
    """`group/term` -> (sum, count) of the values recorded since the last `read`."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[torch.Tensor, int]] = {}

    def record(self, terms: dict[str, torch.Tensor], group: str = "loss") -> None:
        for name, value in terms.items():
            total, count = self._running.get(f"{group}/{name}", (0.0, 0))
            self._running[f"{group}/{name}"] = (total + value.detach(), count + 1)

    def means(self, accelerator: Accelerator) -> dict[str, float]:
        """The mean of each term over the steps and the processes: the terms travel as one tensor, so this is one
        collective and one host sync however many terms there are."""
        means = torch.stack([(total / count).float() for total, count in self._running.values()])
        values = accelerator.reduce(means, reduction="mean").tolist()
        return dict(zip(self._running, values))

    def clear(self) -> None:
        self._running = {}


def stop_if_diverged(means: dict[str, float], step: int, run_dir: Path) -> None:
    broken = [name for name, value in means.items() if not math.isfinite(value)]
    if broken:
        checkpoints = list_checkpoints(run_dir)
        kept = f"the last checkpoint, {checkpoints[-1]}, is finite" if checkpoints else "no checkpoint was written"
        raise TrainingDiverged(
            f"training diverged by step {step}: {broken[0]} is {means[broken[0]]} ({kept}); lower train.lr_g / train.lr_d and train again"
        )
