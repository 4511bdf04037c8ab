"""Parameters and FLOPs of every registered generator at its default size, on one 256 x 256 RGB image.

Rerun: python bench/model_size.py [--size 256]

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` over one forward pass (a multiply-add counts as
2 FLOPs; the Wiener generator's FFTs are not counted by it, only its convolutions and matrix products).
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from cycledeblur.models import GENERATORS, build_generator


def measure(name: str, size: int) -> tuple[int, int]:
    generator = build_generator(name).eval()
    image = torch.zeros(1, generator.in_channels, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        generator(image)
    return sum(p.numel() for p in generator.parameters()), counter.get_total_flops()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the square input image (px)")
    args = parser.parse_args(argv)
    print(f"| generator (defaults) | parameters | GFLOPs at {args.size}x{args.size} |")
    print("| --- | ---: | ---: |")
    for name in GENERATORS.names():
        parameters, flops = measure(name, args.size)
        print(f"| `{name}` | {parameters / 1e6:.2f} M | {flops / 1e9:.1f} |")
    print()
    print(shlex.join(["python", "bench/model_size.py", *argv]))


if __name__ == "__main__":
    main(sys.argv[1:])
