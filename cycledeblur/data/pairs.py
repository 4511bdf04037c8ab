"""Blurred/sharp pairs for paired and semi-paired training: two image collections aligned by file name."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import datasets

from ..errors import UserError
from .sources import load_image_source


def pair_name(path: Path, root: Path) -> str:
    """The name that pairs a file with its twin: its path under `root`, extension aside ("seq1/000047")."""
    return path.relative_to(root).with_suffix("").as_posix()


def load_pairs(
    blur_source: str, sharp_source: str, *, split: str, image_column: str, keys: tuple[str, str]
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Load both sources (see `load_image_source`) and reorder them so that row i of each is the same scene.

    Local folders pair files by relative path without extension (`blur/a/1.png` with `sharp/a/1.jpg`), Hub
    datasets by file name, or by row order when their records carry no file names. Every file must have a twin:
    a stray one stops with its name, since silently training on fewer pairs than the user has is worse.
    """
    sides = []
    for source, key in zip((blur_source, sharp_source), keys):
        images = load_image_source(source, split=split, image_column=image_column, key=key)
        names = _names(images, source, image_column)
        if names is not None and len(set(names)) < len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise UserError(f"{key}={source!r} holds several images named {twice!r} (extension aside): which is the pair?")
        sides.append((images, names, key))
    (blurred, blurred_names, blur_key), (sharp, sharp_names, sharp_key) = sides
    if blurred_names is None or sharp_names is None:
        if len(blurred) != len(sharp):
            raise UserError(
                f"{blur_key} has {len(blurred)} images and {sharp_key} {len(sharp)}: without file names to match, "
                "pairs are taken in row order, which needs equal counts"
            )
        return blurred, sharp
    sharp_rows = {name: row for row, name in enumerate(sharp_names)}
    lonely_blurred = [name for name in blurred_names if name not in sharp_rows]
    lonely_sharp = sorted(set(sharp_names) - set(blurred_names))
    if lonely_blurred or lonely_sharp:
        side, names, other = (blur_key, lonely_blurred, sharp_key) if lonely_blurred else (sharp_key, lonely_sharp, blur_key)
        raise UserError(
            f"{len(names)} image(s) of {side} have no twin of the same name in {other}, e.g. {sorted(names)[0]!r} "
            f"(pairs match by relative path without extension; {len(lonely_blurred)} unmatched blurred, "
            f"{len(lonely_sharp)} unmatched sharp)"
        )
    order = sorted(range(len(blurred_names)), key=blurred_names.__getitem__)
    return blurred.select(order), sharp.select([sharp_rows[blurred_names[row]] for row in order])


def _names(images: datasets.Dataset, source: str, image_column: str) -> list[str] | None:
    paths = [record.get("path") for record in images[image_column]]
    if not all(paths):
        return None
    root = Path(source).expanduser()
    if root.is_dir():
        root = root.resolve()
        return [pair_name(Path(path).resolve(), root) for path in paths]
    return [PurePosixPath(path).with_suffix("").name for path in paths]
