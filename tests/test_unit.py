"""UNIT (`train.mode: unit`) on real photos: it learns, logs every term, delivers a plain deterministic generator that
`deblur` and `export` take, pushes and fine-tunes from its runs, and says in one line what a config gets wrong."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cycledeblur.cli import main
from cycledeblur.config import load_config
from cycledeblur.errors import ConfigError, UserError
from cycledeblur.export.runtime import OnnxDeblurrer
from cycledeblur.image_arrays import read_image_array
from cycledeblur.inference import Deblurrer, resolve_generator
from cycledeblur.models import UnitGenerator, UnitTranslator, load_generator
from cycledeblur.training import train
from cycledeblur.training.init_from import initial_weights
from cycledeblur.training.tracking import read_metrics

from .conftest import ROOT, reset_accelerate_state

EVERY_TERM = {
    "loss/reconstruction",
    "loss/kl",
    "loss/blur_kl",
    "loss/cycle",
    "loss/cycle_kl",
    "loss/adv_deblur",
    "loss/adv_reblur",
    "loss/identity_deblur",
    "loss/identity_reblur",
    "loss/tv",
    "loss/color",
    "loss/ssim",
    "loss/d_sharp",
    "loss/d_blurred",
}


@pytest.fixture(scope="module")
def unit_run(unpaired, tmp_path_factory):
    """A tiny UNIT with the blur code and every optional term, trained on real photos until its autoencoders learn."""
    run = tmp_path_factory.mktemp("unit") / "run"
    overrides = [
        f"data.blur={unpaired / 'blur'}",
        f"data.sharp={unpaired / 'sharp'}",
        f"output_dir={run}",
        "data.crop_size=32",
        "data.num_workers=0",
        "model.generator.base_channels=8",
        "model.generator.n_blocks=1",
        "model.generator.norm=none",  # as configs/unit-cpu-fast.yaml: instance norm strips the colors a short run needs
        "model.discriminator.name=patchgan",
        "model.discriminator.base_channels=4",
        "model.discriminator.n_layers=2",
        "model.blur_code=true",
        "model.blur_code_size=4",
        "loss.identity_deblur=0.1",
        "loss.identity_reblur=0.1",
        "loss.tv=0.01",
        "loss.color=0.1",
        "loss.ssim=0.1",
        "train.max_steps=60",
        "train.batch_size=2",
        "train.lr_g=1e-3",
        "train.ema_decay=0",
        "train.log_every=1",
        "train.sample_every=30",
        "train.sample_size=32",
        "train.checkpoint_every=60",
        "train.mixed_precision=no",
    ]
    train(load_config(ROOT / "configs" / "unit.yaml", overrides))
    reset_accelerate_state()
    return run


def test_unit_learns_logs_every_term_and_delivers_its_blurred_to_sharp_direction(unit_run):
    metrics = read_metrics(unit_run)
    assert len(metrics) == 60 and EVERY_TERM <= set(metrics[-1])
    reconstruction = [row["loss/reconstruction"] for row in metrics]
    assert sum(reconstruction[-10:]) < 0.7 * sum(reconstruction[:10]), reconstruction  # the autoencoders learn
    assert all(np.isfinite(row[term]) for row in metrics for term in EVERY_TERM)
    assert sorted(path.name for path in (unit_run / "samples").iterdir()) == ["step_0000030.png", "step_0000060.png"]

    generator = load_generator(unit_run / "generator")
    assert isinstance(generator, UnitGenerator) and generator.architecture == "unit"
    assert "UNIT" in (unit_run / "generator" / "README.md").read_text()
    # Without a weight average the delivered generator is the checkpoint's translator, read blurred -> sharp.
    translator = UnitTranslator(channels=3, base_channels=8, n_blocks=1, norm="none", blur_code_size=4)
    translator.load_state_dict(load_file(unit_run / "checkpoints" / "step_0000060" / "model.safetensors"))
    delivered = load_file(unit_run / "generator" / "model.safetensors")
    assert all(torch.equal(value, delivered[key]) for key, value in translator.blurred_to_sharp.state_dict().items())
    # Posterior means at inference: the same photo deblurs the same way twice.
    image, _ = read_image_array(next((unit_run.parent.parent).glob("unpaired*/blur/*.png")), 3)
    deblurrer = Deblurrer(resolve_generator(unit_run))
    first = deblurrer.deblur(image)
    assert np.array_equal(first, deblurrer.deblur(image)) and np.abs(first - image).mean() > 0.01


def test_a_unit_generator_deblurs_and_is_scored_from_the_cli_and_exports_to_onnx_with_parity(unit_run, paired, tmp_path):
    out = tmp_path / "deblurred"
    assert main(["deblur", "--model", str(unit_run), str(paired / "blur"), "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in (paired / "blur").iterdir())
    scores = tmp_path / "scores.json"
    assert (
        main(
            ["evaluate", "--model", str(unit_run), "--blur", str(paired / "blur"), "--sharp", str(paired / "sharp"), "--json", str(scores)]
        )
        == 0
    )
    assert json.loads(scores.read_text())["n_images"] == len(list((paired / "blur").iterdir()))
    onnx = tmp_path / "unit.onnx"
    assert main(["export", "--model", str(unit_run), "--onnx", str(onnx), "--dynamic", "--check-images", str(paired / "blur")]) == 0
    image, _ = read_image_array(paired / "blur" / "coffee.png", 3)
    image = image[:, :61, :53]  # not a multiple of the stride: padded like any photo
    expected = Deblurrer(resolve_generator(unit_run)).deblur(image)
    assert np.abs(OnnxDeblurrer(onnx).deblur(image) - expected).max() < 1e-3


def test_a_pushed_unit_run_is_a_starting_point_for_another(unit_run, unpaired, tmp_path):
    """`push --include-discriminators` stages the translator and both discriminators beside the delivered generator;
    a unit run started from that folder (learning nothing: lr 0) delivers the generator it started from."""
    staged = tmp_path / "staged"
    assert main(["push", "--model", str(unit_run), "--repo-id", "me/unit", "--include-discriminators", "--dry-run", str(staged)]) == 0
    assert {"translator", "discriminator_sharp", "discriminator_blurred"} <= {path.name for path in staged.iterdir()}
    assert UnitTranslator.from_pretrained(staged / "translator").blur_code_size == 4
    pushed, _ = initial_weights(str(staged))
    assert sorted(pushed) == ["deblur", "discriminator_blurred", "discriminator_sharp", "translator"]
    reset_accelerate_state()
    config = load_config(
        unit_run / "config.yaml",
        [f"output_dir={tmp_path / 'again'}", f"model.init_from={staged}", "train.max_steps=2", "train.lr_g=0", "train.checkpoint_every=2"],
    )
    train(config)
    started, source = (load_file(folder / "model.safetensors") for folder in (tmp_path / "again" / "generator", unit_run / "generator"))
    assert all(torch.equal(started[key], source[key]) for key in source)


def test_the_general_model_cannot_start_a_unit_run(tiny_config):
    with pytest.raises(UserError, match="its deblur network does not have this run's architecture"):
        train(tiny_config("model.init_from=general", "train.max_steps=1", base="unit.yaml"))


@pytest.mark.parametrize(
    ("base", "override", "message"),
    [
        ("default.yaml", "model.blur_code=true", "model.blur_code belongs to train.mode=unit (this run is unpaired)"),
        ("paired.yaml", "loss.vae.kl=0.1", "loss.vae belongs to train.mode=unit (this run is paired)"),
        ("default.yaml", "model.generator=unit", "model.generator=unit belongs to train.mode=unit"),
        ("default.yaml", "train.mode=unit", "train.mode=unit trains the generator family unit: set model.generator.name=unit"),
        ("unit.yaml", "data.crop_size=12", "data.crop_size=12 leaves a latent code of 3 px with model.generator.n_downsampling=2"),
        ("unit.yaml", "data.crop_schedule={0: 8}", "data.crop_schedule[0]=8 leaves a latent code of 2 px"),
        ("unit.yaml", "model.generator.encoder=vit", "unknown encoder 'vit'; valid encoders: light, resnet"),
        ("unit.yaml", "model.reblur_generator=kernel", "model.reblur_generator is for train.mode=unpaired"),
        ("unit.yaml", "loss.vae.kl=-1", "loss.vae.kl is a weight: it must be >= 0"),
        ("unit.yaml", "loss.vae.prior=laplace", "unknown config key 'loss.vae.prior'"),
    ],
)
def test_unit_options_out_of_place_are_one_line_naming_the_key(base, override, message):
    with pytest.raises(ConfigError) as error:
        load_config(ROOT / "configs" / base, [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_blur_code_needs_a_crop_its_encoder_can_halve_four_times():
    with pytest.raises(ConfigError, match="data.crop_size=8: the blur code's encoder halves a crop four times"):
        load_config(ROOT / "configs" / "unit.yaml", ["model.blur_code=true", "data.crop_size=8", "model.generator.n_downsampling=1"])


def test_the_translator_shares_its_latent_layers_and_its_view_is_no_copy():
    translator = UnitTranslator(channels=3, base_channels=4, n_blocks=1, shared_blocks=2, blur_code_size=3)
    view = translator.blurred_to_sharp
    assert view.encoder is translator.encoders["blurred"] and view.decoder is translator.decoders["sharp"]
    assert view.shared_encoder is translator.shared_encoder  # one set of shared weights for both domains
    names = list(translator.state_dict())
    assert len(names) == len(set(names)) and not any(name.startswith("blurred_to_sharp") for name in names)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    code = translator(images, "encode", "blurred")
    assert code.shape == (2, 16, 8, 8)
    assert torch.equal(view(images), translator(code, "decode", "sharp"))
    mean, log_variance = translator(images, "blur_code")
    assert mean.shape == log_variance.shape == (2, 3)
    assert translator(code, "decode", "blurred", mean).shape == images.shape


def test_a_residual_unit_starts_as_the_identity_and_learns_a_correction_with_the_blur_code(tiny_config, paired):
    """`residual_output`: every decoder's output corrects the photo its code came from, so the untrained translator
    returns each real photo as it is, and the delivered generator is still the translator's blurred -> sharp view."""
    image, _ = read_image_array(paired / "blur" / "coffee.png", 3)
    batch = torch.from_numpy(image[None, :, :64, :64]) * 2 - 1
    translator = UnitTranslator(channels=3, base_channels=4, n_blocks=1, blur_code_size=2, residual_output=True)
    code = translator(batch, "encode", "sharp")
    assert torch.equal(translator(code, "decode", "blurred", torch.zeros(1, 2), batch), batch)
    assert torch.equal(translator.blurred_to_sharp(batch), batch)

    config = tiny_config(
        "model.generator.residual_output=true", "model.blur_code=true", "train.lr_g=1e-3", "train.max_steps=20", base="unit.yaml"
    )
    run = train(config).parent
    generator = load_generator(run / "generator")
    assert generator.residual_output
    deblurred = Deblurrer(resolve_generator(run)).deblur(image)
    assert 0 < np.abs(deblurred - image).mean() < 0.1  # a correction, learned from zero


