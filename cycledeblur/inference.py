"""Loading a trained generator (run folder, generator folder or Hub id) and deblurring whole images with it."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import UserError
from .models import load_generator


def resolve_generator(model: str | Path) -> torch.nn.Module:
    """`model` may be a run folder (holding generator/), a generator folder (config.json) or a Hub model id."""
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "generator" / "config.json").is_file():
            path = path / "generator"
        elif not (path / "config.json").is_file():
            raise UserError(f"--model {model}: neither a run folder with generator/ nor a folder with config.json")
        return load_generator(str(path))
    if path.exists():
        raise UserError(f"--model {model}: is a file; give a run folder, a generator folder or a Hub model id")
    return load_generator(str(model))


class Deblurrer:
    """Applies a generator to CxHxW images in [0, 1] of any size, padding to the network's stride and back."""

    def __init__(self, generator: torch.nn.Module, device: str = "cpu", precision: str = "fp32"):
        dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        if precision not in dtypes:
            raise UserError(f"--precision {precision}: choose one of {', '.join(dtypes)}")
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.autocast_dtype = dtypes[precision]
        self.multiple = generator.size_multiple
        self.channels = generator.in_channels

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        pad_bottom, pad_right = -height % self.multiple, -width % self.multiple
        batch = image.unsqueeze(0).to(self.device, torch.float32) * 2 - 1
        # Reflection keeps the padded border image-like, so the network sees no artificial edge there.
        mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
        batch = F.pad(batch, (0, pad_right, 0, pad_bottom), mode=mode)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            output = self.generator(batch)
        return output[0, :, :height, :width].float().add(1).div(2).clamp(0, 1).cpu()
