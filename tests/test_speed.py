"""The fast paths compute what the plain path computes, and bench/speed.py measures the real loop end to end."""

import json
import subprocess
import sys

import pytest

from bench import speed
from cycledeblur.errors import UserError
from cycledeblur.export import to_onnx
from cycledeblur.training import train
from cycledeblur.training.tracking import read_metrics

from .conftest import ROOT, reset_accelerate_state

PLAIN = ("train.mixed_precision=no", "train.channels_last=false", "train.compile=false", "train.fused_optimizer=false")


def losses(run) -> list[dict[str, float]]:
    return [{key: value for key, value in row.items() if key.startswith("loss/")} for row in read_metrics(run)]


@pytest.mark.parametrize(
    ("switches", "tolerance"),
    [
        (("train.channels_last=true",), 1e-3),  # another summation order in the convolutions
        (("train.fused_optimizer=true",), 1e-4),  # one fused kernel: the same Adam update up to float rounding
        (("train.mixed_precision=bf16",), 5e-2),  # 8 bits of mantissa in the autocast regions
    ],
)
def test_fast_paths_compute_the_plain_losses(tiny_config, tmp_path, switches, tolerance):
    """Two steps, every loss term of both networks' updates, against the eager fp32 NCHW run of the same seed."""
    plain = losses(train(tiny_config("train.max_steps=2", *PLAIN, run="plain")).parent)
    reset_accelerate_state()  # the next run's Accelerator has another precision
    fast = losses(train(tiny_config("train.max_steps=2", *PLAIN, *switches, run="fast")).parent)
    assert len(plain) == len(fast) == 2 and set(plain[0]) == set(fast[0])
    for plain_row, fast_row in zip(plain, fast):
        for term, value in plain_row.items():
            assert fast_row[term] == pytest.approx(value, rel=tolerance, abs=tolerance * 1e-2), term


@pytest.mark.slow
def test_speed_benchmark_measures_the_loop(tmp_path):
    # An empty --onnx-precisions: no onnxruntime rows (the test below has them).
    arguments = "--config configs/demo.yaml --crops 32 --batches 2 --modes plain tuned --generators wiener --steps 2".split()
    arguments += ["--out", str(tmp_path), *"--inference-sizes 160x96 --tile 64 --inference-repeats 1 --onnx-precisions".split()]
    # The demo config (a 16-channel ResNet CycleGAN) on 32 px crops: a few seconds per row.
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "speed.py"), *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "speed.jsonl").read_text().splitlines()]
    plain, tuned, wiener, loader, whole, tiled, wiener_whole, wiener_tiled = rows
    assert (plain["mode"], tuned["mode"], loader["mode"]) == ("plain", "tuned", "data loader alone")
    # A generator family's row runs that family, and counts its own (far smaller) step.
    assert wiener["mode"] == "wiener generator" and 0 < wiener["flops_per_step"] < plain["flops_per_step"]
    assert (wiener_whole["generator"], wiener_tiled["generator"], whole["generator"]) == ("wiener", "wiener", "resnet")
    assert (whole["mode"], tiled["mode"], whole["size"], whole["precision"]) == ("deblur whole", "deblur tiled 64", "160x96", "fp32")
    seconds = [1 / row["images_per_second"] for row in (whole, tiled)]
    assert tiled["tiling_overhead"] == pytest.approx(seconds[1] / seconds[0] - 1)
    assert whole["megapixels_per_second"] == pytest.approx(160 * 96 / 1e6 * whole["images_per_second"])
    assert plain["vs_plain"] == 1.0 and tuned["vs_plain"] == pytest.approx(tuned["images_per_second"] / plain["images_per_second"])
    assert plain["flops_per_step"] > 1e8 and plain["tflops_per_second"] > 0
    assert all(row["images_per_second"] > 0 for row in rows) and plain["peak_memory_gib"] > 0.1
    assert done.stdout.strip().splitlines()[-1].startswith("python bench/speed.py --config configs/demo.yaml")


ONNX_ARGUMENTS = ["--config", str(ROOT / "configs" / "demo.yaml"), *"--modes --inference-sizes 160x96 --tile 64".split()]
ONNX_ARGUMENTS += ["--inference-repeats", "1"]