def test_source_skip_decoders_read_the_photo_they_decode_and_the_run_delivers_them(tiny_config, paired):
    """`source_skip`: a decoder reads the photo its code came from at full resolution, so one code decodes
    differently against another photo (where a plain decoder ignores the photo); a run delivers that generator."""
    image, _ = read_image_array(paired / "blur" / "coffee.png", 3)
    batch = torch.from_numpy(image[None, :, :64, :64]) * 2 - 1
    mirrored = batch.flip(-1)
    for source_skip in (False, True):
        translator = UnitTranslator(channels=3, base_channels=4, n_blocks=1, norm="none", source_skip=source_skip)
        code = translator(batch, "encode", "blurred")
        against_photo, against_mirror = (translator(code, "decode", "sharp", source=photo) for photo in (batch, mirrored))
        assert torch.equal(against_photo, against_mirror) is not source_skip
        assert torch.equal(translator.blurred_to_sharp(batch), against_photo)

    run = train(tiny_config("model.generator.source_skip=true", "train.max_steps=4", base="unit.yaml")).parent
    generator = load_generator(run / "generator")
    assert isinstance(generator, UnitGenerator) and generator.config_dict()["source_skip"] is True
    deblurred = Deblurrer(resolve_generator(run)).deblur(image)
    assert deblurred.shape == image.shape and np.isfinite(deblurred).all()


