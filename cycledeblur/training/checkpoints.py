"""Checkpoints under RUN/checkpoints/step_NNNNNNN: written atomically, pruned to the newest K, found for resume."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator

from ..errors import TrainingDiverged, UserError

_CHECKPOINT = re.compile(r"step_(\d{7,})")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. Partial writes live under a dot-name and are never listed."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _CHECKPOINT.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.fullmatch(p.name).group(1)))


def weight_fingerprints(accelerator: Accelerator, models: list[torch.nn.Module]) -> torch.Tensor:
    """Per process, the sum and sum of squares of every parameter: (num_processes, 2 * n_parameters)."""
    local = torch.stack(
        [torch.stack([p.detach().double().sum(), p.detach().double().square().sum()]) for m in models for p in m.parameters()]
    ).flatten()
    return accelerator.gather(local[None]).cpu()


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, keep: int, models: list[torch.nn.Module]) -> Path:
    """Save the full training state; a write killed half-way leaves only a `.partial` folder, never a step_ one.

    Also checks that every process holds the same weights (what data-parallel training promises) and records
    the evidence in `replicas.json`: a checkpoint of diverged replicas would silently keep only rank 0's.
    """
    final = checkpoint_dir(run_dir) / f"step_{step:07d}"
    partial = final.with_name(f".{final.name}.partial")
    fingerprints = weight_fingerprints(accelerator, models)
    if not fingerprints.isfinite().all():  # before writing: a broken checkpoint must not prune the good ones
        raise TrainingDiverged(
            f"training diverged by step {step}: the weights are no longer finite (NaN or inf), so no checkpoint was "
            "written over the earlier ones; lower train.lr_g / train.lr_d and train again"
        )
    in_sync = bool((fingerprints == fingerprints[0]).all())
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replicas = {"processes": accelerator.num_processes, "in_sync": in_sync, "fingerprints": fingerprints.tolist()}
        (partial / "replicas.json").write_text(json.dumps(replicas))
        if final.exists():  # re-saving a step after a resume from it
            shutil.rmtree(final)
        os.replace(partial, final)
        for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    if not in_sync:
        raise RuntimeError(f"step {step}: the processes' weights differ (see {final / 'replicas.json'})")
    return final


def resolve_resume(run_dir: Path, resume: str | bool | None) -> Path | None:
    """`True` means the newest checkpoint of `run_dir`; a path means that checkpoint (or that run's newest)."""
    if not resume:
        return None
    if resume is True:
        checkpoints = list_checkpoints(run_dir)
        if not checkpoints:
            raise UserError(f"--resume: no checkpoint in {checkpoint_dir(run_dir)}")
        return checkpoints[-1]
    path = Path(resume)
    if _CHECKPOINT.fullmatch(path.name) and path.is_dir():
        return path
    if path.is_dir() and list_checkpoints(path):
        return list_checkpoints(path)[-1]
    raise UserError(f"--resume {resume}: not a checkpoint folder (step_NNNNNNN) nor a run folder with checkpoints")
