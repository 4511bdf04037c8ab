"""Helpers of the adversarial steps that every loop shares: a discriminator frozen for the generators' step, what a
discriminator sees (instance noise), and its loss on a real and a fake batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..losses import discriminator_adversarial_loss


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


def judge(discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, gan_mode: str, noise: float) -> torch.Tensor:
    """A discriminator's loss for telling `real` photos from (detached) `fake` ones, both under instance noise."""
    real_logits = discriminator(with_instance_noise(real, noise))
    return discriminator_adversarial_loss(real_logits, discriminator(with_instance_noise(fake.detach(), noise)), gan_mode)
