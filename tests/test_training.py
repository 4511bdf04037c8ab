"""Training for real on real photos: the loop learns, the run folder is complete, resume is exact, 2 processes agree."""

import json
import os
import socket
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from cycledeblur.models import load_generator
from cycledeblur.training import train
from cycledeblur.training.tracking import read_metrics

from .conftest import ROOT, STABILITY_KNOBS, TINY_NETWORKS, TINY_OVERRIDES, checkpoint_weights


def test_training_learns_and_fills_the_run_folder(tiny_config, tmp_path):
    # A plain (non-residual) generator starts far from the identity, so the cycle loss has room to fall; without
    # instance norm (which strips each channel's mean) a tiny one learns absolute colors within tens of steps.
    config = tiny_config(
        "train.max_steps=80",
        "train.checkpoint_every=40",
        "train.keep_checkpoints=1",
        "train.sample_every=40",
        "model.generator.residual_output=false",
        "model.generator.norm=none",
        "model.generator.base_channels=8",
        "loss.tv=0.01",
        "loss.color=0.1",
        "train.lr_g=2e-3",
    )
    generator_dir = train(config)
    run = tmp_path / "run"
    metrics = read_metrics(run)
    cycle = [row["loss/cycle"] for row in metrics]
    assert len(cycle) == 80
    assert sum(cycle[-10:]) < 0.7 * sum(cycle[:10]), cycle  # batch to batch noise is large: compare 10-step means
    assert {
        "loss/adv_deblur",
        "loss/identity_deblur",
        "loss/identity_reblur",
        "loss/tv",
        "loss/color",
        "loss/d_sharp",
        "lr/generator",
    } <= set(metrics[-1])
    assert (run / "config.yaml").is_file()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_0000080"]  # keep_checkpoints=1
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000040.png", "step_0000080.png"]
    assert generator_dir == run / "generator"
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in generator_dir.iterdir()}
    card = (generator_dir / "README.md").read_text()
    assert "Training steps: 80" in card and "library_name: cycledeblur" in card
    assert load_generator(generator_dir).training is False


PROGRESSIVE = ("data.crop_schedule={0: 24, 6: 32}",)  # the crops grow after the resume point
SEMI_PAIRED = ("data.paired_blur={paired}/blur", "data.paired_sharp={paired}/sharp")
# Spectral norm's power-iteration vectors are state too; the multi-scale discriminator holds two PatchGANs.
SPECTRAL_MULTISCALE = ("model.discriminator.name=multiscale_patchgan", "model.discriminator.spectral_norm=true")
# Scored at steps 0, 3, 6 and 8: the best weights kept before the resume point travel in the checkpoint.
VALIDATION = ("data.val_blur={paired}/blur", "data.val_sharp={paired}/sharp", "train.val_every=3", "train.keep_best=true")


@pytest.mark.parametrize(
    ("base", "accumulation", "knobs"),
    [
        ("default.yaml", 1, ()),
        ("default.yaml", 2, ()),
        ("cpu-fast.yaml", 1, ()),
        ("default.yaml", 1, STABILITY_KNOBS),
        ("default.yaml", 1, PROGRESSIVE),
        ("cpu-fast.yaml", 1, SEMI_PAIRED),
        ("default.yaml", 1, SPECTRAL_MULTISCALE),
        ("cpu-fast.yaml", 1, VALIDATION),
        ("default.yaml", 1, ("train.batch_size=4",)),  # 3 images a side fill a batch of 4: each pass lists them twice
        # The deblurrer waits across the resume point; ranking by the worst pair needs the first scoring's per-pair PSNRs.
        ("adapt.yaml", 1, (*VALIDATION, "train.freeze_steps=6", "train.keep_best_by=worst")),
        # UNIT draws its codes' noise at every step; its weight average follows the whole translator.
        ("unit.yaml", 1, ()),
        ("unit.yaml", 2, ("model.blur_code=true", *STABILITY_KNOBS, *VALIDATION)),
    ],
)
def test_resume_is_exact(tiny_config, paired, tmp_path, base, accumulation, knobs):
    """N steps, stop, resume, N steps == 2N uninterrupted steps, bit for bit (CPU). The cpu-fast recipe's reblur
    generator and instance noise draw random numbers, so this also checks that the random state is restored; the
    knobs also put an EMA (its own state), an n_critic schedule, a crop size change (the image pool must start over
    at the new size) and a third (pair) loader across the resume point."""
    # batch 1 over 3 images per side: the resume point (step 4) falls mid-epoch, so batch skipping is exercised.
    common = (
        "train.max_steps=8",
        "train.checkpoint_every=4",
        "train.keep_checkpoints=5",
        "train.batch_size=1",
        f"train.grad_accum_steps={accumulation}",
        "train.pool_size=2",
        *(knob.replace("{paired}", str(paired)) for knob in knobs),
    )
    train(tiny_config(*common, run="straight", base=base))
    checkpoint = tmp_path / "straight" / "checkpoints" / "step_0000004"
    train(tiny_config(*common, run="resumed", base=base), resume=str(checkpoint))
    straight, resumed = checkpoint_weights(tmp_path / "straight", 8), checkpoint_weights(tmp_path / "resumed", 8)
    assert len(straight) == (3 if base == "unit.yaml" else 4)  # both generators (or the translator), both discriminators
    for name in straight:
        for key in straight[name]:
            assert (straight[name][key] == resumed[name][key]).all(), f"{name}:{key}"
    delivered = [load_file(tmp_path / run / "generator" / "model.safetensors") for run in ("straight", "resumed")]
    assert all((delivered[0][key] == delivered[1][key]).all() for key in delivered[0])  # the EMA, with knobs
    # And the run really resumed: it has no checkpoint of its own before step 4.
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["step_0000008"]


