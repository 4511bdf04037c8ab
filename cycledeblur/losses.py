"""Loss terms of unpaired deblurring. Each returns a scalar tensor; the weights live in `LossConfig`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur


def generator_adversarial_loss(fake_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """How far the generator is from making the discriminator call its output real."""
    if mode == "lsgan":
        return F.mse_loss(fake_logits, torch.ones_like(fake_logits))
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if mode == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown GAN loss {mode!r}")


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """The discriminator's loss for telling real from fake, halved as in CycleGAN to slow it relative to G."""
    if mode == "lsgan":
        loss = F.mse_loss(real_logits, torch.ones_like(real_logits)) + F.mse_loss(fake_logits, torch.zeros_like(fake_logits))
    elif mode == "vanilla":
        loss = F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    elif mode == "hinge":
        loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    else:
        raise ValueError(f"unknown GAN loss {mode!r}")
    return 0.5 * loss


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels: penalises checkerboard and ringing artefacts."""
    return (images[..., 1:, :] - images[..., :-1, :]).abs().mean() + (images[..., :, 1:] - images[..., :, :-1]).abs().mean()


def color_consistency(output: torch.Tensor, reference: torch.Tensor, sigma: float) -> torch.Tensor:
    """L1 between Gaussian low-passed output and reference.

    A blur kernel sums to one, so blurring keeps an image's low frequencies: a deblurred image must keep the
    input's local mean color. Penalising only the low band leaves the generator free to restore edges.
    """
    kernel_size = 2 * math.ceil(3 * sigma) + 1
    return F.l1_loss(gaussian_blur(output, [kernel_size] * 2, [sigma] * 2), gaussian_blur(reference, [kernel_size] * 2, [sigma] * 2))
