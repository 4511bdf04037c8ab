"""Deployment: ONNX export checked against PyTorch on real photos, int8 quantization, and `deblur` / `evaluate`
through onnxruntime, with PyTorch absent from the process."""

import contextlib
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from PIL import Image

from cycledeblur.cli import main
from cycledeblur.config import load_config
from cycledeblur.export import to_onnx
from cycledeblur.export.runtime import METADATA_GENERATOR, METADATA_PRECISION, OnnxDeblurrer
from cycledeblur.image_arrays import adapt_channels, read_image_array
from cycledeblur.inference import Deblurrer, resolve_generator
from cycledeblur.models import build_generator
from cycledeblur.tiling import TiledDeblurrer
from cycledeblur.training import train

from .conftest import ROOT, TINY_NETWORKS, TINY_OVERRIDES, TINY_TRAINING, photo, randomised

# Runs `cycledeblur` with every import of torch failing: what a deployment without PyTorch would see.
WITHOUT_TORCH = "import sys; sys.modules['torch'] = None; from cycledeblur.cli import main; sys.exit(main(sys.argv[1:]))"


def train_tiny(unpaired, folder, base: str, *overrides: str):
    from cycledeblur.config import load_config

    networks = TINY_NETWORKS[base] + TINY_TRAINING if base != "default.yaml" else TINY_OVERRIDES
    config = load_config(
        ROOT / "configs" / base,
        [f"data.blur={unpaired / 'blur'}", f"data.sharp={unpaired / 'sharp'}", f"output_dir={folder}", *networks, *overrides],
    )
    train(config)
    return folder


@pytest.fixture(scope="module")
def resnet_run(unpaired, tmp_path_factory):
    """A tiny ResNet CycleGAN trained on real photos, long enough (and fast enough) to really change a photo."""
    return train_tiny(unpaired, tmp_path_factory.mktemp("export") / "resnet", "default.yaml", "train.max_steps=6", "train.lr_g=5e-3")


@pytest.fixture(scope="module")
def odd_inputs(tmp_path_factory):
    """Real photos at sizes that are not multiples of the ResNet's stride of 4, one of them 16-bit gray."""
    folder = tmp_path_factory.mktemp("odd")
    Image.fromarray(photo("coffee", 90)[:77]).save(folder / "coffee.png")  # 90 x 77
    Image.fromarray(photo("camera", 70).astype(np.uint16)[:, :67] * 257).save(folder / "camera16.png")  # 67 x 70
    return folder


@pytest.fixture(scope="module")
def dynamic_export(resnet_run, paired, tmp_path_factory):
    """`export --dynamic --int8` with a paired calibration folder: the fp32 model, its int8 twin and the output."""
    out = tmp_path_factory.mktemp("onnx") / "resnet.onnx"
    args = [
        "export",
        "--model",
        str(resnet_run),
        "--onnx",
        str(out),
        "--dynamic",
        "--int8",
        "--calibration",
        str(paired),
    ]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(args)
    return out, code, " ".join(printed.getvalue().split())


def as_stored(array: np.ndarray, image_format) -> np.ndarray:
    """A 3-channel result as written to a file of `image_format`'s channels and read back as 3 channels."""
    return adapt_channels(adapt_channels(array, image_format.channels), 3)


class FixedSizePytorch(TiledDeblurrer):
    """The PyTorch network behind the tiling of a model exported for one input size."""

    def __init__(self, pytorch: Deblurrer, input_size: tuple[int, int]):
        super().__init__(pytorch.channels, pytorch.multiple, input_size=input_size)
        self.pytorch = pytorch

    def run_network(self, batch: np.ndarray) -> np.ndarray:
        return self.pytorch.run_network(batch)


def run_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], capture_output=True, text=True, timeout=120)


