"""Exporting a generator to ONNX (torch.export + torch.onnx), and proving on real images that the file computes
what the PyTorch model computes."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.console import Console
from torch import nn

from ..errors import UserError, first_line
from ..image_files import list_images
from ..inference import Deblurrer
from ..run_photos import Photos, folder_photos
from ..models.hub import CONFIG_NAME
from ..tiling import round_up
from .runtime import (
    INSTALL_HINT,
    METADATA_GENERATOR,
    METADATA_MIN_SIZE,
    METADATA_PRECISION,
    METADATA_SIZE_MULTIPLE,
    OnnxDeblurrer,
)

if TYPE_CHECKING:
    import onnx

# 18 is the oldest opset torch's exporter writes natively; TensorRT 10 and onnxruntime >= 1.14 read it.
DEFAULT_OPSET = 18
# Exported graphs take no smaller inputs (the runtime pads up to it): below this, some families branch on the size
# (the Wiener filter pads images smaller than its kernel), which a graph for every size cannot do.
EXPORT_MIN_SIZE = 32
DEFAULT_INPUT_SIZE = 512
# The largest |ONNX - PyTorch fp32| allowed on the [-1, 1] outputs: float32 kernels differ in summation order
# only; float16 rounds every activation to 11 significant bits.
PARITY_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
# Parity images: centre crops of this size (not a multiple of any stride, so the padding path runs too).
CHECK_SIZE = 250
CHECK_COUNT = 2


class Float16Network(nn.Module):
    """The generator in float16 behind float32 inputs and outputs: every export is fed and read alike."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = copy.deepcopy(generator).half()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.generator(images.half()).float()


@dataclass
class ExportReport:
    path: Path
    precision: str
    size_bytes: int
    input_shape: list[int | str]
    max_difference: float  # on the [-1, 1] outputs, against the PyTorch model in float32
    tolerance: float
    checked_images: list[str]
    has_dft: bool  # FFTs (the Wiener generator): onnxruntime computes them fast at power-of-two lengths only


