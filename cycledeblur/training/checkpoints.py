"""Checkpoints under RUN/checkpoints/step_NNNNNNN: written atomically, pruned to the newest K, found for resume."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator

from ..errors import UserError

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


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, keep: int) -> Path:
    """Save the full training state; a write killed half-way leaves only a `.partial` folder, never a step_ one."""
    final = checkpoint_dir(run_dir) / f"step_{step:07d}"
    partial = final.with_name(f".{final.name}.partial")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # re-saving a step after a resume from it
            shutil.rmtree(final)
        os.replace(partial, final)
        for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
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
