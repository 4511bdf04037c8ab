"""Loading a trained generator (run folder, generator folder or Hub id) and deblurring whole images with it."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import UserError
from .models import load_generator
from .models.hub import CONFIG_NAME, WEIGHTS_NAME


def resolve_generator(model: str | Path) -> torch.nn.Module:
    """`model` may be a run folder (holding generator/), a generator folder (config.json and model.safetensors) or
    a Hub model id."""
    path = Path(model).expanduser()
    if not path.is_dir():
        if path.exists():
            raise UserError(f"--model {model}: is a file; give a run folder, a generator folder or a Hub model id")
        return load_generator(str(model))
    folder = path / "generator" if (path / "generator").is_dir() else path
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
    if folder == path and len(missing) == 2:
        unfinished = (path / "checkpoints").is_dir()
        raise UserError(
            f"--model {model}: neither a run folder with generator/ nor a folder with {CONFIG_NAME}"
            + (" (a run whose training has not finished: generator/ is written at the end)" if unfinished else "")
        )
    if missing:
        raise UserError(f"--model {model}: {folder} has no {' and no '.join(missing)}")
    return load_generator(str(folder))


def tile_layout(length: int, tile: int, overlap: int, multiple: int = 1) -> tuple[int, list[int]]:
    """The size and start offsets of the fewest tiles of at most `tile` pixels that cover `length` with neighbours
    overlapping by at least `overlap`. The tiles share one size, as small as that allows (rounded up to `multiple`,
    so that none needs padding to the network's stride): what they compute twice is the overlap and little more."""
    if length <= tile:
        return length, [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil(math.ceil((length + (count - 1) * overlap) / count) / multiple) * multiple)
    return size, [index * (length - size) // (count - 1) for index in range(count)]


def blend_window(height: int, width: int, overlap: int) -> torch.Tensor:
    """Weights that ramp linearly over `overlap` pixels at each edge: neighbouring tiles cross-fade, no seam."""

    def ramp(length: int) -> torch.Tensor:
        position = torch.arange(length, dtype=torch.float32)
        distance_to_edge = torch.minimum(position, length - 1 - position)
        return ((distance_to_edge + 1) / (overlap + 1)).clamp(max=1.0)

    return ramp(height)[:, None] * ramp(width)[None, :]


class Deblurrer:
    """Applies a generator to CxHxW images in [0, 1] of any size.

    Images are padded to the network's stride and cropped back. With `tile`, larger images are processed as
    overlapping tiles (`batch_size` at a time) blended with linear cross-fades, so memory stays bounded.
    """

    def __init__(
        self,
        generator: torch.nn.Module,
        device: str = "cpu",
        precision: str = "fp32",
        tile: int | None = None,
        tile_overlap: int = 32,
        batch_size: int = 1,
    ):
        dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        if precision not in dtypes:
            raise UserError(f"--precision {precision}: choose one of {', '.join(dtypes)}")
        if tile is not None and not 0 <= tile_overlap < tile:
            raise UserError(f"--tile-overlap {tile_overlap} must be at least 0 and smaller than --tile {tile}")
        if batch_size < 1:
            raise UserError(f"--batch-size {batch_size} must be at least 1")
        self.device = torch.device(device)
        # Photos from one camera share a size: cuDNN's autotuning for it pays off from the second photo on.
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.generator = generator.to(self.device).eval()
        self.autocast_dtype = dtypes[precision]
        self.multiple = generator.size_multiple
        self.channels = generator.in_channels
        self.tile, self.tile_overlap, self.batch_size = tile, tile_overlap, batch_size

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if self.tile is None or (height <= self.tile and width <= self.tile):
            return self._run(image.unsqueeze(0))[0].cpu()
        output = torch.zeros(image.shape, dtype=torch.float32)
        total_weight = torch.zeros(height, width)
        tile_h, tops = tile_layout(height, self.tile, self.tile_overlap, self.multiple)
        tile_w, lefts = tile_layout(width, self.tile, self.tile_overlap, self.multiple)
        weight = blend_window(tile_h, tile_w, self.tile_overlap)
        corners = list(itertools.product(tops, lefts))
        for first in range(0, len(corners), self.batch_size):
            group = corners[first : first + self.batch_size]
            tiles = torch.stack([image[:, top : top + tile_h, left : left + tile_w] for top, left in group])
            for (top, left), result in zip(group, self._run(tiles).cpu()):
                output[:, top : top + tile_h, left : left + tile_w] += result * weight
                total_weight[top : top + tile_h, left : left + tile_w] += weight
        return output / total_weight

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        """N x C x H x W in [0, 1] -> the generator's output in [0, 1], on the device."""
        height, width = batch.shape[-2:]
        pad_bottom, pad_right = -height % self.multiple, -width % self.multiple
        batch = batch.to(self.device, torch.float32) * 2 - 1
        # Reflection keeps the padded border image-like, so the network sees no artificial edge there.
        mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
        batch = F.pad(batch, (0, pad_right, 0, pad_bottom), mode=mode)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            output = self.generator(batch)
        return output[:, :, :height, :width].float().add(1).div(2).clamp(0, 1)
