"""Where a run's data streams stand: loaders whose order and crops replay from a seed, batches from any step on
(a resumed run skips what it has seen), each step's crop window, and the count of unusable images passed over."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..config import Config
from ..data import CropDataset, EpochSampler
from ..data.crops import random_windows


class SkippedFiles:
    """How many unusable images this process's data streams have passed over (see `CropDataset`), counted on the
    device (no wait for the host) and checkpointed, so the logged total runs on across a resume."""

    def __init__(self):
        self.count = torch.zeros((), dtype=torch.long)

    def add(self, skipped: torch.Tensor) -> None:
        self.count = self.count.to(skipped.device) + skipped.sum()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.count = state["count"]


def endless_batches(accelerator: Accelerator, loader: DataLoader, sampler: EpochSampler, start: int) -> Iterator:
    """Batches forever, starting after the first `start` ones, epoch after epoch, as an uninterrupted run would."""
    epoch, skip = divmod(start, len(loader))
    while True:
        source = accelerator.skip_first_batches(loader, skip) if skip else loader
        source.set_epoch(epoch)
        sampler.set_epoch(epoch)  # Accelerate forwards set_epoch two wrappers deep; skip + shard makes three
        yield from source
        epoch, skip = epoch + 1, 0


class DataPosition:
    def __init__(self, config: Config, accelerator: Accelerator):
        self.config, self.accelerator = config, accelerator
        self.skipped_files = SkippedFiles()
        self._window_generator, self._window_step = torch.Generator(), None

    def loader(self, dataset: CropDataset, seed: int, batch_size: int | None = None) -> tuple[DataLoader, EpochSampler]:
        """A DataLoader (not yet prepared) whose order and crops replay from `seed`."""
        batch_size = batch_size or self.config.train.batch_size
        # Fewer images than the processes' batches: each pass lists them several times, each time with other crops.
        sampler = EpochSampler(len(dataset), seed, repeats=math.ceil(batch_size * self.accelerator.num_processes / len(dataset)))
        workers = self.config.data.num_workers
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            # Each new iterator draws a base seed from this generator; from the global one, a resumed run (which
            # starts an iterator mid-epoch) would shift the random stream that the generators' noise is drawn from.
            generator=torch.Generator().manual_seed(seed),
        )
        return loader, sampler

    def batches(self, loader: DataLoader, sampler: EpochSampler, step: int) -> Iterator:
        """The prepared `loader`'s batches of crops from optimizer step `step` on. The count of unusable images each
        item passed over (see `CropDataset`) goes to `skipped_files`, for the log."""
        start = step * self.config.train.grad_accum_steps
        for crops, skipped in endless_batches(self.accelerator, loader, sampler, start):
            self.skipped_files.add(skipped)
            yield crops

    def windows(self, step: int, *batches: torch.Tensor) -> list[torch.Tensor]:
        """`batches` cut to `step`'s crop size (progressive resolution), the same window in each of them."""
        if self._window_step != step:  # a pure function of the step, so a resumed run cuts the same windows
            seed = self.config.train.seed * 1_000_003 + step * 97 + self.accelerator.process_index
            self._window_generator.manual_seed(seed)
            self._window_step = step
        windows = random_windows(list(batches), self.config.data.crop_size_at(step), self._window_generator)
        if self.config.train.channels_last:
            windows = [window.contiguous(memory_format=torch.channels_last) for window in windows]
        return windows