def test_dynamic_export_matches_pytorch_and_records_what_the_runtime_needs(dynamic_export, resnet_run):
    path, code, printed = dynamic_export
    assert code == 0
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    (model_input,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in model_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "4*height_blocks", "4*width_blocks"]
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata[METADATA_PRECISION] == "fp32"
    assert json.loads(metadata[METADATA_GENERATOR]) == json.loads((resnet_run / "generator" / "config.json").read_text())
    # No node carries the exporter's stack traces (file paths of the exporting machine).
    assert not any(node.metadata_props for node in model.graph.node)
    assert "power-of-two" not in printed  # the FFT note is for graphs with FFTs


def test_onnx_deblur_runs_without_torch_and_matches_pytorch(dynamic_export, resnet_run, odd_inputs, tmp_path):
    path, _, _ = dynamic_export
    whole = run_without_torch("deblur", "--model", str(path), str(odd_inputs), "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    tiled = run_without_torch(
        "deblur",
        "--model",
        str(path),
        str(odd_inputs),
        "--out",
        str(tmp_path / "tiled"),
        "--tile",
        "48",
        "--tile-overlap",
        "8",
        "--batch-size",
        "3",
    )
    assert tiled.returncode == 0, tiled.stderr
    generator = resolve_generator(resnet_run)
    pytorch, pytorch_tiled = Deblurrer(generator), Deblurrer(generator, tile=48, tile_overlap=8, batch_size=3)
    for name in ("coffee.png", "camera16.png"):
        image, image_format = read_image_array(odd_inputs / name, 3)
        one_step = 1.01 / (2**image_format.bit_depth - 1)  # of rounding to the file's bit depth
        expected = pytorch.deblur(image)
        assert np.abs(expected - image).mean() > 2e-3  # the trained model really changes the photo
        output, output_format = read_image_array(tmp_path / "whole" / name, 3)
        assert output.shape == image.shape and output_format == image_format  # size, bit depth, channels kept
        assert np.abs(output - as_stored(expected, image_format)).max() <= one_step
        tiled_output, _ = read_image_array(tmp_path / "tiled" / name, 3)
        assert np.abs(tiled_output - as_stored(pytorch_tiled.deblur(image), image_format)).max() <= one_step


def test_int8_model_is_smaller_scored_on_held_out_pairs_and_runs(dynamic_export, odd_inputs):
    path, _, printed = dynamic_export
    int8 = path.with_suffix(".int8.onnx")
    assert "int8 on 1 held-out images against the sharp images (5 calibrated)" in printed
    assert "PSNR drop" in printed
    assert int8.stat().st_size < path.stat().st_size
    model = onnx.load(str(int8))
    assert {p.key: p.value for p in model.metadata_props}[METADATA_PRECISION] == "int8"
    assert sum(node.op_type == "QuantizeLinear" for node in model.graph.node) > 0
    runtime, reference = OnnxDeblurrer(int8), OnnxDeblurrer(path)
    image, _ = read_image_array(odd_inputs / "coffee.png", 3)
    assert np.abs(runtime.deblur(image) - reference.deblur(image)).mean() < 0.01


def test_evaluate_takes_an_onnx_model(dynamic_export, resnet_run, paired, tmp_path):
    path, _, _ = dynamic_export
    folders = ["--blur", str(paired / "blur"), "--sharp", str(paired / "sharp")]
    assert main(["evaluate", "--model", str(path), *folders, "--json", str(tmp_path / "onnx.json")]) == 0
    assert main(["evaluate", "--model", str(resnet_run), *folders, "--json", str(tmp_path / "torch.json")]) == 0
    onnx_scores, torch_scores = (json.loads((tmp_path / f"{name}.json").read_text())["output"] for name in ("onnx", "torch"))
    assert onnx_scores["psnr"] == pytest.approx(torch_scores["psnr"], abs=0.01)


