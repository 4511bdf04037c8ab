"""The no-reference guard of an unpaired fine-tune without validation pairs (`train.guard`).

At the end of the run, the sharp photos are blurred by the final reblurring generator, which has learned to imitate
the user's blurred photos, and both the trained deblurrer and the weights it started from (`model.init_from`)
deblur these pseudo-pairs. The start is delivered when it scores higher. The trained deblurrer has learned on
pseudo-pairs of the same kind, so the guard favours it: it catches a deblurrer that training has broken, not a
small loss on the user's own blur. Validation pairs (`data.val_blur`, `train.keep_best`) measure the real thing.
"""

from __future__ import annotations

import copy

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from .init_from import initial_weights, start_from

GUARD_PHOTOS = 16  # sharp photos blurred for the guard, spread over the folder
GUARD_CROP = 256  # px, the centre of each photo: whole photos can be large, and the blur is local
GUARD_SEED = 0  # the reblurring generator's noise: the same draws for both candidates


def starting_generator(trained: torch.nn.Module, source: str, channels: int) -> torch.nn.Module:
    """A copy of `trained` holding the deblurring weights of `source` (the run's `model.init_from`)."""
    start = copy.deepcopy(trained)
    weights, source_channels = initial_weights(source)
    start_from(start, weights["deblur"], source_channels, channels, "deblur")
    return start


def centre_crops(photos: list[torch.Tensor], multiple: int) -> list[torch.Tensor]:
    """The centre of each photo ([0, 1], C x H x W), at most `GUARD_CROP` square, cut to the generator's multiple."""
    crops = []
    for photo in photos:
        height, width = (min(GUARD_CROP, side) // multiple * multiple for side in photo.shape[-2:])
        top, left = (photo.shape[-2] - height) // 2, (photo.shape[-1] - width) // 2
        crops.append(photo[:, top : top + height, left : left + width])
    return crops


@torch.no_grad()
def pseudo_pair_psnr(
    candidates: dict[str, torch.nn.Module], reblur: torch.nn.Module, sharp_crops: list[torch.Tensor], device, autocast
) -> dict[str, float]:
    """Mean PSNR of each candidate deblurrer on the sharp crops blurred by `reblur` (its sensor noise included)."""
    totals = dict.fromkeys(candidates, 0.0)
    was_training = {name: net.training for name, net in candidates.items()}
    for net in candidates.values():
        net.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(GUARD_SEED)
            for sharp in sharp_crops:
                sharp = sharp.unsqueeze(0).to(device)
                with autocast():
                    blurred = reblur(sharp * 2 - 1).float()  # training mode: the noise it learned is part of the blur
                for name, net in candidates.items():
                    with autocast():
                        deblurred = net(blurred).float()
                    restored = deblurred.add(1).div(2).clamp(0, 1)
                    totals[name] += float(peak_signal_noise_ratio(restored, sharp, data_range=1.0))
    finally:
        for name, net in candidates.items():
            net.train(was_training[name])
    return {name: total / len(sharp_crops) for name, total in totals.items()}
