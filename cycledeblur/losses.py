"""Loss terms of unpaired deblurring. Each returns a scalar tensor; the weights live in `LossConfig`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_lab as kornia_rgb_to_lab
from torchmetrics.functional.image import structural_similarity_index_measure
from torchvision.transforms.v2.functional import gaussian_blur


# A discriminator returns one logit map, or (weight, logit map) per scale (the multi-scale PatchGAN).
Logits = torch.Tensor | list[tuple[float, torch.Tensor]]


def _per_scale(logits: Logits) -> list[tuple[float, torch.Tensor]]:
    return [(1.0, logits)] if isinstance(logits, torch.Tensor) else logits


def generator_adversarial_loss(fake_logits: Logits, mode: str) -> torch.Tensor:
    """How far the generator is from making the discriminator call its output real (weighted over scales)."""
    return sum(weight * _generator_loss(logits, mode) for weight, logits in _per_scale(fake_logits))


def discriminator_adversarial_loss(real_logits: Logits, fake_logits: Logits, mode: str) -> torch.Tensor:
    """The discriminator's loss for telling real from fake (weighted over scales)."""
    pairs = zip(_per_scale(real_logits), _per_scale(fake_logits))
    return sum(weight * _discriminator_loss(real, fake, mode) for (weight, real), (_, fake) in pairs)


def _generator_loss(fake_logits: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "lsgan":
        return F.mse_loss(fake_logits, torch.ones_like(fake_logits))
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if mode == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown GAN loss {mode!r}")


def _discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """Halved as in CycleGAN, to slow the discriminator relative to the generator."""
    if mode == "lsgan":
        loss = F.mse_loss(real_logits, torch.ones_like(real_logits)) + F.mse_loss(fake_logits, torch.zeros_like(fake_logits))
    elif mode == "vanilla":
        loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + F.binary_cross_entropy_with_logits(
            fake_logits, torch.zeros_like(fake_logits)
        )
    elif mode == "hinge":
        loss = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    else:
        raise ValueError(f"unknown GAN loss {mode!r}")
    return 0.5 * loss


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels: penalises checkerboard and ringing artefacts."""
    return (images[..., 1:, :] - images[..., :-1, :]).abs().mean() + (images[..., :, 1:] - images[..., :, :-1]).abs().mean()


def rgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """sRGB images in [-1, 1] (N x 3 x H x W) to CIELAB scaled to about [-1, 1]: (L / 50 - 1, a / 110, b / 110)."""
    lightness, a, b = kornia_rgb_to_lab((images.float().clamp(-1, 1) + 1) / 2).unbind(dim=1)
    return torch.stack([lightness / 50 - 1, a / 110, b / 110], dim=1)


def color_consistency(output: torch.Tensor, reference: torch.Tensor, sigma: float, space: str = "rgb") -> torch.Tensor:
    """L1 between Gaussian low-passed output and reference, in RGB or (`space="lab"`) in CIELAB.

    A blur kernel sums to one, so blurring keeps an image's low frequencies: a deblurred image must keep the
    input's local mean color. Penalising only the low band leaves the generator free to restore edges. LAB
    weighs a color shift by how visible it is, where RGB lets a hue drift cost as little as a brightness change.
    """
    if space == "lab":
        output, reference = rgb_to_lab(output), rgb_to_lab(reference)
    kernel_size = 2 * math.ceil(3 * sigma) + 1
    return F.l1_loss(gaussian_blur(output, [kernel_size] * 2, [sigma] * 2), gaussian_blur(reference, [kernel_size] * 2, [sigma] * 2))


def structural_dissimilarity(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """1 - SSIM of two N x C x H x W batches in [-1, 1] (torchmetrics' differentiable SSIM, 11 px Gaussian window)."""
    return 1 - structural_similarity_index_measure(image.float(), reference.float(), data_range=2.0)