def test_fixed_size_fp16_export_tiles_at_its_size(resnet_run, odd_inputs, paired, tmp_path, capsys):
    path = tmp_path / "fixed.onnx"
    assert main(f"export --model {resnet_run} --onnx {path} --input-size 46 --fp16 --check-images {paired / 'blur'}".split()) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "fp16" in printed and "input 1x3x48x48" in printed  # 46 rounded up to the stride
    runtime = OnnxDeblurrer(path)
    assert runtime.input_size == (48, 48) and runtime.precision == "fp16"
    image, _ = read_image_array(odd_inputs / "coffee.png", 3)  # 90 x 77: 48 px tiles, padded where it is smaller
    output = runtime.deblur(image)
    assert output.shape == image.shape
    pytorch = FixedSizePytorch(Deblurrer(resolve_generator(resnet_run)), input_size=(48, 48))
    assert np.abs(output - pytorch.deblur(image)).max() < 0.02  # float16 against float32
    # A model of one input size takes neither other tiles nor batches.
    out = tmp_path / "out"
    assert main(["deblur", "--model", str(path), str(odd_inputs), "--out", str(out), "--batch-size", "2"]) == 2
    assert main(["deblur", "--model", str(path), str(odd_inputs), "--out", str(out), "--tile", "64"]) == 2
    assert main(["deblur", "--model", str(path), str(odd_inputs), "--out", str(out), "--precision", "bf16"]) == 2
    errors = " ".join(capsys.readouterr().err.split())
    assert "--batch-size 2: this model takes batches of 1" in errors and "--tile 64: this model takes only 48x48" in errors
    assert "precision is set at export (this one: fp16)" in errors
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert main(["deblur", "--model", str(path), str(odd_inputs), "--out", str(out), "--device", "cuda"]) == 2
        assert "no CUDA execution provider" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_the_wiener_generators_fft_exports(unpaired, paired, tmp_path, capsys):
    """The cpu-fast recipe's generator deconvolves with FFTs, which ONNX has no complex numbers for."""
    run = train_tiny(unpaired, tmp_path / "wiener", "cpu-fast.yaml", "train.max_steps=2")
    path = tmp_path / "wiener.onnx"
    args = ["export", "--model", str(run), "--onnx", str(path), "--dynamic", "--check-images", str(paired / "blur")]
    assert main(args) == 0
    assert "onnxruntime does fast only at power-of-two lengths" in " ".join(capsys.readouterr().out.split())
    image, _ = read_image_array(paired / "blur" / "coffee.png", 3)
    image = image[:, :61, :53]  # any size: the Wiener generator has no stride, only a minimum size (padded to)
    expected = Deblurrer(resolve_generator(run)).deblur(image)
    assert np.abs(OnnxDeblurrer(path).deblur(image) - expected).max() < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("options", [("--dynamic",), ("--input-size", "48", "--fp16")], ids=["dynamic", "fp16"])
def test_nafnet_exports(paired, tmp_path, options):
    """Its per-pixel layer norm (statistics in float32 even in an fp16 graph), global-average channel attention and
    pixel shuffles, in a network whose blocks are all open (random weights)."""
    generator = randomised(build_generator("nafnet", width=4, encoder_blocks=(1, 1), middle_blocks=1, decoder_blocks=(1, 1)))
    generator.save_pretrained(tmp_path / "nafnet")
    path = tmp_path / "nafnet.onnx"
    args = ["export", "--model", str(tmp_path / "nafnet"), "--onnx", str(path), "--check-images", str(paired / "blur")]
    assert main([*args, *options]) == 0  # within the parity tolerance on real photos, or nothing is written
    if "--dynamic" in options:
        image, _ = read_image_array(paired / "blur" / "coffee.png", 3)
        image = image[:, :61, :53]  # not a multiple of the stride: padded like any photo
        expected = Deblurrer(resolve_generator(tmp_path / "nafnet")).deblur(image)
        assert np.abs(expected - image).mean() > 0.01  # the blocks really change the photo
        assert np.abs(OnnxDeblurrer(path).deblur(image) - expected).max() < 1e-3


