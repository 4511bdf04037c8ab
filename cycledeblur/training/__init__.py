"""Training: the CycleGAN loop and what it relies on (checkpoints, image pool, schedules, logging)."""

from .cyclegan import train

__all__ = ["train"]
