"""The CycleGAN history of generated images (Shrivastava et al. 2017), checkpointable per process."""

from __future__ import annotations

import torch
from accelerate import PartialState
from accelerate.utils import gather_object


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

    def state_dict(self) -> dict:
        # Accelerate saves registered objects from the main process only, so gather every rank's pool into it.
        state = {
            "images": [image.cpu() for image in self.images],
            "generator": self.generator.get_state(),
        }
        if PartialState().num_processes > 1:
            return {"per_process": gather_object([state])}
        return {"per_process": [state]}

    def load_state_dict(self, state: dict) -> None:
        process_states = state["per_process"]
        mine = process_states[PartialState().process_index % len(process_states)]
        device = PartialState().device
        self.images = [image.to(device) for image in mine["images"]]
        self.generator.set_state(mine["generator"])
