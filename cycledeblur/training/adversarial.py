"""Helpers of the adversarial steps that every loop shares: a discriminator frozen for the generators' step, and what a
discriminator sees (instance noise)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`module` with its weights excluded from autograd: gradients still flow through it to its inputs."""
    trainable = [p for p in module.parameters() if p.requires_grad]  # weights a user froze stay frozen
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield module
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


def with_instance_noise(images: torch.Tensor, std: float) -> torch.Tensor:
    """What a discriminator sees: the images plus Gaussian noise of `std` (instance noise, Sønderby et al. 2017)."""
    return images + std * torch.randn_like(images) if std > 0 else images
