"""Turn a folder of sharp photos into a blur/sharp dataset: paired for evaluation, unpaired for training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.progress import track

from ..errors import UserError
from ..image_files import IMAGE_EXTENSIONS, list_images, output_name, read_metadata, read_pixels, write_pixels
from .degrade import check_degradation, degrade

# JPEG inputs are written as PNG so that the only JPEG artefacts are the ones asked for.
_REENCODED_SUFFIXES = {".jpg": ".png", ".jpeg": ".png"}
# Stream label for the unpaired split: default_rng(seed) would equal image 0's default_rng([seed, 0]).
_SPLIT_STREAM = 1


def synthesize_folder(
    sharp_dir: str | Path,
    out_dir: str | Path,
    *,
    kind: str = "mixed",
    seed: int = 0,
    paired: bool = False,
    noise_sigma: float = 0.0,
    jpeg_quality: int | None = None,
    save_kernels: bool = False,
    progress: bool = True,
) -> dict:
    """Blur the images under `sharp_dir` into `out_dir/blur/`, with sharp ones in `out_dir/sharp/`.

    Paired: every image is blurred and also copied, under the same relative name on both sides.
    Unpaired: the images are shuffled with `seed` and split in two disjoint halves, the first
    blurred, the second copied, so no pair exists. Images are read and written as `deblur`'s are:
    outputs keep the input's format, channels (alpha is blurred and noised too), bit depth (8/16-bit,
    float32 TIFF) and ICC color profile, except that JPEG inputs become PNG. Image i is degraded
    with `np.random.default_rng([seed, i])`, i its index in sorted order, so the result depends on
    the seed alone. `save_kernels` also writes each kernel, scaled to its maximum, as an 8-bit PNG
    in `out_dir/kernels/`.
    """
    sharp_dir, out_dir = Path(sharp_dir), Path(out_dir)
    check_degradation(kind, noise_sigma, jpeg_quality)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    sources = _list_sources(sharp_dir, out_dir)
    names = _output_names(sharp_dir, sources)
    if paired:
        to_blur = to_copy = set(range(len(sources)))
    else:
        if len(sources) < 2:
            raise UserError(f"an unpaired set needs at least 2 images to split in two, {sharp_dir} has {len(sources)}")
        split_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SPLIT_STREAM,)))
        order = split_rng.permutation(len(sources))
        half = len(sources) // 2
        to_blur, to_copy = set(order[:half].tolist()), set(order[half:].tolist())
    blur_dir, copy_dir, kernel_dir = out_dir / "blur", out_dir / "sharp", out_dir / "kernels"
    for folder in (blur_dir, copy_dir, kernel_dir) if save_kernels else (blur_dir, copy_dir):
        # Files left by an earlier run would silently mix into (or pair up) this dataset.
        if folder.is_dir() and any(folder.iterdir()):
            raise UserError(f"output folder {folder} is not empty; choose a new --out or empty it first")

    for index in track(range(len(sources)), description="synthesizing blur", disable=not progress):
        pixels, icc_profile = read_pixels(sources[index]), read_metadata(sources[index]).icc_profile
        if index in to_blur:
            blurred, kernel = degrade(pixels, np.random.default_rng([seed, index]), kind, noise_sigma, jpeg_quality)
            write_pixels(blurred, blur_dir / names[index], icc_profile=icc_profile)
            if save_kernels:
                _write_kernel(kernel, (kernel_dir / names[index]).with_suffix(".png"))
        if index in to_copy:
            write_pixels(pixels, copy_dir / names[index], icc_profile=icc_profile)
    return {
        "mode": "paired" if paired else "unpaired",
        "kind": kind,
        "seed": seed,
        "inputs": len(sources),
        "blurred": len(to_blur),
        "sharp": len(to_copy),
        "blur_dir": str(blur_dir),
        "sharp_dir": str(copy_dir),
        "kernels_dir": str(kernel_dir) if save_kernels else None,
    }


def _list_sources(sharp_dir: Path, out_dir: Path) -> list[Path]:
    """Image files below `sharp_dir`, sorted by relative path; a missing or empty folder is a UserError."""
    if not sharp_dir.is_dir():
        raise UserError(f"sharp image folder not found: {sharp_dir}")
    if out_dir.resolve().is_relative_to(sharp_dir.resolve()):
        raise UserError(f"output folder {out_dir} must not be inside the sharp image folder {sharp_dir}")
    sources = list_images(sharp_dir)
    if not sources:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {sharp_dir}")
    return sources


def _output_names(sharp_dir: Path, sources: list[Path]) -> list[Path]:
    """Each source's relative path, with a JPEG suffix turned to .png; two sources may not share a stem."""
    names, owners = [], {}
    for source in sources:
        name = source.relative_to(sharp_dir)
        # Stems, not names: a.jpg and a.png would both be written as a.png, and kernels are all .png.
        stem = name.with_suffix("").as_posix()
        if stem in owners:
            raise UserError(f"{owners[stem]} and {source} would get the same output name; rename one")
        owners[stem] = source
        names.append(output_name(name.with_suffix(_REENCODED_SUFFIXES.get(name.suffix.lower(), name.suffix))))
    return names


def _write_kernel(kernel: np.ndarray, path: Path) -> None:
    """Save a kernel as an 8-bit grayscale image, scaled so its largest weight is white."""
    write_pixels(np.rint(kernel / kernel.max() * 255).astype(np.uint8)[:, :, None], path)
