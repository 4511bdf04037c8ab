"""Training images decoded once and held in memory, so that a crop costs a crop, not a decode.

Decoding a 1280x720 PNG takes about 25 ms on one core, far more than cutting, flipping and converting a crop from
it; a loader that decodes the whole photo for every crop needs many workers to keep a GPU fed. The cache holds each
image as stored (8-bit photos at one byte per value), decoded before the data-loader workers start: forked workers
share its pages instead of copying them.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import datasets
import numpy as np
import psutil

from ..errors import ImageFileError
from ..image_files import read_pixels
from .workers import processes_on_this_machine

logger = logging.getLogger(__name__)
# `auto` caches while the decoded images take at most this share of the memory available when training starts,
# divided among the processes of this machine.
AUTO_MEMORY_SHARE = 0.25


class ImageReader:
    """Image `index` of a collection (a `datasets.Dataset` whose `image_column` holds {"path", "bytes"} records) at its
    stored depth, H x W x C, with its name: from memory once `cache` decoded it, else from its file."""

    def __init__(self, images: datasets.Dataset, image_column: str = "image"):
        self.images, self.image_column = images, image_column
        self._decoded: dict[int, tuple[np.ndarray | ImageFileError, str]] = {}

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        return self._decoded[index][1] if index in self._decoded else self._name(index, self.images[index][self.image_column])

    def _name(self, index: int, record: dict) -> str:
        return record.get("path") or f"{self.image_column}[{index}]"

    def pixels(self, index: int) -> tuple[np.ndarray, str]:
        """Raises `ImageFileError` for an image that cannot be used, cached or not."""
        pixels, name = self._decoded[index] if index in self._decoded else self._read(index)
        if isinstance(pixels, ImageFileError):
            raise pixels
        return pixels, name

    def _read(self, index: int) -> tuple[np.ndarray | ImageFileError, str]:
        record = self.images[index][self.image_column]
        name = self._name(index, record)
        try:
            return read_pixels(record.get("bytes") or record["path"], name), name
        except ImageFileError as error:  # kept, and raised where the image is asked for, as uncached
            return error, name

    def cache(self, budget_bytes: float, threads: int) -> int:
        """Decode images in index order into memory, `threads` at a time (decoders release the GIL), until they take
        `budget_bytes`; returns how many are held. The rest are decoded from their files at each use."""
        held = 0
        with ThreadPoolExecutor(threads) as pool:
            for first in range(0, len(self), threads):
                indices = range(first, min(first + threads, len(self)))
                for index, decoded in zip(indices, pool.map(self._read, indices)):
                    size = decoded[0].nbytes if isinstance(decoded[0], np.ndarray) else 0
                    if held + size > budget_bytes:
                        return len(self._decoded)
                    self._decoded[index] = decoded
                    held += size
        return len(self._decoded)


def cache_budget(setting: Literal["auto", "all", "none"]) -> float:
    """Bytes of decoded images one training process may hold under `data.cache_images`."""
    if setting == "none":
        return 0.0
    if setting == "all":
        return float("inf")
    return AUTO_MEMORY_SHARE * psutil.virtual_memory().available / processes_on_this_machine()


def decode_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
