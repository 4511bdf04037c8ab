"""Checkpoints under RUN/checkpoints/step_NNNNNNN: written atomically, pruned to the newest K, found for resume."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import TrainingDiverged, UserError
from .network_sets import NETWORK_SETS

_CHECKPOINT = re.compile(r"step_(\d{7,})")
COMPLETE_MARKER = "replicas.json"  # the last file a checkpoint gets
# Accelerate saves the prepared networks' state dicts: their keys start with DDP's or torch.compile's wrapper.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. A checkpoint is written under a dot-name and renamed when complete (its
    last file, replicas.json, written), and renamed back to a dot-name before it is deleted: a process killed at
    any moment leaves no `step_` folder that cannot load."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _CHECKPOINT.fullmatch(p.name) and (p / COMPLETE_MARKER).is_file()]
    return sorted(found, key=lambda p: int(_CHECKPOINT.fullmatch(p.name).group(1)))


def saved_process_count(checkpoint: Path) -> int | None:
    """How many processes trained the run that wrote `checkpoint` (its replicas.json); None if it does not say."""
    try:
        return int(json.loads((checkpoint / COMPLETE_MARKER).read_text())["processes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_leftovers(run_dir: Path) -> None:
    """Delete what killed runs left behind: half-written checkpoints and half-deleted ones."""
    folder = checkpoint_dir(run_dir)
    for leftover in folder.glob(".step_*") if folder.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)


def _delete(checkpoint: Path) -> None:
    doomed = checkpoint.with_name(f".{checkpoint.name}.deleting")
    os.replace(checkpoint, doomed)  # atomic: from here on it is no longer listed
    shutil.rmtree(doomed, ignore_errors=True)


def weight_fingerprints(accelerator: Accelerator, models: list[torch.nn.Module]) -> torch.Tensor:
    """Per process, the sum and sum of squares of every parameter: (num_processes, 2 * n_parameters)."""
    local = torch.stack(
        [torch.stack([p.detach().double().sum(), p.detach().double().square().sum()]) for m in models for p in m.parameters()]
    ).flatten()
    return accelerator.gather(local[None]).cpu()


def save_checkpoint(
    accelerator: Accelerator,
    run_dir: Path,
    step: int,
    keep: int,
    models: list[torch.nn.Module],
    save_loop_state: Callable[[Path], None],
) -> Path:
    """Save the full training state (Accelerate's, then the loop's with `save_loop_state(folder)` on every process);
    a write killed half-way, or failing (a full disk), leaves the earlier checkpoints as they were.

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
    try:
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        save_loop_state(partial)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            replicas = {"processes": accelerator.num_processes, "in_sync": in_sync, "fingerprints": fingerprints.tolist()}
            (partial / COMPLETE_MARKER).write_text(json.dumps(replicas))
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        kept = ", ".join(path.name for path in list_checkpoints(run_dir)) or "none"
        raise UserError(
            f"cannot write the checkpoint {final}: {error.strerror or error} (a full disk or a read-only folder?); "
            f"the earlier checkpoints are intact ({kept})"
        ) from None
    if accelerator.is_main_process:
        if final.exists():  # re-saving a step after a resume from it
            _delete(final)
        os.replace(partial, final)
        for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            _delete(old)
    accelerator.wait_for_everyone()
    if not in_sync:
        raise RuntimeError(f"step {step}: the processes' weights differ (see {final / COMPLETE_MARKER})")
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
        if not (path / COMPLETE_MARKER).is_file():
            raise UserError(f"--resume {resume}: an incomplete checkpoint (no {COMPLETE_MARKER}); resume from an earlier one")
        return path
    if path.is_dir() and list_checkpoints(path):
        return list_checkpoints(path)[-1]
    raise UserError(f"--resume {resume}: not a checkpoint folder (step_NNNNNNN) nor a run folder with checkpoints")


def network_weights(checkpoint: Path, mode: str) -> dict[str, dict[str, torch.Tensor]]:
    """The weights of each network of a `train.mode` run's checkpoint, by role, as plain (unwrapped) state dicts."""
    files = {role: checkpoint / name for role, name in NETWORK_SETS[mode].checkpoint_files().items()}
    missing = [path.name for path in files.values() if not path.is_file()]
    if missing:
        raise UserError(f"{checkpoint} lacks {', '.join(missing)}: not a checkpoint of a {mode} run")
    try:
        return {role: unwrapped_state(load_file(path)) for role, path in files.items()}
    except (OSError, SafetensorError) as error:
        raise UserError(f"cannot read the checkpoint {checkpoint}: {error}") from None


def unwrapped_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with the wrappers' key prefixes (`WRAPPER_PREFIXES`, possibly nested) removed."""
    while state and (prefix := next((p for p in WRAPPER_PREFIXES if all(key.startswith(p) for key in state)), None)):
        state = {key.removeprefix(prefix): value for key, value in state.items()}
    return state
