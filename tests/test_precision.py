"""`auto` precision: resolved from what this machine computes in, and bf16 losses close to fp32's."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cycledeblur.models import build_generator
from cycledeblur.precision import LAUNCHER_VARIABLE, auto_precision, cpu_has_bf16_units, training_precision
from cycledeblur.synth import blur_image, motion_kernel
from cycledeblur.training import train

from .conftest import photo


def cpuinfo_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to check torch's CPU probe against")
    return {flag for line in cpuinfo.read_text().splitlines() if line.startswith("flags") for flag in line.split(":")[1].split()}


def test_auto_takes_bf16_exactly_on_cpus_with_bf16_instructions():
    has_units = bool(cpuinfo_flags() & {"avx512_bf16", "amx_bf16"})
    assert cpu_has_bf16_units() == has_units
    precision, reason = auto_precision("cpu")
    assert precision == ("bf16" if has_units else "no") and "bf16" in reason


def test_an_explicit_precision_wins_then_the_launcher_then_auto(monkeypatch):
    monkeypatch.setenv(LAUNCHER_VARIABLE, "fp16")
    assert training_precision("no", "cpu") == ("no", "set in the config")
    assert training_precision("auto", "cpu")[0] == "fp16"
    monkeypatch.delenv(LAUNCHER_VARIABLE)
    assert training_precision("auto", "cpu") == (auto_precision("cpu")[0], "auto: " + auto_precision("cpu")[1])


def test_bf16_autocast_computes_the_fp32_loss_within_tolerance():
    """The general model's family on a real photo under camera shake: the L1 loss and its gradient in bf16
    autocast stay close to fp32's (whether bf16 is fast here or not, it must be correct)."""
    torch.manual_seed(0)
    network = build_generator("nafnet", width=8, encoder_blocks=(0, 1, 2), middle_blocks=1, decoder_blocks=(1, 1, 0))
    image = photo("astronaut", 64) / 255.0
    blurred_image = blur_image(image, motion_kernel(np.random.default_rng(0), length_range=(8.0, 8.0)))
    sharp, blurred = (torch.from_numpy(x).permute(2, 0, 1)[None].float() * 2 - 1 for x in (image, blurred_image))
    losses, gradients = {}, {}
    for precision in ("fp32", "bf16"):
        network.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.l1_loss(network(blurred), sharp)
        loss.backward()
        losses[precision] = loss.item()
        gradients[precision] = torch.cat([p.grad.flatten() for p in network.parameters() if p.grad is not None])
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)
    cosine = F.cosine_similarity(gradients["bf16"], gradients["fp32"], dim=0)
    assert cosine > 0.98


def test_a_run_saves_the_precision_auto_chose_and_why(tiny_config, capsys):
    config = tiny_config("train.max_steps=1", "train.mixed_precision=auto")
    run = train(config).parent
    saved = (run / "config.yaml").read_text()
    expected, reason = auto_precision("cpu")
    assert f"mixed_precision: {expected}" in saved.replace("'", "")
    assert f"mixed precision: {expected} (auto: {reason})" in capsys.readouterr().out
    assert f"mixed precision: {expected}" in (run / "generator" / "README.md").read_text()


def test_deblur_with_auto_precision_matches_fp32_on_a_real_photo():
    from cycledeblur.inference import Deblurrer
    from cycledeblur.models import load_generator

    generator = load_generator("general")
    image = torch.from_numpy(photo("chelsea", 128).copy()).permute(2, 0, 1).float() / 255
    auto = Deblurrer(generator, precision="auto")
    assert auto.precision == {"no": "fp32"}.get(auto_precision("cpu")[0], auto_precision("cpu")[0])
    difference = (auto(image) - Deblurrer(generator, precision="fp32")(image)).pow(2).mean()
    assert -10 * torch.log10(difference.clamp_min(1e-12)) > 40  # PSNR of the auto output against the fp32 one