def export_onnx(
    generator: nn.Module,
    path: Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = False,
    input_size: int = DEFAULT_INPUT_SIZE,
    fp16: bool = False,
) -> onnx.ModelProto:
    """Write `generator` to `path` as an ONNX graph, checked by onnx's checker, and return it: inputs and outputs
    N x C x H x W float32 in [-1, 1]. `dynamic`: any batch, and any height and width that are multiples of the
    generator's stride (at least EXPORT_MIN_SIZE); otherwise one image of `input_size` x `input_size` (rounded up to
    the stride)."""
    try:
        import onnx
    except ImportError:
        raise UserError(f"exporting to ONNX needs onnx, onnxscript and onnxruntime ({INSTALL_HINT})") from None
    generator = generator.eval()
    multiple, channels = generator.size_multiple, generator.in_channels
    min_size = round_up(EXPORT_MIN_SIZE, multiple)
    if dynamic:
        # An example batch of 2: torch.export would take a dimension of 1 for a constant.
        batch, size = 2, min_size
        if multiple == 1:
            height, width = (torch.export.Dim(side, min=min_size) for side in ("height", "width"))
        else:  # the graph's input shape reads "4*height_blocks": the runtime (and a user) sees the stride
            blocks = [torch.export.Dim(f"{side}_blocks", min=min_size // multiple) for side in ("height", "width")]
            height, width = (multiple * dim for dim in blocks)
        dynamic_shapes = ({0: torch.export.Dim("batch", min=1), 2: height, 3: width},)
    else:
        batch, size = 1, round_up(max(input_size, min_size), multiple)
        dynamic_shapes = None
    example = torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    network = Float16Network(generator) if fp16 else generator
    try:
        # The exporter reports each stage on stdout and warns about internals the user cannot change.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network,
                (example,),
                path,
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=dynamic_shapes,
                input_names=["blurred"],
                output_names=["deblurred"],
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # the exporter raises many types, all meaning "this graph cannot be exported"
        reason = exporter_reason(error)
        raise UserError(f"cannot export the {generator.architecture} generator to ONNX: {reason}") from error
    model = onnx.load(str(path))
    # The exporter's intermediate shape annotations can be wrong for the FFTs' one-sided spectra, and onnxruntime
    # trusts them when it plans buffers; they are optional, so the runtime infers shapes itself.
    del model.graph.value_info[:]
    # The exporter files each node's Python stack trace: paths on this machine, and 40% of a small model's bytes.
    for node in model.graph.node:
        del node.metadata_props[:]
    onnx.helper.set_model_props(
        model,
        {
            METADATA_SIZE_MULTIPLE: str(multiple),
            METADATA_MIN_SIZE: str(min_size),
            METADATA_PRECISION: "fp16" if fp16 else "fp32",
            METADATA_GENERATOR: json.dumps(generator.config_dict(), sort_keys=True),
        },
    )
    model.doc_string = f"cycledeblur {generator.architecture} generator ({CONFIG_NAME}: {METADATA_GENERATOR})"
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return model


def exporter_reason(error: Exception) -> str:
    """What stopped torch's exporter: its messages open with advice (in terminal colours) and give the cause after
    "Exception summary"."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    return first_line(Exception(text.partition("Exception summary")[2] or text))


def check_images(folder: Path, channels: int, count: int = CHECK_COUNT, size: int = CHECK_SIZE) -> Photos:
    """`count` images spread over `folder` (every n-th in name order), centre-cropped to at most `size` x `size`."""
    if not folder.is_dir():
        raise UserError(f"--check-images {folder}: no such folder")
    if not list_images(folder):
        raise UserError(f"--check-images {folder} contains no images")
    return folder_photos(folder, channels, count, size)


def max_difference(generator: nn.Module, runtime: OnnxDeblurrer, images: list[tuple[str, np.ndarray]]) -> float:
    """The largest |ONNX - PyTorch fp32| over the network outputs, on the same (padded) inputs, in [-1, 1]."""
    reference = Deblurrer(generator)
    height, width = runtime.input_size or (None, None)
    worst = 0.0
    for _, image in images:
        batch = runtime.network_input(image[None, :, :height, :width])
        worst = max(worst, float(np.abs(runtime.run_network(batch) - reference.run_network(batch)).max()))
    return worst


def export_checked(
    generator: nn.Module, path: Path, images: list[tuple[str, np.ndarray]], *, fp16: bool = False, **options
) -> ExportReport:
    """`export_onnx`, then the parity check on `images`: the file lands at `path` only if it passes."""
    precision = "fp16" if fp16 else "fp32"
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.partial")
    try:
        model = export_onnx(generator, staged, fp16=fp16, **options)
        runtime = OnnxDeblurrer(staged)
        difference = max_difference(generator, runtime, images)
        tolerance = PARITY_TOLERANCE[precision]
        if not difference <= tolerance:
            raise UserError(
                f"the exported {precision} model differs from PyTorch by {difference:.2e} on the check images"
                f" (allowed: {tolerance:.0e}); nothing was written to {path}"
            )
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    shape = runtime.session.get_inputs()[0].shape
    has_dft = any(node.op_type == "DFT" for node in model.graph.node)
    names = [name for name, _ in images]
    return ExportReport(path, precision, path.stat().st_size, shape, difference, tolerance, names, has_dft)


def print_export(report: ExportReport) -> None:
    shape = "x".join(map(str, report.input_shape))
    Console().print(
        f"wrote {report.path} ({report.precision}, {report.size_bytes / 1e6:.2f} MB, input {shape});"
        f" max |ONNX - PyTorch| on {len(report.checked_images)} real images: {report.max_difference:.2e}"
        f" (allowed {report.tolerance:.0e})",
        highlight=False,
        soft_wrap=True,
    )
    if report.has_dft and not all(isinstance(side, int) for side in report.input_shape):
        Console().print(
            "note: this graph computes FFTs, which onnxruntime does fast only at power-of-two lengths; for speed,"
            " export it for one input size that is a power of two (--input-size 256 or 512): its FFTs are twice that",
            highlight=False,
            soft_wrap=True,
        )
