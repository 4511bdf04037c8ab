"""Random training crops whose order and augmentation are a pure function of (seed, epoch, index).

That makes a resumed run see exactly the crops an uninterrupted run would, whatever the number of
DataLoader workers, which is what exact resume and identical multi-process runs rest on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import datasets
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..config import DataConfig
from ..errors import ImageFileError, UserError
from ..synth.degrade import blur_image
from ..synth.random_blur import sample_degradation, sample_softening
from ..image_arrays import pixels_as_array
from .decoded import ImageReader, cache_budget, decode_threads

FLAT_CROP_RETRIES = 10
GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114], dtype=np.float32)  # torchvision's rgb_to_grayscale
logger = logging.getLogger(__name__)


def _mix(*numbers: int) -> int:
    """Combine integers into one 63-bit seed (order matters)."""
    seed = 0
    for number in numbers:
        seed = (seed * 6364136223846793005 + number + 1442695040888963407) % (1 << 63)
    return seed


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields `(epoch, index)`: a permutation drawn from (seed, epoch) alone, so any epoch can be replayed.

    With `repeats` > 1, one pass of the DataLoader lists every image that many times, each time under an epoch of
    its own (pass p, repeat r: epoch p * repeats + r), so that fewer images than a batch (two large satellite scenes,
    say) still fill it with different crops. With one repeat, the epoch is the pass."""

    def __init__(self, size: int, seed: int, repeats: int = 1):
        self.size, self.seed, self.repeats, self.epoch = size, seed, repeats, 0

    def set_epoch(self, epoch: int) -> None:  # Accelerate's DataLoaderShard calls this before every pass
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for epoch in range(self.epoch * self.repeats, (self.epoch + 1) * self.repeats):
            generator = torch.Generator().manual_seed(_mix(self.seed, epoch))
            for index in torch.randperm(self.size, generator=generator).tolist():
                yield epoch, index

    def __len__(self) -> int:
        return self.size * self.repeats


class RandomQuarterTurn(v2.Transform):
    """Turns every input of one call by the same random multiple of 90 degrees (exact: no resampling)."""

    def make_params(self, flat_inputs: list) -> dict:
        return {"turns": int(torch.randint(4, ()))}

    def transform(self, inpt: torch.Tensor, params: dict) -> torch.Tensor:
        return tv_tensors.wrap(torch.rot90(inpt, params["turns"], dims=(-2, -1)), like=inpt)


def build_augmentation(config: DataConfig) -> v2.Compose:
    steps: list[torch.nn.Module] = [v2.RandomCrop(config.crop_size, pad_if_needed=True, padding_mode="reflect")]
    if config.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if config.quarter_turns:
        steps.append(RandomQuarterTurn())
    if config.grayscale:
        steps.append(v2.RandomGrayscale(config.grayscale))
    if config.color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=config.color_jitter, contrast=config.color_jitter))
    return v2.Compose(steps)


