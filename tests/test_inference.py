"""Tiled inference: large images in bounded memory, with no visible seams."""

import pytest
import torch

from cycledeblur.errors import UserError
from cycledeblur.inference import Deblurrer
from cycledeblur.tiling import tile_layout
from cycledeblur.models import ResnetGenerator

from .conftest import photo


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "multiple"),
    [(100, 40, 8, 1), (600, 128, 32, 4), (129, 128, 32, 4), (64, 128, 32, 4), (1281, 512, 32, 4), (4000, 512, 32, 4)],
)
def test_tiles_cover_the_length_with_the_overlap(length, tile, overlap, multiple):
    size, starts = tile_layout(length, tile, overlap, multiple)
    covered = torch.zeros(length, dtype=torch.bool)
    for start in starts:
        covered[start : start + size] = True
    assert covered.all() and starts[0] == 0 and starts[-1] + size == length and size <= tile
    assert all(later - earlier <= size - overlap for earlier, later in zip(starts, starts[1:]))
    if length > tile:
        assert size % multiple == 0
        # One tile fewer could not cover the length with the overlap: the count is the least possible.
        assert (len(starts) - 1) * (tile - overlap) + overlap < length


def test_a_720p_photo_in_512_tiles_computes_under_10_percent_twice():
    (tile_h, tops), (tile_w, lefts) = tile_layout(720, 512, 32, 4), tile_layout(1280, 512, 32, 4)
    assert (tile_h, len(tops), tile_w, len(lefts)) == (376, 2, 448, 3)
    assert len(tops) * tile_h * len(lefts) * tile_w / (720 * 1280) < 1.10


@pytest.fixture(scope="module")
def convolutional_generator():
    """A randomised ResNet without normalisation: translation-equivariant up to padding, so tiling can be exact."""
    torch.manual_seed(0)
    generator = ResnetGenerator(base_channels=8, n_blocks=2, norm="none")
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.normal_(0, 0.05)
    return generator


def test_tiled_output_matches_the_whole_image(convolutional_generator):
    image = torch.from_numpy(photo("coffee", 320)[:, :300].copy()).permute(2, 0, 1).float() / 255  # 300 x 320
    whole = Deblurrer(convolutional_generator)(image)
    assert (whole - image).abs().mean() > 5e-3  # the model really changes the photo
    tiled = Deblurrer(convolutional_generator, tile=128, tile_overlap=32, batch_size=3)(image)
    assert tiled.shape == image.shape
    blended_error = (tiled - whole).abs().max()
    assert blended_error < 2e-3
    # Without overlap, every tile border is a seam: the cross-fade is what removes them.
    abutting = Deblurrer(convolutional_generator, tile=128, tile_overlap=0)(image)
    assert (abutting - whole).abs().max() > 3 * blended_error


def test_tile_arguments_are_checked(convolutional_generator):
    with pytest.raises(UserError, match="--tile-overlap 64 must be at least 0 and smaller than --tile 64"):
        Deblurrer(convolutional_generator, tile=64, tile_overlap=64)
    with pytest.raises(UserError, match="--batch-size 0"):
        Deblurrer(convolutional_generator, tile=64, batch_size=0)


def test_a_large_16_bit_photo_is_deblurred_holding_about_its_input_and_output(tmp_path):
    """Numpy's allocations (which tracemalloc sees) while `cycledeblur deblur` reads a 16-bit photo, deblurs it in
    tiles and writes it: at the peak, the input and the output in float32 and little more; no image-sized plane of
    blending weights, no second copy of the output, no decoded file held beside its pixels."""
    import tracemalloc

    import numpy as np

    from cycledeblur.image_files import read_pixels, write_pixels
    from cycledeblur.tiling import TiledDeblurrer

    class Unchanged(TiledDeblurrer):
        def run_network(self, batch):
            return batch

    size = 1536
    pixels = (photo("astronaut", size).astype(np.uint32) * 257).astype(np.uint16)  # 16 bits, every level used
    write_pixels(pixels, tmp_path / "large.png")
    tracemalloc.start()
    Unchanged(3, tile=256, tile_overlap=32).deblur_file(tmp_path / "large.png", tmp_path / "out.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    float_image = 3 * size * size * 4
    assert peak < 2.5 * float_image, f"peak {peak / float_image:.2f}x the float32 image"
    # The tiles cross-fade back into the photo itself, to the 16-bit level.
    assert np.abs(read_pixels(tmp_path / "out.png").astype(np.int32) - pixels).max() <= 1