@pytest.mark.parametrize("cycle_trains_reblur", [True, False])
def test_without_cycle_trains_reblur_the_way_back_to_sharp_leaves_the_blurred_decoder_alone(paired, cycle_trains_reblur):
    from cycledeblur.config import LossConfig, VaeLossConfig
    from cycledeblur.models import PatchDiscriminator
    from cycledeblur.training.unit import unit_terms

    torch.manual_seed(0)
    image, _ = read_image_array(paired / "blur" / "coffee.png", 3)
    blurred = torch.from_numpy(image[None, :, :32, :32]) * 2 - 1
    sharp = torch.from_numpy(image[None, :, -32:, -32:]) * 2 - 1
    translator = UnitTranslator(channels=3, base_channels=4, n_blocks=1, norm="none", residual_output=True, source_skip=True)
    discriminators = {name: PatchDiscriminator(base_channels=4, n_layers=2) for name in ("discriminator_sharp", "discriminator_blurred")}
    loss_cfg = LossConfig(vae=VaeLossConfig(), cycle_blurred=0.0, cycle_trains_reblur=cycle_trains_reblur)
    # Past the zero-initialised heads, so that the blurred translation depends on the blurred decoder's weights.
    _, _, terms, _ = unit_terms(translator, discriminators, blurred, sharp, loss_cfg, 0)
    terms["adv_reblur"].backward()
    torch.optim.SGD(translator.parameters(), lr=0.1).step()
    translator.zero_grad()

    _, _, terms, _ = unit_terms(translator, discriminators, blurred, sharp, loss_cfg, 0)
    terms["cycle"].backward()
    grads = {
        domain: [p.grad for p in translator.decoders[domain].parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        for domain in ("sharp", "blurred")
    }
    assert grads["sharp"] and bool(grads["blurred"]) == cycle_trains_reblur
