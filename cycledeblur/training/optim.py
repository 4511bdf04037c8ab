"""Optimisers and the CycleGAN learning-rate schedule: constant, then linear decay to zero."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch

from ..config import TrainConfig


class ConstantThenLinearDecay:
    """LR multiplier: 1 until `decay_start * max_steps`, then linearly down to 0 at `max_steps`.

    A class rather than a lambda so LambdaLR's state_dict (and so the checkpoint) can record it.
    """

    def __init__(self, max_steps: int, decay_start: float):
        self.max_steps, self.decay_from = max_steps, int(decay_start * max_steps)

    def __call__(self, step: int) -> float:
        if step < self.decay_from:
            return 1.0
        return max(0.0, 1.0 - (step - self.decay_from) / max(1, self.max_steps - self.decay_from))


def adam(parameters: Iterable[torch.nn.Parameter] | list[dict], lr: float, train: TrainConfig) -> torch.optim.Adam:
    """Adam over `parameters` (or parameter groups, each with its own "lr" if given), with the run's betas."""
    # `fused=None` leaves PyTorch its default (foreach on CUDA, a loop on CPU); the fused kernel's device check
    # runs at the first step, after Accelerate has moved the parameters.
    return torch.optim.Adam(list(parameters), lr=lr, betas=train.betas, fused=train.fused_optimizer or None)


def linear_decay(optimizer: torch.optim.Optimizer, max_steps: int, decay_start: float) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, ConstantThenLinearDecay(max_steps, decay_start))


def unpaired_optimizers(generators: Iterable[torch.nn.Parameter] | list[dict], discriminators: list[torch.nn.Module], train: TrainConfig):
    """The unpaired modes' optimizers and schedules: Adam over the generators' parameters (or groups) at
    `train.lr_g`, one Adam over both discriminators at `train.lr_d`, each decaying over the whole run. Returns
    (generators' optimizer, discriminators' optimizer, their two schedules)."""
    optimizer_g = adam(generators, train.lr_g, train)
    optimizer_d = adam(itertools.chain(*(network.parameters() for network in discriminators)), train.lr_d, train)
    schedules = [linear_decay(optimizer, train.max_steps, train.lr_decay_start) for optimizer in (optimizer_g, optimizer_d)]
    return optimizer_g, optimizer_d, *schedules
