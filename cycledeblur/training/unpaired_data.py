"""The photos of the unpaired modes (CycleGAN, UNIT): two unrelated folders, blurred and sharp, cut into replayable
crops, each with its loader."""

from __future__ import annotations

from torch.utils.data import DataLoader

from ..config import Config
from ..data import CropDataset, EpochSampler, load_image_source
from .session import TrainingSession


def unpaired_crops(session: TrainingSession, config: Config) -> tuple[CropDataset, CropDataset, list[tuple[DataLoader, EpochSampler]]]:
    """The crops of `data.blur` and of `data.sharp`, and a (loader, sampler) for each, in that order."""
    data_cfg, seed = config.data, config.train.seed
    with session.accelerator.main_process_first():  # the first process builds the datasets' cache, the others reuse it
        blurred_images, sharp_images = (
            load_image_source(source, split=data_cfg.split, image_column=data_cfg.image_column, key=key)
            for source, key in ((data_cfg.blur, "data.blur"), (data_cfg.sharp, "data.sharp"))
        )
    blurred_set = CropDataset(blurred_images, data_cfg, seed=seed, image_column=data_cfg.image_column)
    sharp_set = CropDataset(sharp_images, data_cfg, seed=seed + 1, image_column=data_cfg.image_column)
    return blurred_set, sharp_set, [session.data.loader(blurred_set, seed=seed), session.data.loader(sharp_set, seed=seed + 1)]
