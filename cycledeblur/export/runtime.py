"""Running an exported generator (.onnx) in onnxruntime: `cycledeblur deblur --model model.onnx`. No torch here, so
a deployment needs only onnxruntime, numpy and the image libraries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError, first_line
from ..tiling import TiledDeblurrer

ONNX_SUFFIX = ".onnx"
# What the runtime must know beyond the graph, kept in the model's metadata (written by `to_onnx`).
METADATA_SIZE_MULTIPLE = "cycledeblur.size_multiple"
METADATA_MIN_SIZE = "cycledeblur.min_size"
METADATA_PRECISION = "cycledeblur.precision"
METADATA_GENERATOR = "cycledeblur.generator_config"
INSTALL_HINT = "pip install 'cycledeblur[onnx]'"


def is_onnx_model(model: str | Path) -> bool:
    return str(model).lower().endswith(ONNX_SUFFIX)


def execution_providers(device: str) -> list:
    """onnxruntime's execution providers for a --device: `cpu`, or `cuda` / `cuda:N` (with the CPU for what CUDA
    lacks)."""
    import onnxruntime

    if device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind != "cuda" or not (index or "0").isdigit():
        raise UserError(f"--device {device}: an ONNX model runs on cpu, cuda or cuda:N")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise UserError(f"--device {device}: this onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu)")
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


def open_session(path: str | Path, device: str = "cpu", threads: int | None = None):
    """An onnxruntime session for the model file `path`; a missing, corrupt or foreign file is one line."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"--model {path}: running ONNX models needs onnxruntime ({INSTALL_HINT})") from None
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--model {path}: no such file")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are about graph optimisations, not about the user
    if threads:
        options.intra_op_num_threads = threads
    providers = execution_providers(device)
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as error:
        if not is_onnxruntime_error(error):
            raise
        raise UserError(f"--model {path}: onnxruntime cannot load it ({first_line(error)})") from None
    # Without its CUDA libraries, onnxruntime falls back to the CPU with a mere log line: a GPU run must not.
    if device != "cpu" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise UserError(f"--device {device}: onnxruntime could not start its CUDA execution provider (CUDA, cuDNN?)")
    return session


def is_onnxruntime_error(error: Exception) -> bool:
    """onnxruntime's own errors (a bad graph, file or input), which share no base class short of Exception."""
    return type(error).__module__.startswith("onnxruntime.")


class OnnxDeblurrer(TiledDeblurrer):
    """Applies an exported generator to images of any size (`TiledDeblurrer`) with onnxruntime.

    A model exported with dynamic axes takes any batch and any height and width (multiples of its stride); one
    exported for a fixed input size takes only that size, so images are tiled (and padded) to it.
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        precision: str | None = None,
        tile: int | None = None,
        tile_overlap: int | None = None,
        batch_size: int = 1,
        threads: int | None = None,
    ):
        self.session = open_session(path, device, threads)
        metadata = self.session.get_modelmeta().custom_metadata_map
        if METADATA_SIZE_MULTIPLE not in metadata:
            raise UserError(f"--model {path}: not exported by `cycledeblur export` (its metadata has no {METADATA_SIZE_MULTIPLE})")
        self.precision = metadata.get(METADATA_PRECISION, "fp32")
        if precision not in (None, "auto", self.precision):
            raise UserError(f"--precision {precision}: an ONNX model's precision is set at export (this one: {self.precision})")
        (model_input,) = self.session.get_inputs()
        self.input_name = model_input.name
        batch, channels, height, width = model_input.shape
        input_size = (height, width) if isinstance(height, int) and isinstance(width, int) else None
        if isinstance(batch, int) and batch_size > batch:
            raise UserError(f"--batch-size {batch_size}: this model takes batches of {batch} (export it with --dynamic)")
        super().__init__(
            channels,
            int(metadata[METADATA_SIZE_MULTIPLE]),
            int(metadata.get(METADATA_MIN_SIZE, 1)),
            tile,
            tile_overlap,
            batch_size,
            input_size,
        )

    def run_network(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