def test_cpu_fast_recipe_learns_to_deconvolve(tiny_config, unpaired):
    """The Wiener generator starts nearly as the identity (gate 0.018); the cycle through the kernel generator
    opens its gate."""
    import torch

    from cycledeblur.data import list_images, load_image_tensor

    generator_dir = train(tiny_config("train.max_steps=40", "train.lr_g=5e-3", base="cpu-fast.yaml"))
    generator = load_generator(generator_dir)
    blurred = torch.stack([load_image_tensor(path, 3) for path in list_images(unpaired / "blur")]) * 2 - 1
    with torch.no_grad():
        gate = generator.estimate(blurred)[2]
    assert gate.mean() > 0.1, gate


def test_stability_knobs_ema_n_critic_and_instance_noise(tiny_config, tmp_path):
    config = tiny_config("train.max_steps=6", "train.checkpoint_every=6", *STABILITY_KNOBS)
    assert [config.train.instance_noise_at(step) for step in (0, 3, 6)] == pytest.approx([0.2, 0.1, 0.0])
    train(config)
    run = tmp_path / "run"
    # The discriminators learn at every step, the generators at steps 0 and 3 only (n_critic 3), logged as steps 1 and 4.
    rows = read_metrics(run)
    assert [row["step"] for row in rows if "loss/cycle" in row] == [1, 4]
    assert all("loss/d_sharp" in row for row in rows)
    # The run delivers the weights' moving average, not the last weights.
    trained = checkpoint_weights(run, 6)["model.safetensors"]
    delivered = load_file(run / "generator" / "model.safetensors")
    assert set(delivered) == set(trained) and any((delivered[key] != trained[key]).any() for key in trained)


def test_resume_without_checkpoint_is_a_user_error(tiny_config):
    from cycledeblur.errors import UserError

    with pytest.raises(UserError, match="no checkpoint"):
        train(tiny_config("train.max_steps=2"), resume=True)


def run_command(args, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def cli_overrides(unpaired, run_dir, *extra):
    """The default config's tiny networks and training on these photos; `extra` may resize the networks of another config."""
    return [f"data.blur={unpaired / 'blur'}", f"data.sharp={unpaired / 'sharp'}", f"output_dir={run_dir}", *TINY_OVERRIDES, *extra]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["unpaired", "paired", "unit"])
