"""Loading a trained generator (run folder, generator folder or Hub id) and deblurring whole images with it in
PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .models import load_generator
from .models.hub import CONFIG_NAME, WEIGHTS_NAME
from .precision import auto_precision
from .tiling import TiledDeblurrer


def resolve_generator(model: str | Path) -> torch.nn.Module:
    """`model` may be a run folder (holding generator/), a generator folder (config.json and model.safetensors), a
    Hub model id or the name of a bundled model (`general`; `load_generator` finds it when no local path has the
    name)."""
    path = Path(model).expanduser()
    if not path.is_dir():
        if path.exists():
            raise UserError(f"--model {model}: is a file; give a run folder, a generator folder or a Hub model id")
        return load_generator(str(model))
    folder = path / "generator" if (path / "generator").is_dir() else path
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
    if folder == path and len(missing) == 2:
        unfinished = (path / "checkpoints").is_dir()
        raise UserError(
            f"--model {model}: neither a run folder with generator/ nor a folder with {CONFIG_NAME}"
            + (" (a run whose training has not finished: generator/ is written at the end)" if unfinished else "")
        )
    if missing:
        raise UserError(f"--model {model}: {folder} has no {' and no '.join(missing)}")
    return load_generator(str(folder))


class Deblurrer(TiledDeblurrer):
    """Applies a PyTorch generator to images of any size (`TiledDeblurrer`), on `device`, autocast to `precision`."""

    def __init__(
        self,
        generator: torch.nn.Module,
        device: str = "cpu",
        precision: str | None = None,
        tile: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = 1,
    ):
        dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        precision = precision or "fp32"
        if precision not in (*dtypes, "auto"):
            raise UserError(f"--precision {precision}: choose one of {', '.join(dtypes)}, auto")
        super().__init__(generator.in_channels, generator.size_multiple, 1, tile, tile_overlap, batch_size)
        self.device = torch.device(device)
        if precision == "auto":
            chosen = auto_precision(self.device.type)[0]
            precision = "fp32" if chosen == "no" else chosen
        self.precision = precision
        # Photos from one camera share a size: cuDNN's autotuning for it pays off from the second photo on.
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.generator = generator.to(self.device).eval()
        self.autocast_dtype = dtypes[precision]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """`deblur` for a C x H x W tensor in [0, 1]; the result is on the CPU."""
        return torch.from_numpy(self.deblur(image.detach().float().cpu().numpy()))

    @torch.inference_mode()
    def run_network(self, batch: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(batch).to(self.device)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            output = self.generator(batch)
        return output.float().cpu().numpy()
