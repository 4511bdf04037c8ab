"""Data: image collections as HF datasets, decoded to tensors, cut into replayable random crops."""

from ..image_arrays import ImageFormat, adapt_channels, pixels_to_array
from ..image_files import list_images, open_image
from .crops import CropDataset, EpochSampler, PairedCropDataset, SyntheticPairDataset, build_augmentation
from .images import load_image_tensor, read_image, save_image_tensor
from .pairs import load_pairs, pair_name
from .sources import load_image_source

__all__ = [
    "CropDataset",
    "EpochSampler",
    "ImageFormat",
    "PairedCropDataset",
    "SyntheticPairDataset",
    "adapt_channels",
    "build_augmentation",
    "list_images",
    "load_image_source",
    "load_pairs",
    "pair_name",
    "load_image_tensor",
    "open_image",
    "pixels_to_array",
    "read_image",
    "save_image_tensor",
]
