"""Parameters and FLOPs of every registered generator at its default options, and of the deblurring generator of
each shipped recipe (its options and channels), on one 256 x 256 image.

Rerun: python bench/model_size.py [--size 256]

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` over one forward pass (a multiply-add counts as
2 FLOPs; the Wiener generator's FFTs are not counted by it, only its convolutions and matrix products).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from cycledeblur.config import load_config
from cycledeblur.models import GENERATORS, build_generator

CONFIG_FOLDER = Path(__file__).resolve().parents[1] / "configs"
# The recipes that train a network of their own: the fine-tuning configs take theirs from the released model, and
# paired-cpu-fast.yaml trains cpu-fast.yaml's.
RECIPES = ("default.yaml", "cpu-fast.yaml", "paired.yaml", "general.yaml")


def measure(name: str, size: int, options: dict[str, Any]) -> tuple[int, int]:
    generator = build_generator(name, **options).eval()
    image = torch.zeros(1, generator.in_channels, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        generator(image)
    return sum(p.numel() for p in generator.parameters()), counter.get_total_flops()


def recipe_generators() -> list[tuple[str, str, dict[str, Any]]]:
    """(label, family, options) of the deblurring generator each recipe trains."""
    rows = []
    for recipe in RECIPES:
        config = load_config(CONFIG_FOLDER / recipe)
        channels, generator = config.data.channels, config.model.generator
        options = {"in_channels": channels, "out_channels": channels, **generator.options}
        rows.append((f"`{generator.name}` of configs/{recipe}", generator.name, options))
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the square input image (px)")
    args = parser.parse_args(argv)
    print(f"| generator | parameters | GFLOPs at {args.size}x{args.size} |")
    print("| --- | ---: | ---: |")
    defaults = [(f"`{name}` (defaults)", name, {}) for name in GENERATORS.names()]
    for label, name, options in defaults + recipe_generators():
        parameters, flops = measure(name, args.size, options)
        print(f"| {label} | {parameters / 1e6:.2f} M | {flops / 1e9:.1f} |")
    print()
    print(shlex.join(["python", "bench/model_size.py", *argv]))


if __name__ == "__main__":
    main(sys.argv[1:])
