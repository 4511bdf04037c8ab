"""Crops per second of the training loader on GoPro-sized photos (1280x720), from files and from decoded images held
in memory (`data.cache_images`), and the workers that keep a GPU fed.

Rerun: python bench/loader.py [OUT] [--debs DIR] [--crop 256] [--seconds 10] [--workers 2]

The photos: the 8 training photographs of the corpus (Debian's `plasma-workspace-wallpapers`, 2560x1600; see
bench/corpus.py and data_cards/general-corpus.md), each downscaled by 2 and cut to its central 1280x720, saved as
PNG and as JPEG (quality 95), as GoPro-style datasets ship them. Each row times one side's `CropDataset` (decode or
cache, crop, flip, convert), as the training loop builds it:
- in this process alone: the throughput of one loader worker;
- through a DataLoader with `--workers` worker processes (batches of 16): how the figure scales with workers.

The goal it checks: at least 4x what one H100 step needs at crop 256, bf16, batch 16, about 160 images/s, so
640 crops/s from the workers a GPU machine has.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/loader.py` from anywhere: import bench.*

from bench.corpus import SPLITS, downscaled, load_photo, unpack_wallpapers  # noqa: E402
from bench.quality import machine  # noqa: E402
from cycledeblur.config import DataConfig  # noqa: E402
from cycledeblur.data import CropDataset, EpochSampler, load_image_source  # noqa: E402

SIZE = (1280, 720)
GOAL_CROPS_PER_SECOND = 640
FORMATS = {"png": {}, "jpeg": {"quality": 95}}


def gopro_like_photos(out: Path, debs: Path | None) -> Path:
    """OUT/photos/{png,jpeg}/: the corpus's training photographs at 1280x720, written once."""
    folder = out / "photos"
    if all(len(list((folder / kind).glob("*"))) == len(SPLITS["train"]) for kind in FORMATS):
        return folder
    wallpapers = unpack_wallpapers(debs or out / ".debs")
    for entry in SPLITS["train"]:
        photo = downscaled(load_photo(entry, wallpapers), 2)
        left, top = (photo.width - SIZE[0]) // 2, (photo.height - SIZE[1]) // 2
        photo = photo.crop((left, top, left + SIZE[0], top + SIZE[1]))
        for kind, options in FORMATS.items():
            (folder / kind).mkdir(parents=True, exist_ok=True)
            photo.save(folder / kind / f"{entry.split(':')[1]}.{kind}", **options)
    return folder


def crops_in_process(dataset: CropDataset, seconds: float) -> float:
    for index in range(len(dataset)):  # warm up: every file once
        dataset[(0, index)]
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        dataset[(1 + done // len(dataset), done % len(dataset))]
        done += 1
    return done / (time.perf_counter() - started)


def crops_with_workers(dataset: CropDataset, workers: int, seconds: float) -> float:
    sampler = EpochSampler(len(dataset), seed=0, repeats=8)
    loader = DataLoader(dataset, batch_size=16, sampler=sampler, num_workers=workers, persistent_workers=True)

    def batches():
        for epoch in itertools.count():
            sampler.set_epoch(epoch)
            yield from loader

    stream = batches()
    next(stream)  # the workers start
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += len(next(stream)[0])
    return done / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default="bench/out/loader", type=Path)
    parser.add_argument("--debs", type=Path, help="folder holding (or to receive) the wallpaper .deb")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed per row")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the DataLoader rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as in a loader worker
    photos = gopro_like_photos(args.out, args.debs)
    rows = []
    for kind, cache in itertools.product(FORMATS, ("none", "all")):
        dataset = CropDataset(load_image_source(str(photos / kind)), DataConfig(crop_size=args.crop, cache_images=cache), seed=0)
        per_worker = crops_in_process(dataset, args.seconds)
        pooled = crops_with_workers(dataset, args.workers, args.seconds)
        rows.append((kind, cache, per_worker, pooled, math.ceil(GOAL_CROPS_PER_SECOND / per_worker)))
    described = machine()
    flags = ", ".join(flag for flag in ("avx512_bf16", "amx_bf16") if described[flag]) or "AVX2 only"
    columns = ["data.cache_images", "crops/s, 1 worker", f"crops/s, {args.workers} workers", f"workers for {GOAL_CROPS_PER_SECOND} crops/s"]
    print(f"\n| {SIZE[0]}x{SIZE[1]} photos, crop {args.crop} | " + " | ".join(columns) + " |")
    print("| --- | --- | ---: | ---: | ---: |")
    for kind, cache, per_worker, pooled, needed in rows:
        print(f"| {kind.upper()} | {cache} | {per_worker:.0f} | {pooled:.0f} | {needed} |")
    date = datetime.now(timezone.utc).date().isoformat()
    print(f"\n{described['cpu']}, {described['cpu_count']} cores ({flags}), torch {described['torch']}, {date}")
    print("rerun: python bench/loader.py " + " ".join(shlex.quote(arg) for arg in (argv if argv is not None else sys.argv[1:])))


if __name__ == "__main__":
    main()