def test_an_export_that_differs_from_pytorch_fails_and_writes_nothing(resnet_run, paired, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(to_onnx.PARITY_TOLERANCE, "fp32", 0.0)
    path = tmp_path / "model.onnx"
    assert main(f"export --model {resnet_run} --onnx {path} --input-size 32 --check-images {paired / 'blur'}".split()) == 2
    error = capsys.readouterr().err
    assert "the exported fp32 model differs from PyTorch by" in error and "nothing was written" in error
    assert list(tmp_path.iterdir()) == []


def test_export_checks_parity_on_the_runs_own_photos_or_on_the_sample_photos(resnet_run, tmp_path, capsys):
    """Without --check-images a run brings its blurred training photos; a generator folder, or a run whose photos are
    not on this machine, the package's sample photos. Either way the check says which."""
    assert main(["export", "--model", str(resnet_run), "--onnx", str(tmp_path / "run.onnx"), "--input-size", "64"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    blurred = load_config(resnet_run / "config.yaml").data.blur
    assert f"checking parity on the run's data.blur ({blurred})" in out and "max |ONNX - PyTorch| on 2 real images" in out

    moved = tmp_path / "moved"
    shutil.copytree(resnet_run, moved)
    (moved / "config.yaml").write_text((moved / "config.yaml").read_text().replace(blurred, str(tmp_path / "gone")))
    for model in (moved, moved / "generator"):
        assert main(["export", "--model", str(model), "--onnx", str(tmp_path / "m.onnx"), "--input-size", "64"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "checking parity on" in out and "the package's sample photos (scikit-image, scikit-learn)" in out
        assert ("is not on this machine" in out) == (model == moved)
        assert "max |ONNX - PyTorch| on 2 real images" in out


def test_export_and_onnx_model_errors_are_one_line(resnet_run, paired, odd_inputs, tmp_path, capsys):
    model = ["--model", str(resnet_run)]
    cases = {
        ("--onnx", str(tmp_path / "m.onnx"), "--int8"): "--int8 needs --calibration DIR",
        ("--onnx", str(tmp_path / "m.onnx"), "--int8", "--fp16", "--calibration", str(paired)): "leave out --fp16",
        ("--onnx", str(tmp_path / "m.pt")): "must end in .onnx",
        ("--onnx", str(tmp_path / "m.onnx"), "--dynamic", "--input-size", "64"): "give one of them",
        ("--onnx", str(tmp_path / "m.onnx"), "--check-images", str(tmp_path / "nowhere")): "no such folder",
    }
    for args, message in cases.items():
        assert main(["export", *model, *args]) == 2
        assert message in capsys.readouterr().err
    # The sharp -> blurred kernel generator (a training partner, not a deblurrer) exports for one size only.
    build_generator("kernel", kernel_size=9, base_channels=4).save_pretrained(tmp_path / "kernel")
    args = [
        "--model",
        str(tmp_path / "kernel"),
        "--onnx",
        str(tmp_path / "kernel.onnx"),
        "--dynamic",
        "--check-images",
        str(paired / "blur"),
    ]
    assert main(["export", *args]) == 2
    error = capsys.readouterr().err
    assert "cannot export the kernel generator to ONNX: <class 'TypeError'>" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "kernel.onnx").exists()
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07not a protobuf at all")
    foreign = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])],
            "foreign",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        ),
        ir_version=8,
        opset_imports=[onnx.helper.make_opsetid("", 18)],
    )
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    deblur_cases = {
        ("--model", str(tmp_path / "corrupt.onnx")): "onnxruntime cannot load it",
        ("--model", str(tmp_path / "foreign.onnx")): "not exported by `cycledeblur export`",
        ("--model", str(tmp_path / "missing.onnx")): "no such file",
    }
    for args, message in deblur_cases.items():
        assert main(["deblur", *args, str(odd_inputs), "--out", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err
