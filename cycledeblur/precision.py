"""The autocast precision `auto` stands for: the fastest correct one on the machine at hand.

bf16 autocast is only fast where the hardware computes in bf16. A CPU with AVX512-BF16 or AMX runs it about 1.8x
faster than fp32; one without (AVX2 only) emulates it, 11-26x slower (docs/speed.md). A GPU with bf16 runs it
without a gradient scaler; an older one takes fp16 with a scaler.
"""

from __future__ import annotations

import os

import torch

LAUNCHER_VARIABLE = "ACCELERATE_MIXED_PRECISION"  # what `accelerate launch --mixed_precision X` sets


def cpu_has_bf16_units() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), as torch's own CPU probe reports them (a torch
    too old to have the probe: no, so `auto` stays at fp32, never at an emulated bf16)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def auto_precision(device_type: str) -> tuple[str, str]:
    """The precision (Accelerate's names: "no", "fp16", "bf16") that `auto` picks on `device_type`, and why."""
    if device_type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "the GPU computes in bf16"
        return "fp16", "the GPU has no bf16: fp16 with a gradient scaler"
    if device_type == "cpu":
        if cpu_has_bf16_units():
            return "bf16", "the CPU has bf16 instructions (AVX512-BF16 or AMX)"
        return "no", "the CPU has no bf16 instructions (bf16 would be emulated, many times slower): fp32"
    return "no", f"no measured choice on {device_type}: fp32"


def training_precision(requested: str, device_type: str) -> tuple[str, str]:
    """`train.mixed_precision` resolved, and why: an explicit value wins, then a launcher's `--mixed_precision`
    (with `auto` in the config), then `auto_precision`."""
    if requested != "auto":
        return requested, "set in the config"
    launcher = os.environ.get(LAUNCHER_VARIABLE, "").lower()
    if launcher in ("no", "fp16", "bf16"):
        return launcher, "given to the launcher (--mixed_precision)"
    precision, reason = auto_precision(device_type)
    return precision, f"auto: {reason}"
