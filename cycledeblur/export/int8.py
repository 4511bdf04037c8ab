"""Static int8 quantization of an exported generator with onnxruntime, calibrated on the user's images, and what
it costs in quality on images held out from the calibration."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ..data import pair_name
from ..errors import UserError, first_line
from ..evaluation import FullReferenceMetrics, matching_pairs, score_pairs
from ..image_arrays import centre_crop, read_array
from ..image_files import list_images
from .runtime import METADATA_PRECISION, OnnxDeblurrer

# The layers that hold the weights and the arithmetic. The rest (normalisation, the Wiener filter's spectra,
# residual sums) stays float: quantizing it would cost accuracy and save neither size nor much time.
QUANTIZED_OPERATORS = ["Conv", "ConvTranspose", "Gemm", "MatMul"]
# Calibration crops for a model with dynamic axes; one exported for a fixed size is calibrated at that size.
CALIBRATION_SIZE = 256
# Each activation's int8 range covers this percentile of its calibration values: the rare extremes a min-max range
# would stretch to coarsen the steps every other value falls on. On the deploy benchmark's ResNet (bench/deploy.py),
# the int8 PSNR drop on the held-out photos was 0.38 dB with min-max ranges, 0.26 / 0.11 / 0.03 / 0.29 dB at the
# 99.999th / 99.99th / 99.9th / 99.5th percentile.
CALIBRATION_PERCENTILE = 99.9
# onnxruntime's calibrators keep every crop's activations in memory until the ranges are computed (a ResNet-9 at
# 256 px: ~140 MB a crop); more crops than this add little to the ranges.
MAX_CALIBRATION_IMAGES = 64


@contextmanager
def quiet_quantization_tools() -> Iterator[None]:
    """onnxruntime's quantization tools log advice on the root logger and print their histogram sizes: neither is
    for the user's terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


@dataclass
class CalibrationSplit:
    calibration: list[Path]  # blurred images whose activations set the int8 ranges
    held_out: list[tuple[str, Path, Path | None]]  # (name, blurred, sharp or None): scored, never calibrated on


@dataclass
class Int8Report:
    path: Path
    fp32_bytes: int
    int8_bytes: int
    split: CalibrationSplit
    reference: str  # "sharp": both models scored against the sharp images; "fp32": int8 against the fp32 output
    fp32_scores: dict[str, float] | None  # mean PSNR / SSIM against the sharp images (None without them)
    int8_scores: dict[str, float]

    @property
    def psnr_drop(self) -> float | None:
        return None if self.fp32_scores is None else self.fp32_scores["psnr"] - self.int8_scores["psnr"]


