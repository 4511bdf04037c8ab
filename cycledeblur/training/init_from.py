"""Fine-tuning: start a run's networks from a released model (`model.init_from`), adapting its channels.

A source is a run folder (its delivered `generator/`; its partner networks from the newest checkpoint), a folder
made by `cycledeblur push` (the generator at the top, partners in `reblur_generator/`, `discriminator_sharp/`,
`discriminator_blurred/` or `discriminator/`), the name of a model bundled with the package (`general`, a
generator folder; a local path of that name wins), or the Hub id of such a repo (through the local cache when
`HF_HUB_OFFLINE=1`). Networks the source has no weights for keep their fresh initialisation.

A 3-channel model can start a 1-channel (grayscale CT/MR) or 4-channel (RGB + near-infrared) run: only the layers
that touch the image's channels change shape. The first layer's kernels over the input channels are summed for
one channel (a gray image seen as equal R, G and B gives the same features) and otherwise repeated and rescaled
(timm's `adapt_input_conv`); the last layer's per-channel outputs are averaged for one channel and extended with
their mean for more.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..config import load_config
from ..errors import UserError
from ..models.hub import hub_errors
from ..pretrained import resolve_model
from .checkpoints import list_checkpoints, network_weights
from .network_sets import DELIVERED, pushed_folders


def initial_weights(source: str) -> tuple[dict[str, dict[str, torch.Tensor]], int]:
    """The source's weights by network role ("deblur", "reblur", "discriminator_sharp", ...), and its image channels."""
    folder = Path(resolve_model(source)).expanduser()
    if not folder.exists():
        folder = _download(source)
    if (folder / "config.yaml").is_file() and (folder / "generator").is_dir():
        return _from_run(folder)
    if (folder / "config.json").is_file():
        weights = {DELIVERED: _read_weights(folder)}
        weights |= {role: _read_weights(folder / name) for role, name in pushed_folders().items() if (folder / name).is_dir()}
        return weights, _channels(folder)
    raise UserError(f"model.init_from={source}: neither a run folder, a model folder with config.json, nor a Hub model id")


def _from_run(run: Path) -> tuple[dict[str, dict[str, torch.Tensor]], int]:
    config = load_config(run / "config.yaml")
    checkpoints = list_checkpoints(run)
    weights = network_weights(checkpoints[-1], config.train.mode) if checkpoints else {}
    # The delivered generator (the weight average, when the run kept one) rather than the checkpoint's raw one.
    weights[DELIVERED] = _read_weights(run / "generator")
    return weights, config.data.channels


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    with hub_errors(f"model.init_from={repo_id}"):
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"]))


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / "model.safetensors"
    if not path.is_file():
        raise UserError(f"model.init_from: {folder} has no model.safetensors")
    return load_file(path)


def _channels(folder: Path) -> int:
    return int(json.loads((folder / "config.json").read_text()).get("in_channels", 3))


def start_from(network: nn.Module, source: dict[str, torch.Tensor], source_channels: int, channels: int, role: str) -> None:
    """Load `source` into `network`, adapting the layers that touch the image's `source_channels` to `channels`."""
    target = network.state_dict()
    missing, unexpected = sorted(set(target) - set(source)), sorted(set(source) - set(target))
    if missing or unexpected:
        raise UserError(
            f"model.init_from: its {role} network does not have this run's architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); fine-tuning keeps the released model's family and options"
        )
    adapted = {key: _adapt(key, value, target[key].shape, source_channels, channels, role) for key, value in source.items()}
    network.load_state_dict(adapted)


def _adapt(key: str, value: torch.Tensor, shape: torch.Size, source_channels: int, channels: int, role: str) -> torch.Tensor:
    if value.shape == shape:
        return value
    groups = value.shape[1] // source_channels if value.dim() > 1 else 0
    # Input side: dimension 1 runs over the image's channels (a conditional discriminator sees `groups` images side by side).
    if value.dim() == 4 and value.shape[1] == groups * source_channels and shape[1] == groups * channels:
        if value.shape[0] == shape[0] and value.shape[2:] == shape[2:]:
            return torch.cat([_adapt_input(group, channels) for group in value.split(source_channels, dim=1)], dim=1)
    # Output side: dimension 0 runs over the channels of the image the network produces.
    if value.shape[0] == source_channels and shape[0] == channels and value.shape[1:] == shape[1:]:
        return _adapt_output(value, channels)
    raise UserError(
        f"model.init_from: {role} weight {key} is {tuple(value.shape)}, this run needs {tuple(shape)}: only the "
        f"image channels ({source_channels} -> {channels}) may differ"
    )


def _adapt_input(kernels: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 1:
        return kernels.sum(dim=1, keepdim=True)
    repeats = -(-channels // kernels.shape[1])
    return kernels.repeat(1, repeats, 1, 1)[:, :channels] * (kernels.shape[1] / channels)


def _adapt_output(weights: torch.Tensor, channels: int) -> torch.Tensor:
    mean = weights.mean(dim=0, keepdim=True)
    if channels == 1:
        return mean
    if channels < weights.shape[0]:
        return weights[:channels]
    return torch.cat([weights, mean.expand(channels - weights.shape[0], *weights.shape[1:])])
