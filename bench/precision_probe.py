"""Forward+backward time of the ResNet generator in fp32 vs bf16 autocast on this machine's CPU.

Run: python bench/precision_probe.py [--batch 4] [--size 64] [--repeats 5]
bf16 is only faster on CPUs with bf16 instructions (AVX512-BF16, AMX); elsewhere it can be many times slower.
"""

import argparse
import platform
import shlex
import sys
import time

import torch

from cycledeblur.models import ResnetGenerator


def time_step(generator: torch.nn.Module, batch: torch.Tensor, dtype: torch.dtype | None, repeats: int) -> float:
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        generator(batch).float().mean().backward()  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            generator(batch).float().mean().backward()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    torch.manual_seed(0)
    batch = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    print(f"{'generator':>24} {'fp32 ms':>9} {'bf16 ms':>9} {'bf16/fp32':>10}")
    for base_channels, n_blocks in ((16, 3), (32, 6), (64, 9)):
        generator = ResnetGenerator(base_channels=base_channels, n_blocks=n_blocks)
        fp32 = time_step(generator, batch, None, args.repeats)
        bf16 = time_step(generator, batch, torch.bfloat16, args.repeats)
        name = f"resnet {base_channels}ch x {n_blocks} blocks"
        print(f"{name:>24} {fp32 * 1e3:9.1f} {bf16 * 1e3:9.1f} {bf16 / fp32:10.2f}")


if __name__ == "__main__":
    main()
