"""The CycleGAN history of generated images (Shrivastava et al. 2017), checkpointable per process."""

from __future__ import annotations

import torch
from accelerate import PartialState


class ImagePool:
    """Returns each queried image, or with probability 1/2 (once full) a stored older one in its place.

    Showing the discriminator a history of fakes instead of only the latest ones damps oscillation.
    The pool draws from its own generator so that its choices are part of the checkpoint and replay exactly.
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        if self.images and self.images[0].shape != images.shape[1:]:
            self.images = []  # progressive resolution moved on: older fakes no longer fit the batch
        chosen = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                chosen.append(image)
            elif torch.rand((), generator=self.generator) < 0.5:
                slot = int(torch.randint(len(self.images), (), generator=self.generator))
                chosen.append(self.images[slot])
                self.images[slot] = image
            else:
                chosen.append(image)
        return torch.stack(chosen)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """This process's pool (each process keeps its own, from its own fakes)."""
        images = torch.stack(self.images) if self.images else torch.empty(0)
        return {"images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = PartialState().device
        self.images = [image.to(device) for image in state["images"]] if state["images"].numel() else []
        self.generator.set_state(state["generator"])
