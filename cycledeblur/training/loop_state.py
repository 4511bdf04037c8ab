"""The loop's own state, saved beside Accelerate's in every checkpoint as safetensors: nothing of ours is pickled,
so resuming never runs code from a checkpoint folder.

Two files: `loop_state.safetensors` (what all processes share: the step, the weight average), written by the main
process, and `loop_state_rank{N}.safetensors` (what each process holds alone: its image pools' fakes and random
streams). A resume on fewer or more processes gives process N the saved state of rank N modulo the saved count.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError

SHARED_FILE = "loop_state.safetensors"
_RANK_FILE = re.compile(r"loop_state_rank(\d+)\.safetensors")


class Stateful(Protocol):
    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


def save_loop_state(folder: Path, shared: dict[str, Stateful], own: dict[str, Stateful], process_index: int) -> None:
    """Write the shared state (from the main process only) and this process's own."""
    if process_index == 0:
        save_file(_flatten(shared), folder / SHARED_FILE)
    save_file(_flatten(own), folder / f"loop_state_rank{process_index}.safetensors")


def load_loop_state(folder: Path, shared: dict[str, Stateful], own: dict[str, Stateful], process_index: int) -> None:
    ranks = sorted(int(match.group(1)) for path in folder.iterdir() if (match := _RANK_FILE.fullmatch(path.name)))
    if not (folder / SHARED_FILE).is_file() or not ranks:
        raise UserError(f"{folder} holds no loop state ({SHARED_FILE}): not a checkpoint this version can resume")
    _unflatten(_read(folder / SHARED_FILE), shared)
    _unflatten(_read(folder / f"loop_state_rank{ranks[process_index % len(ranks)]}.safetensors"), own)


def _flatten(objects: dict[str, Stateful]) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.detach().cpu().contiguous() for name, item in objects.items() for key, value in item.state_dict().items()
    }


def _unflatten(tensors: dict[str, torch.Tensor], objects: dict[str, Stateful]) -> None:
    for name, item in objects.items():
        prefix = f"{name}."
        item.load_state_dict({key.removeprefix(prefix): value for key, value in tensors.items() if key.startswith(prefix)})


def _read(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise UserError(f"cannot read the checkpoint file {path}: {error}") from None