class CropDataset(Dataset):
    """Random crops in [-1, 1] from one image collection, indexed by the `(epoch, index)` of `EpochSampler`.

    An item is `(crop, skipped)`. When image `index` cannot be used (an `ImageFileError`: corrupt, truncated, over
    the pixel limit...), the next usable one takes its place and `skipped` counts the images passed over: a pure
    function of the index, so resumed and multi-process runs stay exact. Each unusable image is reported once per
    process; with `data.strict` it stops training instead.
    """

    def __init__(self, images: datasets.Dataset, config: DataConfig, seed: int, image_column: str = "image"):
        self.config, self.seed = config, seed
        self.reader = self.cached_reader(images, image_column)
        self.augment = build_augmentation(config)
        self._unusable: dict[int, str] = {}  # index -> why, in this process: each is read and reported once

    def cached_reader(self, images: datasets.Dataset, image_column: str) -> ImageReader:
        """A reader of `images` holding as many of them decoded as `data.cache_images` allows."""
        reader = ImageReader(images, image_column)
        budget = cache_budget(self.config.cache_images)
        if budget > 0:
            held = reader.cache(budget, decode_threads())
            if held < len(reader):
                logger.info("data.cache_images: %d of %d images held in memory, the rest read at each use", held, len(reader))
        return reader

    def __len__(self) -> int:
        return len(self.reader)

    def load(self, index: int, reader: ImageReader | None = None) -> torch.Tensor:
        """Whole image `index` (of `reader`, default this set's) as a float CxHxW tensor in [0, 1], upscaled if
        smaller than the crop."""
        pixels, name = (reader or self.reader).pixels(index)
        image = torch.from_numpy(pixels_as_array(pixels, self.config.channels, name)[0])
        crop = self.config.crop_size
        height, width = image.shape[-2:]
        if min(height, width) < crop:
            if self.config.small_images == "error":
                raise UserError(
                    f"{name} is {width}x{height}, smaller than data.crop_size={crop} (set data.small_images=upscale or pad to use it)"
                )
            if self.config.small_images == "upscale":
                image = F.resize(image, crop, antialias=True).clamp(0, 1)
            elif min(height, width) <= crop // 2:  # reflection cannot pad more than the image's own size
                image = F.pad(image, [crop // 2] * 4, padding_mode="edge")
        return image

    def item_images(self, index: int) -> tuple[torch.Tensor, ...]:
        """The whole images item `index` is cut from: one here, a (blurred, sharp) pair in `PairedCropDataset`."""
        return (self.load(index),)

    def usable_images(self, index: int) -> tuple[tuple[torch.Tensor, ...], int]:
        """The images of item `index`, or of the first usable item after it (wrapping around), and how many items
        were passed over to find them."""
        for skipped in range(len(self)):
            candidate = (index + skipped) % len(self)
            if candidate in self._unusable:
                continue
            try:
                return self.item_images(candidate), skipped
            except ImageFileError as error:
                if self.config.strict:
                    raise
                self._unusable[candidate] = str(error)
                logger.warning("skipping an unusable training image (data.strict=false): %s", error)
        raise UserError(f"none of the {len(self)} images could be read, e.g. {self._unusable[index]}")

    def sample_images(self, index: int) -> tuple[torch.Tensor, ...]:
        """Whole images for the sample grids: item `index`'s, or those of the usable item that takes its place."""
        return self.usable_images(index)[0]

    def crops(self, epoch: int, index: int, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The same random crop and augmentation of each of `images`, in [-1, 1], drawn from (seed, epoch, index)."""
        images = tuple(tv_tensors.Image(image) for image in images)  # v2 transforms every Image alike
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.seed, epoch, index))
            for _ in range(FLAT_CROP_RETRIES):
                crops = self.augment(*images)
                crops = crops if isinstance(crops, tuple) else (crops,)
                if crops[0].flatten(1).std(dim=1).min() >= self.config.flat_crop_std:
                    break
        return tuple(crop.as_subclass(torch.Tensor) * 2 - 1 for crop in crops)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key
        (image,), skipped = self.usable_images(index)
        return self.crops(epoch, index, image)[0], skipped


class PairedCropDataset(CropDataset):
    """`((blurred, sharp), skipped)` crops of aligned pairs (see `load_pairs`): one crop window and augmentation
    for both; a pair of different sizes is unusable like an unreadable file."""

    def __init__(self, blurred: datasets.Dataset, sharp: datasets.Dataset, config: DataConfig, seed: int, image_column: str = "image"):
        super().__init__(blurred, config, seed, image_column)
        self.sharp_reader = self.cached_reader(sharp, image_column)

    def item_images(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        blurred, sharp = self.load(index), self.load(index, self.sharp_reader)
        if blurred.shape != sharp.shape:
            names = [reader.name(index) for reader in (self.reader, self.sharp_reader)]
            raise ImageFileError(
                f"pair {names[0]} / {names[1]}: the images differ in size ({tuple(blurred.shape[-2:])} vs "
                f"{tuple(sharp.shape[-2:])}); a pair must show the same scene pixel for pixel"
            )
        return blurred, sharp

    def __getitem__(self, key: tuple[int, int]) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        epoch, index = key
        pair, skipped = self.usable_images(index)
        return self.crops(epoch, index, *pair), skipped


def random_windows(images: list[torch.Tensor], size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The same random `size` x `size` window of each sample in each N x C x H x W batch of `images` (which share
    their shape): progressive resolution's smaller crops, cut on the fly from the loader's full-size ones."""
    height, width = images[0].shape[-2:]
    if (height, width) == (size, size):
        return images
    tops = torch.randint(height - size + 1, (len(images[0]),), generator=generator).tolist()
    lefts = torch.randint(width - size + 1, (len(images[0]),), generator=generator).tolist()
    return [
        torch.stack([batch[i, :, top : top + size, left : left + size] for i, (top, left) in enumerate(zip(tops, lefts))])
        for batch in images
    ]


def mirrored_window(pixels: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """The `height` x `width` window at (`top`, `left`) of `pixels` (H x W x C) mirrored at its borders (numpy's
    "symmetric" padding), reflecting only the rows and columns it needs, not the whole photo."""

    def mirrored(start: int, length: int, size: int) -> np.ndarray:
        index = np.arange(start, start + length) % (2 * size)
        return np.where(index < size, index, 2 * size - 1 - index)

    if top >= 0 and left >= 0 and top + height <= pixels.shape[0] and left + width <= pixels.shape[1]:
        return pixels[top : top + height, left : left + width]
    return pixels[np.ix_(mirrored(top, height, pixels.shape[0]), mirrored(left, width, pixels.shape[1]))]


class SyntheticPairDataset(CropDataset):
    """`((blurred, sharp), skipped)` pairs made from sharp photos alone: each crop is blurred in the loader with a new
    kernel, noise level and JPEG quality from `data.synthetic_blur`, all drawn from (seed, epoch, index).

    The crop is cut with a margin of half the kernel around it and blurred there, so the blurred crop holds what a
    camera would have recorded at its borders, not a reflection of the crop.
    """

    def __init__(self, sharp: datasets.Dataset, config: DataConfig, seed: int, image_column: str = "image"):
        super().__init__(sharp, config, seed, image_column)
        self.blur_config = config.synthetic_blur

    def degraded_pair(self, image: torch.Tensor, rng: np.random.Generator, size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """A random `size` crop of `image` (the whole image if None) and its degraded twin, in [-1, 1]."""
        degradation = sample_degradation(rng, self.blur_config)
        softening = sample_softening(rng, self.blur_config)
        # The softened window is exact only a softening radius in from its border; the blur reaches that far less.
        soft_margin = 0 if softening is None else softening.shape[0] // 2
        margin = degradation.kernel.shape[0] // 2 + soft_margin
        pixels = image.permute(1, 2, 0).numpy()
        height, width = pixels.shape[:2]
        crop_h, crop_w = (height, width) if size is None else (size, size)
        for _ in range(FLAT_CROP_RETRIES):
            top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
            window = mirrored_window(pixels, top - margin, left - margin, crop_h + 2 * margin, crop_w + 2 * margin)
            sharp = window[margin : margin + crop_h, margin : margin + crop_w]
            if sharp.reshape(-1, sharp.shape[-1]).std(axis=0).min() >= self.config.flat_crop_std:
                break
        if size is not None:  # the sample grids show the whole photo as it is
            window = self.reoriented(window, rng)
            sharp = window[margin : margin + crop_h, margin : margin + crop_w]
        if softening is not None:
            window = blur_image(np.ascontiguousarray(window), softening)
            sharp = window[margin : margin + crop_h, margin : margin + crop_w]
        blurred = degradation.apply(np.ascontiguousarray(window), rng)[margin : margin + crop_h, margin : margin + crop_w]
        return tuple(torch.from_numpy(np.ascontiguousarray(side)).permute(2, 0, 1).float() * 2 - 1 for side in (blurred, sharp))

    def reoriented(self, window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Square `window` (H x H x C) flipped, turned and made gray as `data.hflip`, `quarter_turns` and `grayscale`
        draw. Each draw is made only when its option is on, so the pairs of configs without it stay as they were."""
        if self.config.hflip and rng.random() < 0.5:
            window = window[:, ::-1]
        if self.config.quarter_turns:
            window = np.rot90(window, int(rng.integers(4)))
        if self.config.grayscale and rng.random() < self.config.grayscale:
            luma = np.ascontiguousarray(window) @ GRAY_WEIGHTS
            window = np.repeat(luma[..., None], window.shape[-1], axis=-1)
        return window

    def sample_images(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole image `index` and one fixed degradation of it, for the sample grids (in [0, 1], like the other sets)."""
        (image,), _ = self.usable_images(index)
        pair = self.degraded_pair(image, np.random.default_rng(_mix(self.seed, -1, index)), size=None)
        return tuple((side + 1) / 2 for side in pair)

    def __getitem__(self, key: tuple[int, int]) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
        epoch, index = key
        (image,), skipped = self.usable_images(index)
        rng = np.random.default_rng(_mix(self.seed, epoch, index))
        return self.degraded_pair(image, rng, self.config.crop_size), skipped
