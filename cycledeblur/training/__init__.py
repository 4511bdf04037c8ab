"""Training: one explicit loop per mode (unpaired CycleGAN, paired pix2pix, unpaired UNIT) over a shared session (run folder,
Accelerator, checkpoints, logs), and what they rely on (image pool, schedules, samples, model card)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from .cyclegan import train_unpaired
from .pix2pix import train_paired
from .unit import train_unit

LOOPS = {"unpaired": train_unpaired, "paired": train_paired, "unit": train_unit}


def train(config: Config, resume: str | bool | None = None) -> Path:
    """Train `config` (`train.mode` picks the loop) into `config.output_dir`; returns the generator's folder."""
    return LOOPS[config.train.mode](config, resume)


__all__ = ["train", "train_paired", "train_unit", "train_unpaired"]