@pytest.mark.slow
def test_speed_benchmark_onnx_rows(tmp_path, capsys):
    """The generator exported to ONNX (fp32 and int8, calibrated on the demo photos) next to PyTorch eager."""
    assert speed.main([*ONNX_ARGUMENTS, "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "speed.jsonl").read_text().splitlines()]
    assert [(row["backend"], row["precision"], row["mode"]) for row in rows] == [
        (backend, precision, mode)
        for backend, precision in [("pytorch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
        for mode in ("deblur whole", "deblur tiled 64")
    ]
    assert {(row["generator"], row["size"], row["runs_on"]) for row in rows} == {("resnet", "160x96", "cpu")}
    assert len({row["threads"] for row in rows}) == 1 and rows[0]["threads"] >= 1  # onnxruntime gets torch's threads
    fp32, int8 = tmp_path / "onnx" / "resnet.onnx", tmp_path / "onnx" / "resnet.int8.onnx"
    for row in rows:
        reference = next(r for r in rows if (r["backend"], r["mode"]) == ("pytorch", row["mode"]))
        assert row["vs_pytorch_fp32"] == pytest.approx(row["megapixels_per_second"] / reference["megapixels_per_second"])
        assert row["megapixels_per_second"] == pytest.approx(160 * 96 / 1e6 * row["images_per_second"])
        if row["backend"] == "onnxruntime":
            assert row["onnx_mb"] == (fp32 if row["precision"] == "fp32" else int8).stat().st_size / 1e6
    assert int8.stat().st_size < fp32.stat().st_size / 2  # int8 weights
    table = capsys.readouterr().out
    assert "| deblur whole | resnet | 160x96 | onnxruntime | cpu | int8 |" in table


def test_speed_benchmark_notes_a_failed_export(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise UserError("cannot export the resnet generator to ONNX: \x1b[96mno\x1b[0m\nsecond line")

    monkeypatch.setattr(to_onnx, "export_checked", refuse)
    assert speed.main([*ONNX_ARGUMENTS, "--out", str(tmp_path), "--onnx-precisions", "int8"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "speed.jsonl").read_text().splitlines()]
    failed, whole, tiled = rows  # the PyTorch rows still run
    assert (failed["mode"], failed["backend"], failed["precision"]) == ("onnx export", "onnxruntime", "int8")
    assert failed["note"] == "export failed: UserError: cannot export the resnet generator to ONNX: no"
    assert (whole["backend"], tiled["backend"]) == ("pytorch", "pytorch")


def test_reference_row_times_the_reference_from_its_own_log(tmp_path):
    """A stand-in for the reference's train.py, printing its per-iteration times as the 2018 reference does: the row
    passes it the old flags and the folders, and times the last --steps iterations (compute per image x batch +
    the wait for the batch)."""
    reference = tmp_path / "reference"
    (reference / "options").mkdir(parents=True)
    (reference / "options" / "base_options.py").write_text("parser.add_argument('--loadSize')\n")
    (reference / "train.py").write_text(
        "import sys, time\n"
        "args = sys.argv[1:]\n"
        "assert args[args.index('--batchSize') + 1] == '2' and args[args.index('--fineSize') + 1] == '64', args\n"
        "assert sorted(__import__('os').listdir(args[args.index('--dataroot') + 1])) == ['trainA', 'trainB']\n"
        "for i in range(1, 100):\n"
        "    print(f'(epoch: 1, iters: {i}, time: {0.5 if i > 2 else 9.0:.3f}, data: 0.100) D_A: 1.0', flush=True)\n"
        "    time.sleep(0.01)\n"
    )
    data = tmp_path / "data"
    for side in ("blur", "sharp"):
        (data / side).mkdir(parents=True)
    args = speed.parse_args(["--steps", "2", "--out", str(tmp_path / "out"), "--reference", str(reference)])
    row = speed.reference_row(args, crop=64, batch=2, data=data)
    assert row["images_per_second"] == pytest.approx(2 * 2 / (2 * (0.5 * 2 + 0.1)))  # the warm-up's 9 s left out
    assert row["peak_memory_gib"] > 0
