"""Sample grids written during training: one column per image, one row per stage (blurred input, deblurred, then
reblurred in unpaired runs or the sharp twin in paired ones); and the blur kernels a kernel generator draws."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torchvision.transforms.v2.functional import center_crop
from torchvision.utils import save_image


def spread_indices(length: int, count: int) -> list[int]:
    """Up to `count` indices spread evenly over range(length), first and last included."""
    return sorted({round(i * (length - 1) / max(count - 1, 1)) for i in range(count)})


def sample_batch(images: list[torch.Tensor], size: int, multiple: int) -> torch.Tensor:
    """Center crops of a common size (at most `size`, a multiple of `multiple`), in [-1, 1]."""
    side = min(size, *(min(image.shape[-2:]) for image in images))
    side = max(multiple, side // multiple * multiple)
    return torch.stack([center_crop(image, [side, side]) for image in images]) * 2 - 1


@torch.no_grad()
def save_sample_grid(rows: list[torch.Tensor], path: Path) -> None:
    """Save `rows` (each N x C x H x W in [-1, 1]) as a grid with one row per tensor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = rows[0].shape[0]
    save_image(torch.cat(rows).float().add(1).div(2).clamp(0, 1), path, nrow=columns, padding=2, pad_value=1.0)


@contextmanager
def evaluating(accelerator, networks: list[torch.nn.Module]) -> Iterator[list[torch.nn.Module]]:
    """The networks unwrapped and in eval mode, under the run's autocast and without gradients; back to training
    mode after the block."""
    networks = [accelerator.unwrap_model(network, keep_torch_compile=False) for network in networks]
    for network in networks:
        network.eval()
    try:
        with torch.no_grad(), accelerator.autocast():
            yield networks
    finally:
        for network in networks:
            network.train()


def save_samples(accelerator, networks: list[torch.nn.Module], rows: Callable[..., list[torch.Tensor]], path: Path) -> None:
    """Save the grid of `rows(*networks)`, the networks as `evaluating` gives them."""
    with evaluating(accelerator, networks) as unwrapped:
        grid = rows(*unwrapped)
    save_sample_grid(grid, path)


@torch.no_grad()
def save_kernel_picture(kernels: torch.Tensor, path: Path, zoom: int = 8) -> None:
    """Save N x k x k kernels side by side, each scaled to its own peak (white) and enlarged `zoom` times."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kernels = kernels.float().cpu()
    peaks = kernels.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    pictures = (kernels / peaks).repeat_interleave(zoom, dim=-2).repeat_interleave(zoom, dim=-1).unsqueeze(1)
    save_image(pictures, path, nrow=len(kernels), padding=2, pad_value=0.5)