def test_two_processes_with_torchrun_keep_identical_weights(unpaired, paired, tmp_path, mode):
    """Paired: the discriminator idles during pretraining (step 1), then joins; the crops grow at step 3. UNIT: one
    translator runs every pass of the step through data-parallel training, its weight average and blur code too."""
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    run = tmp_path / "ddp"
    extra, config = [], "configs/default.yaml"
    if mode == "paired":
        extra = ["train.mode=paired", "train.pretrain_steps=1", "data.crop_schedule={0: 24, 3: 32}"]
    if mode == "unit":
        extra, config = [*TINY_NETWORKS["unit.yaml"], "model.blur_code=true", "train.ema_decay=0.9"], "configs/unit.yaml"
    data = paired if mode == "paired" else unpaired
    two_processes = [torchrun, *f"--standalone --nproc_per_node 2 train.py --config {config}".split()]
    run_command(
        [*two_processes, *cli_overrides(data, run, "train.max_steps=4", "train.checkpoint_every=2", "train.batch_size=1", *extra)],
        tmp_path,
    )
    for step in (2, 4):
        replicas = json.loads((run / "checkpoints" / f"step_{step:07d}" / "replicas.json").read_text())
        assert replicas["processes"] == 2
        rank0, rank1 = replicas["fingerprints"]
        assert rank0 == rank1
    assert (run / "generator" / "model.safetensors").is_file()
    if mode == "unpaired":  # resumed on 2 processes from step 2: step 4 as in the uninterrupted run, bit for bit
        resumed = tmp_path / "ddp-resumed"
        run_command(
            [
                *two_processes,
                "--resume",
                str(run / "checkpoints" / "step_0000002"),
                *cli_overrides(data, resumed, "train.max_steps=4", "train.checkpoint_every=2", "train.batch_size=1"),
            ],
            tmp_path,
        )
        straight, again = checkpoint_weights(run, 4), checkpoint_weights(resumed, 4)
        assert all((straight[name][key] == again[name][key]).all() for name in straight for key in straight[name])
        # Restarted on one process: it goes on from step 2 and says, once, that the batches are no longer the same.
        on_one = tmp_path / "ddp-on-one"
        result = run_command(
            [
                sys.executable,
                "train.py",
                "--config",
                "configs/default.yaml",
                "--resume",
                str(run / "checkpoints" / "step_0000002"),
                *cli_overrides(data, on_one, "train.max_steps=4", "train.checkpoint_every=2", "train.batch_size=1"),
            ],
            tmp_path,
        )
        assert result.stdout.count("written by 2 process(es), this run has 1: the data order changes") == 1
        assert [row["step"] for row in read_metrics(on_one)] == [3, 4]
        assert json.loads((on_one / "checkpoints" / "step_0000004" / "replicas.json").read_text())["processes"] == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_localhost_train_and_agree(unpaired, tmp_path):
    """Two machines as Accelerate meets them under a multi-node launch: one `torchrun` per node, one process each,
    meeting at a c10d rendezvous (here on 127.0.0.1, on a cluster the first node's address)."""
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    run, port = tmp_path / "nodes", free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    overrides = cli_overrides(unpaired, run, "train.max_steps=2", "train.checkpoint_every=2", "train.batch_size=1")
    nodes = [
        subprocess.Popen(
            [
                *(torchrun, "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank)),
                *("--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "two-nodes"),
                *"train.py --config configs/default.yaml".split(),
                *overrides,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    replicas = json.loads((run / "checkpoints" / "step_0000002" / "replicas.json").read_text())
    assert replicas["processes"] == 2 and replicas["in_sync"]
    assert replicas["fingerprints"][0] == replicas["fingerprints"][1]
    assert [row["step"] for row in read_metrics(run)] == [1, 2]


@pytest.mark.slow
def test_accelerate_launch_runs_train_py(unpaired, tmp_path):
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    run = tmp_path / "launched"
    run_command(
        [
            accelerate,
            "launch",
            "--cpu",
            "--num_processes",
            "1",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "train.py",
            "--config",
            "configs/demo.yaml",
            *cli_overrides(unpaired, run, "train.max_steps=3"),
        ],
        tmp_path,
    )
    assert [row["step"] for row in read_metrics(run)] == [1, 2, 3]


@pytest.mark.parametrize("cycle_trains_reblur", [True, False])
def test_cycle_trains_reblur_switch(photo_folder, cycle_trains_reblur):
    """With the switch off, the cycle loss reaches the deblurring generator but not the reblurring one."""
    import torch

    from cycledeblur.config import LossConfig
    from cycledeblur.data import load_image_tensor
    from cycledeblur.models import KernelBlurGenerator, PatchDiscriminator, ResnetGenerator
    from cycledeblur.training.cyclegan import generator_terms

    torch.manual_seed(0)
    photos = [load_image_tensor(photo_folder / f"{name}.png", 3)[:, :32, :32] for name in ("astronaut", "coffee")]
    sharp, blurred = photos[0][None] * 2 - 1, photos[1][None] * 2 - 1
    deblur = ResnetGenerator(base_channels=4, n_blocks=1, residual_output=False)
    reblur = KernelBlurGenerator(kernel_size=5, base_channels=4)
    discriminators = {
        "discriminator_sharp": PatchDiscriminator(base_channels=4, n_layers=2),
        "discriminator_blurred": PatchDiscriminator(base_channels=4, n_layers=2),
    }
    loss_cfg = LossConfig(cycle_trains_reblur=cycle_trains_reblur)
    _, _, terms, _ = generator_terms(deblur, reblur, {"reblur": reblur, **discriminators}, blurred, sharp, loss_cfg)
    terms["cycle"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in deblur.parameters())
    reblur_grads = [p.grad for p in reblur.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert bool(reblur_grads) == cycle_trains_reblur
    assert all(p.requires_grad for p in reblur.parameters())  # unfrozen again afterwards
    assert all(p.grad is None for discriminator in discriminators.values() for p in discriminator.parameters())


def test_without_the_blurred_side_of_the_cycle_the_deblurrer_learns_from_pseudo_pairs(photo_folder):
    import torch

    from cycledeblur.config import LossConfig
    from cycledeblur.data import load_image_tensor
    from cycledeblur.models import KernelBlurGenerator, PatchDiscriminator, ResnetGenerator
    from cycledeblur.training.cyclegan import generator_terms

    torch.manual_seed(0)
    photos = [load_image_tensor(photo_folder / f"{name}.png", 3)[:, :32, :32] for name in ("astronaut", "coffee")]
    sharp, blurred = photos[0][None] * 2 - 1, photos[1][None] * 2 - 1
    deblur = ResnetGenerator(base_channels=4, n_blocks=1, residual_output=False)
    reblur = KernelBlurGenerator(kernel_size=5, base_channels=4)
    discriminators = {name: PatchDiscriminator(base_channels=4, n_layers=2) for name in ("discriminator_sharp", "discriminator_blurred")}
    networks = {"reblur": reblur, **discriminators}
    calls = []
    reblur.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0]))
    loss_cfg = LossConfig(cycle_blurred=0.0, cycle_trains_reblur=False, identity_reblur=0.0, adv_deblur=0.0)
    sharp_calls = []
    discriminators["discriminator_sharp"].register_forward_hook(lambda module, inputs, output: sharp_calls.append(1))
    _, fake_blurred, terms, weights = generator_terms(deblur, reblur, networks, blurred, sharp, loss_cfg)
    assert "adv_deblur" not in terms and not sharp_calls  # without its weight, the sharp discriminator is not consulted
    assert weights["cycle"] == loss_cfg.cycle
    assert len(calls) == 1 and calls[0] is sharp  # the deblurred photos are never reblurred
    expected = torch.nn.functional.l1_loss(deblur(fake_blurred.detach()), sharp)
    assert torch.allclose(terms["cycle"], expected)


def test_lab_color_loss_trains_and_needs_rgb(tiny_config):
    from cycledeblur.errors import ConfigError

    run = train(tiny_config("train.max_steps=2", "loss.color=1", "loss.color_space=lab")).parent
    color = [row["loss/color"] for row in read_metrics(run)]
    assert color[0] == 0 < color[-1]  # the residual generators start as the identity, then move
    with pytest.raises(ConfigError, match="color_space lab"):
        train(tiny_config("train.max_steps=2", "loss.color=1", "loss.color_space=lab", "data.channels=1"))


def test_multiscale_discriminator_trains(tiny_config):
    run = train(tiny_config("train.max_steps=2", "model.discriminator.name=multiscale_patchgan")).parent
    assert all(row["loss/d_sharp"] > 0 for row in read_metrics(run))


def test_unet_generator_with_attention_trains(tiny_config):
    generator = "model.generator={name: unet, base_channels: 4, n_downsampling: 3, attention: true}"
    run = train(tiny_config("train.max_steps=2", generator)).parent
    assert len(read_metrics(run)) == 2 and load_generator(run / "generator").architecture == "unet"


@pytest.mark.parametrize(
    "options",
    [
        ("model.generator={name: unet, base_channels: 4, n_downsampling: 2, norm: batch}",),
        ("model.generator.upsample=transposed", "loss.tv=0.1"),
        ("model.discriminator.spectral_norm=true", "model.discriminator.norm=none"),
    ],
)
def test_network_options_train(tiny_config, options):
    """U-Net with BatchNorm, transposed-conv upsampling with the TV loss against its checkerboard, spectral norm."""
    run = train(tiny_config("train.max_steps=2", *options)).parent
    rows = read_metrics(run)
    assert len(rows) == 2 and all(row["loss/d_sharp"] > 0 for row in rows)
    assert ("loss/tv" in rows[-1]) == ("loss.tv=0.1" in options)


def test_light_generator_trains(tiny_config):
    run = train(tiny_config("train.max_steps=2", "model.generator={name: light, base_channels: 4, n_blocks: 1}")).parent
    assert load_generator(run / "generator").architecture == "light"


def test_divergence_stops_with_one_message_and_keeps_finite_checkpoints(unpaired, tmp_path, capsys):
    """A learning rate of 1e4 blows the weights up within a few steps: the run stops at the first non-finite loss or
    weight, says so in one line, and never writes a checkpoint of broken weights (nor prunes good ones for it)."""
    from cycledeblur.cli import main

    run = tmp_path / "diverged"
    overrides = cli_overrides(
        unpaired,
        run,
        "train.max_steps=50",
        "train.checkpoint_every=1",
        "train.keep_checkpoints=1",
        "train.lr_g=1e4",
        "train.lr_d=1e4",
        "model.generator.residual_output=false",
        "model.generator.norm=none",
    )
    assert main(["train", "--config", str(ROOT / "configs" / "default.yaml"), *overrides]) == 2
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "training diverged by step" in errors[0] and "Traceback" not in stderr, stderr
    for checkpoint in (run / "checkpoints").glob("step_*"):
        tensors = checkpoint_weights(run, int(checkpoint.name.removeprefix("step_")))
        assert all(value.isfinite().all() for model in tensors.values() for value in model.values())


def test_a_kernel_generator_shows_its_kernels_and_their_shape(tiny_config, tmp_path):
    """An unpaired run with the `kernel` reblurring generator logs the shape of the kernels it draws for sharp
    photos, and saves them beside each sample grid, one per grid column."""
    from PIL import Image

    config = tiny_config("train.max_steps=4", "train.sample_every=2", "train.log_every=2", base="cpu-fast.yaml")
    train(config)
    rows = [row for row in read_metrics(tmp_path / "run") if "kernel/size_px" in row]
    assert [row["step"] for row in rows] == [2, 4]
    # The kernel starts as a Gaussian of 1.5 px: spread 1.5 * sqrt(2) px, round.
    assert rows[0]["kernel/size_px"] == pytest.approx(1.5 * 2**0.5, rel=0.2) and rows[0]["kernel/elongation"] < 2
    samples = tmp_path / "run" / "samples"
    assert sorted(p.name for p in samples.iterdir()) == [
        "step_0000002.png",
        "step_0000002_kernels.png",
        "step_0000004.png",
        "step_0000004_kernels.png",
    ]
    with Image.open(samples / "step_0000002.png") as grid, Image.open(samples / "step_0000002_kernels.png") as kernels:
        columns, zoomed = (grid.width - 2) // (grid.height // 3), config.model.reblur_generator.options["kernel_size"] * 8
        assert kernels.height == zoomed + 4 and kernels.width == columns * (zoomed + 2) + 2


def test_the_reblurring_generator_can_learn_at_its_own_rate(tiny_config, tmp_path):
    """`train.lr_reblur`: with the deblurring generator's rate at 0, only the reblurring one moves."""
    train(tiny_config("train.max_steps=2", "train.checkpoint_every=1", "train.lr_g=0", "train.lr_reblur=1e-3", base="cpu-fast.yaml"))
    first, second = checkpoint_weights(tmp_path / "run", 1), checkpoint_weights(tmp_path / "run", 2)
    deblur, reblur = "model.safetensors", "model_1.safetensors"  # in the order the loop prepares them
    assert all((first[deblur][key] == second[deblur][key]).all() for key in first[deblur])
    assert any((first[reblur][key] != second[reblur][key]).any() for key in first[reblur])