def calibration_split(folder: Path) -> CalibrationSplit:
    """The last quarter (at least one) of the blurred images in name order is held out, the rest (the first
    MAX_CALIBRATION_IMAGES of it) calibrates.
    `folder` holds blurred images, or blur/ and sharp/ with the same names (`cycledeblur synth --paired`)."""
    if not folder.is_dir():
        raise UserError(f"--calibration {folder}: no such folder")
    paired = (folder / "blur").is_dir() and (folder / "sharp").is_dir()
    blur_dir = folder / "blur" if paired else folder
    paths = list_images(blur_dir)
    if len(paths) < 2:
        raise UserError(f"--calibration {folder}: needs at least 2 images (some calibrate, the others are held out); found {len(paths)}")
    held_count = max(1, len(paths) // 4)
    calibration, held_out = paths[:-held_count][:MAX_CALIBRATION_IMAGES], paths[-held_count:]
    if not paired:
        return CalibrationSplit(calibration, [(pair_name(path, blur_dir), path, None) for path in held_out])
    pairs = {name: (name, blurred, sharp) for name, blurred, sharp in matching_pairs(blur_dir, folder / "sharp")}
    missing = [path for path in held_out if pair_name(path, blur_dir) not in pairs]
    if missing:
        raise UserError(f"--calibration {folder}: {missing[0]} has no image of the same name in {folder / 'sharp'}")
    return CalibrationSplit(calibration, [pairs[pair_name(path, blur_dir)] for path in held_out])


class ImageCalibration:
    """onnxruntime's CalibrationDataReader (a protocol: any class with get_next): the network inputs of the
    calibration crops, one at a time, all of one size (padded like any input), as its histogram methods need."""

    def __init__(self, runtime: OnnxDeblurrer, paths: list[Path]):
        size = runtime.input_size or (runtime.padded(CALIBRATION_SIZE),) * 2
        crops = (centre_crop(read_array(path, runtime.channels), max(size)) for path in paths)
        self.inputs = iter([{runtime.input_name: runtime.network_input(crop[None], size)} for crop in crops])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.inputs, None)


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: list[Path], percentile: float = CALIBRATION_PERCENTILE) -> None:
    """Write the int8 version of the exported model `fp32_path`: int8 weights (per output channel) and activations
    (uint8, ranges covering `percentile` of their values on the calibration images), as quantize/dequantize pairs
    that any ONNX runtime reads."""
    if not 0 < percentile <= 100:
        raise UserError(f"--calibration-percentile {percentile} must be above 0 and at most 100")
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    runtime = OnnxDeblurrer(fp32_path)
    reader = ImageCalibration(runtime, calibration)
    prepared = int8_path.with_name(f".{int8_path.name}.prepared")
    try:
        # onnxruntime's recommended preparation: its graph optimisations (folding, fusions) before ranges are
        # measured. Its symbolic shape inference cannot follow these graphs' arithmetic on image sizes; skipped.
        with quiet_quantization_tools():
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(int8_path),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=QUANTIZED_OPERATORS,
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": percentile},
            )
    except Exception as error:
        raise UserError(f"int8 quantization of {fp32_path} failed: {first_line(error)}") from error
    finally:
        prepared.unlink(missing_ok=True)
    model = onnx.load(str(int8_path))
    metadata = {**runtime.session.get_modelmeta().custom_metadata_map, METADATA_PRECISION: "int8"}
    onnx.helper.set_model_props(model, metadata)
    onnx.save(model, str(int8_path))


def int8_report(fp32_path: Path, int8_path: Path, split: CalibrationSplit) -> Int8Report:
    """Both models on the held-out images: against the sharp images when there are, else int8 against fp32."""
    fp32, int8 = OnnxDeblurrer(fp32_path), OnnxDeblurrer(int8_path)
    sizes = fp32_path.stat().st_size, int8_path.stat().st_size
    if all(sharp is not None for _, _, sharp in split.held_out):
        fp32_scores = score_pairs(fp32, split.held_out).mean("output")
        int8_scores = score_pairs(int8, split.held_out).mean("output")
        return Int8Report(int8_path, *sizes, split, "sharp", fp32_scores, int8_scores)
    metrics, scores = FullReferenceMetrics(), []
    for _, blurred, _ in split.held_out:
        image = read_array(blurred, fp32.channels)
        scores.append(metrics(torch.from_numpy(int8.deblur(image)), torch.from_numpy(fp32.deblur(image))))
    means = {metric: float(np.mean([s[metric] for s in scores])) for metric in ("psnr", "ssim")}
    return Int8Report(int8_path, *sizes, split, "fp32", None, means)


def print_int8(report: Int8Report) -> None:
    split = report.split
    against = "the sharp images" if report.reference == "sharp" else "the fp32 model's output"
    table = Table(title=f"int8 on {len(split.held_out)} held-out images against {against} ({len(split.calibration)} calibrated)")
    for column in ("model", "file (MB)", "PSNR (dB)", "SSIM"):
        table.add_column(column, justify="left" if column == "model" else "right")
    rows = {"fp32": (report.fp32_bytes, report.fp32_scores), "int8": (report.int8_bytes, report.int8_scores)}
    for name, (size, scores) in rows.items():
        quality = [f"{scores['psnr']:.2f}", f"{scores['ssim']:.4f}"] if scores else ["reference", "reference"]
        table.add_row(name, f"{size / 1e6:.2f}", *quality)
    console = Console()
    console.print(table)
    drop = f"PSNR drop {report.psnr_drop:.2f} dB, " if report.psnr_drop is not None else ""
    ratio = report.fp32_bytes / report.int8_bytes
    console.print(f"wrote {report.path}: {drop}{ratio:.1f}x smaller", highlight=False, soft_wrap=True)
