"""The data-loader worker count that `data.num_workers: auto` stands for, on the machine at hand.

Measured (docs/speed.md, "Data-loader workers"): on a CPU the training step already uses every core, and crops cut
from decoded images held in memory (`data.cache_images`) cost a few milliseconds, so worker processes only take
cores from the step. A GPU step waits for its batch: there the workers must keep up, one core kept for the loop.
"""

from __future__ import annotations

import os

GPU_MAX_WORKERS = 8  # 4 give 640 crops/s of 1280x720 photos held in memory, 4x an H100 step's need at crop 256


def processes_on_this_machine() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # set by torchrun and accelerate launch


def loader_workers(requested: int | str, device_type: str, images_cached: bool) -> tuple[int, str]:
    """`data.num_workers` resolved, and why: a number in the config wins."""
    if requested != "auto":
        return int(requested), "set in the config"
    if device_type == "cpu":
        if images_cached:
            return 0, "auto: on the CPU the step uses every core, and crops from images held in memory cost little"
        return 1, "auto: on the CPU, one worker decodes the images while the step runs (data.cache_images: none)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores_per_process = max(1, cores // processes_on_this_machine())
    workers = max(1, min(GPU_MAX_WORKERS, cores_per_process - 1))
    return workers, f"auto: {cores_per_process} cores for this process on the {device_type}, one kept for the loop"
