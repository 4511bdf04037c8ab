"""Running a network over whole images of any size, whatever runs it (PyTorch, onnxruntime). No torch here.

Images are padded to the sizes the network takes and cropped back. With a tile size, larger images are processed
as overlapping tiles (`batch_size` at a time) blended with linear cross-fades, so memory stays bounded.
"""

from __future__ import annotations

import copy
import itertools
import math
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from .errors import UserError

DEFAULT_TILE_OVERLAP = 32


def round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


def tile_layout(length: int, tile: int, overlap: int, multiple: int = 1, fixed: bool = False) -> tuple[int, list[int]]:
    """The size and start offsets of the fewest tiles of at most `tile` pixels that cover `length` with neighbours
    overlapping by at least `overlap`. The tiles share one size, as small as that allows (rounded up to `multiple`,
    so that none needs padding to the network's stride): what they compute twice is the overlap and little more.
    `fixed` tiles are all exactly `tile` pixels (a network exported for one input size)."""
    if length <= tile:
        return length, [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = tile if fixed else min(tile, round_up(math.ceil((length + (count - 1) * overlap) / count), multiple))
    return size, [index * (length - size) // (count - 1) for index in range(count)]


def edge_ramp(length: int, overlap: int) -> np.ndarray:
    """Blending weights along one side of a tile, ramping linearly over `overlap` pixels at each end: neighbouring
    tiles cross-fade, no seam. A tile's weight is its row ramp times its column ramp."""
    position = np.arange(length, dtype=np.float32)
    distance_to_edge = np.minimum(position, length - 1 - position)
    return np.minimum((distance_to_edge + 1) / (overlap + 1), 1.0).astype(np.float32)


def ramp_sum(length: int, starts: list[int], ramp: np.ndarray) -> np.ndarray:
    """The sum along one side of an image of the ramps of the tiles that start at `starts`."""
    total = np.zeros(length, dtype=np.float32)
    for start in starts:
        total[start : start + len(ramp)] += ramp
    return total


class TiledDeblurrer(ABC):
    """Applies a network to C x H x W float32 arrays in [0, 1] of any size (`deblur`); subclasses run the network
    (`run_network`) on N x C x H x W batches in [-1, 1] whose height and width it takes.

    The network takes heights and widths that are multiples of `multiple` and at least `min_size`, or, exported
    for one input size, exactly `input_size` (height, width): then images are tiled at that size.
    """

    def __init__(
        self,
        channels: int,
        multiple: int = 1,
        min_size: int = 1,
        tile: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = 1,
        input_size: tuple[int, int] | None = None,
    ):
        if tile_overlap is None:  # a quarter of a small fixed input at most: the rest of it is new pixels
            tile_overlap = min(DEFAULT_TILE_OVERLAP, min(input_size) // 4) if input_size else DEFAULT_TILE_OVERLAP
        if batch_size < 1:
            raise UserError(f"--batch-size {batch_size} must be at least 1")
        if input_size is not None and not 0 <= tile_overlap < min(input_size):
            raise UserError(f"--tile-overlap {tile_overlap} must be smaller than the model's input size {min(input_size)}")
        self.channels, self.multiple, self.min_size = channels, multiple, min_size
        self.tile_overlap, self.batch_size, self.input_size = tile_overlap, batch_size, input_size
        self.tile = self._checked_tile(tile)

    def _checked_tile(self, tile: int | None) -> int | None:
        if tile is not None and not 0 <= self.tile_overlap < tile:
            raise UserError(f"--tile-overlap {self.tile_overlap} must be at least 0 and smaller than --tile {tile}")
        if self.input_size is not None and tile not in (None, *self.input_size):
            raise UserError(f"--tile {tile}: this model takes only {self.input_size[0]}x{self.input_size[1]} inputs (leave --tile out)")
        return tile

    def with_tile(self, tile: int | None) -> TiledDeblurrer:
        """The same deblurrer (the same loaded network) with another tile size."""
        other = copy.copy(self)
        other.tile = self._checked_tile(tile)
        return other

    def deblur_file(self, source: Path, target: Path) -> None:
        """Deblur an image file into `target`, with the input's bit depth, channels, color profile and georeferencing."""
        from .image_arrays import read_image_array, save_image_array

        image, image_format = read_image_array(source, self.channels)
        deblurred = self.deblur(image)
        del image  # a large scene's input need not be held while its output is encoded (768 MB at 8000 x 8000 px)
        save_image_array(deblurred, target, image_format)

    @abstractmethod
    def run_network(self, batch: np.ndarray) -> np.ndarray:
        """N x C x H x W float32 in [-1, 1], H and W as the network takes them -> its output, same shape."""

    def deblur(self, image: np.ndarray) -> np.ndarray:
        """A C x H x W float32 image in [0, 1] -> the deblurred image, same shape, in [0, 1]."""
        height, width = image.shape[-2:]
        tile_height, tile_width = self.input_size or (self.tile, self.tile)
        if tile_height is None or (height <= tile_height and width <= tile_width):
            return self._run(image[None])[0]
        output = np.zeros(image.shape, dtype=np.float32)
        fixed = self.input_size is not None
        tile_h, tops = tile_layout(height, tile_height, self.tile_overlap, self.multiple, fixed)
        tile_w, lefts = tile_layout(width, tile_width, self.tile_overlap, self.multiple, fixed)
        ramp_h, ramp_w = edge_ramp(tile_h, self.tile_overlap), edge_ramp(tile_w, self.tile_overlap)
        weight = ramp_h[:, None] * ramp_w[None, :]
        corners = list(itertools.product(tops, lefts))
        for first in range(0, len(corners), self.batch_size):
            group = corners[first : first + self.batch_size]
            tiles = np.stack([image[:, top : top + tile_h, left : left + tile_w] for top, left in group])
            for (top, left), result in zip(group, self._run(tiles)):
                output[:, top : top + tile_h, left : left + tile_w] += result * weight
        # The tiles form a grid and each weight is a row ramp times a column ramp, so the weights' sum over the
        # image is the product of two sums along its sides: no image-sized plane of weights, and no copy of the
        # output (an 8000 x 8000 photo's is 768 MB).
        output /= ramp_sum(height, tops, ramp_h)[:, None]
        output /= ramp_sum(width, lefts, ramp_w)[None, :]
        return output

    def network_input(self, batch: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """N x C x H x W in [0, 1] -> in [-1, 1], padded at the bottom and right to `size`, by default the smallest
        size the network takes."""
        height, width = batch.shape[-2:]
        padded_height, padded_width = size or self.input_size or (self.padded(height), self.padded(width))
        pad_bottom, pad_right = padded_height - height, padded_width - width
        # Reflection keeps the padded border image-like, so the network sees no artificial edge there; it cannot
        # reach further than the image itself.
        mode = "reflect" if pad_bottom < height and pad_right < width else "edge"
        return np.pad(batch.astype(np.float32) * 2 - 1, ((0, 0), (0, 0), (0, pad_bottom), (0, pad_right)), mode=mode)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """N x C x H x W in [0, 1] -> the network's output in [0, 1]."""
        height, width = batch.shape[-2:]
        output = self.run_network(self.network_input(batch))
        return np.clip((output[:, :, :height, :width].astype(np.float32) + 1) / 2, 0, 1)

    def padded(self, length: int) -> int:
        """The smallest height or width at least `length` that the network takes (when it takes more than one)."""
        return round_up(max(length, self.min_size), self.multiple)
