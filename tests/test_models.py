import copy
import json
import math
import shutil

import huggingface_hub.constants
import kornia
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from skimage import data

from cycledeblur.errors import ConfigError, UserError
from cycledeblur.models import (
    DISCRIMINATORS,
    GENERATORS,
    NAFNetGenerator,
    PatchDiscriminator,
    ResnetGenerator,
    build_discriminator,
    build_generator,
    load_generator,
)

from .conftest import randomised

TINY = {"base_channels": 4, "n_blocks": 1}
# Two levels (size multiple 4), blocks at every depth, the decoder unlike the encoder.
TINY_NAFNET = {"width": 4, "encoder_blocks": (1, 2), "middle_blocks": 1, "decoder_blocks": (2, 1)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: with more threads, OpenMP overhead dominates, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    """A real photograph, 1x3x64x64 in [-1, 1]."""
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1
    return F.interpolate(image, size=(64, 64), mode="area").clamp(-1, 1)


def images(channels: int, size: int = 32, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, channels, size, size) * 2 - 1


@pytest.mark.parametrize(
    ("kwargs", "channels_in", "channels_out"),
    [
        ({"upsample": "transposed"}, 3, 3),
        ({"upsample": "resize_conv", "n_blocks": 3, "n_downsampling": 1}, 3, 3),
        ({"in_channels": 1, "out_channels": 1, "norm": "batch", "padding": "zeros"}, 1, 1),
        ({"in_channels": 4, "out_channels": 4, "norm": "none", "upsample": "transposed"}, 4, 4),
        ({"in_channels": 3, "out_channels": 1, "residual_output": False, "n_downsampling": 3}, 3, 1),
    ],
)
def test_generator_output_shape_and_range(kwargs, channels_in, channels_out):
    generator = randomised(ResnetGenerator(**{**TINY, **kwargs}))
    out = generator(images(channels_in))
    assert out.shape == (2, channels_out, 32, 32)
    assert out.min() >= -1 and out.max() <= 1
    assert out.std() > 0


def test_generator_rejects_sizes_that_are_not_multiples():
    generator = ResnetGenerator(**TINY, n_downsampling=3)
    assert generator.size_multiple == 8
    with pytest.raises(ValueError, match="multiples of 8"):
        generator(images(3, size=36))


def test_residual_generator_is_the_identity_at_init(astronaut):
    generator = ResnetGenerator(**TINY)
    assert torch.equal(generator(astronaut), astronaut)
    assert not torch.equal(ResnetGenerator(**TINY, residual_output=False)(astronaut), astronaut)


def test_cyclegan_init():
    generator = ResnetGenerator(base_channels=16, n_blocks=2, norm="batch")
    convs = [m for m in generator.modules() if isinstance(m, torch.nn.Conv2d) and m is not generator.head]
    weights = torch.cat([conv.weight.flatten() for conv in convs])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert abs(weights.mean().item()) < 0.001
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    scales = torch.cat([norm.weight for norm in norms])
    assert scales.mean().item() == pytest.approx(1, abs=0.01) and 0.01 < scales.std().item() < 0.03
    assert all(torch.count_nonzero(norm.bias) == 0 for norm in norms)
    assert torch.count_nonzero(generator.head.weight) == 0 and torch.count_nonzero(generator.head.bias) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "layer"}, "norm must be one of 'instance', 'batch', 'none'; got 'layer'"),
        ({"upsample": "bilinear"}, "upsample must be one of 'resize_conv', 'transposed'"),
        ({"padding": "replicate"}, "padding must be one of 'reflect', 'zeros'"),
        ({"in_channels": 3, "out_channels": 1}, "residual_output needs in_channels == out_channels"),
    ],
)
def test_generator_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ResnetGenerator(**kwargs)


def test_save_and_load_round_trip(tmp_path, capsys):
    kwargs = {"base_channels": 4, "n_blocks": 3, "upsample": "transposed", "padding": "zeros"}
    generator = randomised(ResnetGenerator(**kwargs)).eval()
    generator.save_pretrained(tmp_path, model_card_kwargs={"model_description": "Deblurs tiny astronauts."})

    config = json.loads((tmp_path / "config.json").read_text())
    defaults = {name: parameter.default for name, parameter in GENERATORS.parameters("resnet").items()}
    assert config == {**defaults, **kwargs, "architecture": "resnet"}
    card = (tmp_path / "README.md").read_text()
    assert "Deblurs tiny astronauts." in card and "library_name: cycledeblur" in card
    assert "image-deblurring" in card and "pipeline_tag: image-to-image" in card

    capsys.readouterr()
    loaded = ResnetGenerator.from_pretrained(tmp_path)
    assert capsys.readouterr().out == ""
    assert not loaded.training
    x = images(3)
    assert torch.equal(loaded(x), generator(x))

    via_registry = load_generator(tmp_path)
    assert type(via_registry) is ResnetGenerator and not via_registry.training
    assert torch.equal(via_registry(x), generator(x))


def test_spectral_norm_discriminator_round_trip(tmp_path):
    discriminator = build_discriminator("patchgan", base_channels=4, n_layers=2, norm="none", spectral_norm=True)
    discriminator.train()(images(3))  # a power iteration, so the saved u/v differ from the initial ones
    discriminator.save_pretrained(tmp_path)
    loaded = DISCRIMINATORS.get("patchgan").from_pretrained(tmp_path)
    x = images(3)
    assert torch.equal(loaded(x), discriminator.eval()(x))
    assert json.loads((tmp_path / "config.json").read_text())["architecture"] == "patchgan"


def test_a_high_pass_discriminator_ignores_colour_and_round_trips(tmp_path, astronaut):
    plain = build_discriminator("patchgan", base_channels=4, n_layers=2)
    high_pass = build_discriminator("patchgan", base_channels=4, n_layers=2, high_pass=2.0)
    high_pass.load_state_dict(plain.state_dict())
    tinted = astronaut + torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)  # the same photo, other colours
    with torch.no_grad():
        assert torch.allclose(high_pass(tinted), high_pass(astronaut), atol=1e-5)
        assert not torch.allclose(plain(tinted), plain(astronaut), atol=1e-3)
        # Blur is what it sees: a blurred photo's edges are weaker.
        assert not torch.allclose(high_pass(kornia.filters.box_blur(astronaut, (5, 5))), high_pass(astronaut), atol=1e-3)
    randomised(high_pass).save_pretrained(tmp_path)
    reloaded = DISCRIMINATORS.get("patchgan").from_pretrained(tmp_path)
    assert reloaded.high_pass == 2.0
    with torch.no_grad():
        assert torch.equal(reloaded(astronaut), high_pass.eval()(astronaut))
    with pytest.raises(ValueError, match="high_pass"):
        build_discriminator("patchgan", high_pass=-1.0)


def test_loading_is_strict(tmp_path):
    ResnetGenerator(**TINY).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["blocks.0.body.0.weight"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(UserError, match=r"(?s)model\.safetensors does not fit .*Missing .*blocks\.0\.body\.0\.weight"):
        ResnetGenerator.from_pretrained(tmp_path)


def test_loading_rejects_a_config_that_does_not_match_the_weights(tmp_path):
    ResnetGenerator(**TINY).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_blocks": 2}))
    with pytest.raises(UserError, match=r"(?s)does not fit the ResnetGenerator in config.json.*Missing .*blocks\.1\."):
        load_generator(tmp_path)


def test_a_folder_without_safetensors_is_a_user_error_even_with_a_pickle(tmp_path):
    generator = ResnetGenerator(**TINY)
    generator.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(generator.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(UserError, match=f"folder {tmp_path} has no model.safetensors"):
        ResnetGenerator.from_pretrained(tmp_path)


def test_load_generator_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match=f"folder {tmp_path} has no config.json"):
        load_generator(tmp_path)
    with pytest.raises(UserError, match=f"folder {tmp_path} has no config.json"):
        ResnetGenerator.from_pretrained(tmp_path)
    with pytest.raises(UserError, match=r"runs/missing/generator \(config.json\): neither a folder nor a valid Hub repo id"):
        load_generator("runs/missing/generator")

    PatchDiscriminator(base_channels=4).save_pretrained(tmp_path)
    listed = "generators: kernel, light, nafnet, resnet, unet, unit, wiener"
    with pytest.raises(UserError, match=f"{tmp_path} does not hold a generator.*'patchgan'.*{listed}"):
        load_generator(tmp_path)
    with pytest.raises(UserError, match="holds a 'patchgan' model, not a 'resnet'"):
        ResnetGenerator.from_pretrained(tmp_path)


def test_load_generator_from_the_hub_cache_offline(tmp_path, monkeypatch):
    saved = tmp_path / "saved"
    generator = randomised(ResnetGenerator(**TINY)).eval()
    generator.save_pretrained(saved)
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--acme--tiny-deblur"
    shutil.copytree(saved, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    x = images(3)
    assert torch.equal(load_generator("acme/tiny-deblur")(x), generator(x))
    with pytest.raises(UserError, match=r"acme/other \(config.json\): not a folder, and not in the local Hub cache"):
        load_generator("acme/other")


def test_arguments_that_json_cannot_hold_are_refused():
    # The mixin would silently write the default n_blocks=9 to config.json.
    with pytest.raises(TypeError, match="must be int, float, str or bool, or tuples of them: n_blocks"):
        ResnetGenerator(4, 4, 4, np.int64(1))
    with pytest.raises(TypeError, match="or tuples of them: encoder_blocks"):
        NAFNetGenerator(encoder_blocks=(1, np.int64(1)), decoder_blocks=(1, 1))
    assert copy.deepcopy(ResnetGenerator(**TINY))._hub_mixin_config["n_blocks"] == 1


def test_registry():
    with pytest.raises(ConfigError, match="unknown generator 'vae'; valid generators: kernel, light, nafnet, resnet, unet"):
        GENERATORS.get("vae")
    with pytest.raises(ConfigError, match="unknown discriminator 'stylegan'; valid discriminators: multiscale_patchgan, patchgan"):
        build_discriminator("stylegan")
    parameters = GENERATORS.parameters("resnet")
    assert list(parameters)[:3] == ["in_channels", "out_channels", "base_channels"]
    assert parameters["n_blocks"].annotation is int and parameters["residual_output"].default is True
    assert DISCRIMINATORS.parameters("patchgan")["spectral_norm"].annotation is bool
    assert isinstance(build_generator("resnet", **TINY), ResnetGenerator)
    assert ResnetGenerator.architecture == "resnet" and PatchDiscriminator.architecture == "patchgan"


def test_bf16_autocast_and_channels_last(astronaut):
    generator = randomised(ResnetGenerator(**TINY, residual_output=False))
    discriminator = PatchDiscriminator(base_channels=4, spectral_norm=True)
    x = astronaut.repeat(2, 1, 1, 1).to(memory_format=torch.channels_last)
    reference = generator(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = generator(x)
        logits = discriminator(out)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    error = (out.float() - reference).abs()
    assert error.mean() < 0.01 and error.max() < 0.15
    logits.float().mean().backward()
    gradients = [p.grad for p in generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert any(g.abs().sum() > 0 for g in gradients)


def test_patchgan_output_grid():
    discriminator = PatchDiscriminator(base_channels=4)
    assert discriminator.receptive_field == 70
    # 64 -> 32 -> 16 -> 8 through the stride-2 convs, then 7 and 6 through the stride-1 ones.
    assert discriminator(images(3, size=64)).shape == (2, 1, 6, 6)


@pytest.mark.parametrize(("n_layers", "expected"), [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field_matches_its_gradient(n_layers, expected):
    discriminator = PatchDiscriminator(in_channels=1, base_channels=4, n_layers=n_layers, norm="none")
    assert discriminator.receptive_field == expected == 9 * 2**n_layers - 2
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    logits = discriminator(x)
    centre = logits.shape[-1] // 2
    logits[0, 0, centre, centre].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert rows.max() - rows.min() + 1 == expected and cols.max() - cols.min() + 1 == expected


def test_kernel_generator_blurs_with_a_valid_kernel_per_image(astronaut):
    from cycledeblur.models import KernelBlurGenerator

    generator = KernelBlurGenerator(kernel_size=9, base_channels=4, initial_sigma=1.5)
    images = torch.cat([astronaut, astronaut.flip(-1)])
    kernels = generator.kernels(images)
    assert kernels.shape == (2, 9, 9)
    assert torch.allclose(kernels.sum((1, 2)), torch.ones(2)) and (kernels >= 0).all()
    blurred = generator.eval()(images)  # eval: no sensor noise on top of the blur
    assert blurred.shape == images.shape
    # A blur keeps the mean and removes high frequencies: the Laplacian energy drops.
    assert torch.allclose(blurred.mean((2, 3)), images.mean((2, 3)), atol=0.02)
    laplacian = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)
    energy = lambda x: F.conv2d(x, laplacian, groups=3).square().mean()  # noqa: E731
    assert energy(blurred) < 0.5 * energy(images)
    # It is a true convolution with the predicted kernel, image by image.
    expected = F.conv2d(F.pad(images[1:], [4] * 4, mode="reflect"), kernels[1].flip(0, 1).expand(3, 1, 9, 9), groups=3)
    assert torch.allclose(blurred[1:], expected, atol=1e-5)


def test_kernel_generator_round_trips_and_rejects_bad_sizes(tmp_path, astronaut):
    from cycledeblur.models import KernelBlurGenerator

    generator = randomised(KernelBlurGenerator(kernel_size=5, base_channels=4)).eval()
    generator.save_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(load_generator(tmp_path)(astronaut), generator(astronaut))
    with pytest.raises(ConfigError, match="odd"):
        KernelBlurGenerator(kernel_size=4)


def test_a_latent_code_gives_one_photo_a_different_kernel_at_every_draw(tmp_path, astronaut):
    from cycledeblur.models import KernelBlurGenerator

    generator = KernelBlurGenerator(kernel_size=9, kernel_family="trajectory", base_channels=4, latent=4).eval()
    with torch.no_grad():
        assert torch.equal(generator.kernels(astronaut), generator.kernels(astronaut))  # the code's weights start at 0
        randomised(generator)
        first, second = generator.kernels(astronaut), generator.kernels(astronaut)
    assert not torch.allclose(first, second) and torch.allclose(first.sum((-2, -1)), torch.ones(1))
    generator.save_pretrained(tmp_path)
    reloaded = load_generator(tmp_path)
    assert reloaded.predictor.latent == 4
    torch.manual_seed(7)
    with torch.no_grad():
        expected = generator.kernels(astronaut)
    torch.manual_seed(7)
    with torch.no_grad():
        assert torch.equal(reloaded.kernels(astronaut), expected)  # the draws come from torch's seeded generator


def test_kernel_generator_adds_its_predicted_noise_only_in_training(astronaut):
    from cycledeblur.models import KernelBlurGenerator

    generator = KernelBlurGenerator(kernel_size=5, base_channels=4, initial_noise=0.02)
    clean = generator.eval()(astronaut)
    assert torch.equal(generator(astronaut), clean)  # eval: deterministic, no noise
    noisy = generator.train()(astronaut)
    # 0.02 of the [0, 1] range is 0.04 on the [-1, 1] scale the networks use.
    assert (noisy - clean).std().item() == pytest.approx(0.04, rel=0.05)
    # The noise level is an output of the network, so the discriminator's gradient reaches it.
    (noisy - clean).square().mean().backward()
    assert generator.predictor.head.bias.grad[-1] > 0
    assert torch.equal(KernelBlurGenerator(kernel_size=5, base_channels=4, noise=False).train()(astronaut), clean)


def blurred_photo(astronaut: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    from cycledeblur.models.kernel import convolve

    return convolve(astronaut, torch.from_numpy(kernel).float()[None])


@pytest.mark.parametrize("kind", ["gaussian", "motion", "defocus"])
def test_wiener_deconvolution_with_the_true_kernel_restores_the_photo(astronaut, kind):
    from cycledeblur.models.wiener import wiener_deconvolve
    from cycledeblur.synth.kernels import random_kernel

    kernel = random_kernel(np.random.default_rng(3), kind)
    blurred = blurred_photo(astronaut, kernel)
    restored = wiener_deconvolve(blurred, torch.from_numpy(kernel).float()[None], torch.tensor([1e-4]))
    error = lambda image: (image - astronaut)[..., 8:-8, 8:-8].abs().mean().item()  # noqa: E731
    assert error(restored) < 0.5 * error(blurred)


def test_wiener_generator_starts_near_the_identity_and_handles_any_size(astronaut):
    from cycledeblur.models import WienerDeblurGenerator

    generator = WienerDeblurGenerator(kernel_size=9, base_channels=4, refine_channels=4)
    kernels, regularization, gate = generator.estimate(astronaut)
    assert kernels.shape == (1, 9, 9) and torch.allclose(kernels.sum((1, 2)), torch.ones(1))
    assert gate.item() == pytest.approx(0.018, abs=1e-3) and regularization.item() == pytest.approx(3e-3)
    with torch.no_grad():
        assert (generator(astronaut) - astronaut).abs().mean() < 0.01
        for height, width in [(64, 37), (5, 3), (1, 1)]:  # odd, smaller than the kernel, a single pixel
            assert generator(astronaut[..., :height, :width]).shape == (1, 3, height, width)


@pytest.mark.parametrize("family", ["free", "gaussian", "trajectory"])
def test_wiener_generator_opened_fully_deconvolves_its_kernel(astronaut, family):
    from cycledeblur.models import WienerDeblurGenerator
    from cycledeblur.models.wiener import GATE_SCALE

    generator = WienerDeblurGenerator(kernel_size=9, kernel_family=family, base_channels=4, refine_layers=0)
    with torch.no_grad():
        generator.predictor.head.bias[-1] = 20 / GATE_SCALE  # gate = sigmoid(20): the full deconvolution
    kernels = generator.estimate(astronaut)[0].detach()
    blurred = blurred_photo(astronaut, kernels[0].double().numpy())
    with torch.no_grad():
        restored = generator(blurred)
    error = lambda image: (image - astronaut)[..., 8:-8, 8:-8].abs().mean().item()  # noqa: E731
    assert error(restored) < 0.7 * error(blurred)  # not exact: the gradient prior smooths a little


def test_gaussian_kernel_family_is_anisotropic_and_rotates():
    from cycledeblur.models.kernel import anisotropic_gaussian_logits

    parameters = torch.tensor([[np.log(3.0), np.log(0.5), 0.0], [np.log(3.0), np.log(0.5), np.pi / 2]])
    kernels = anisotropic_gaussian_logits(9, parameters).softmax(-1).view(2, 9, 9)
    assert kernels[0, 4].sum() > 0.75 and kernels[1, :, 4].sum() > 0.75  # along x, then along y
    assert torch.allclose(kernels[0], kernels[1].T, atol=1e-6)


def test_kernel_statistics_call_a_one_pixel_kernel_round():
    from cycledeblur.models.kernel import kernel_statistics

    delta = torch.zeros(1, 9, 9)
    delta[0, 4, 4] = 1
    shape = kernel_statistics(delta)
    assert shape["size_px"] == 0 and shape["elongation"] == pytest.approx(1.0)


def test_trajectory_kernel_family_starts_round_and_learns_camera_shake():
    from cycledeblur.models.kernel import gaussian_logits, kernel_statistics, trajectory_logits, trajectory_start
    from cycledeblur.synth.kernels import motion_kernel

    start = trajectory_start(1.5)[None]
    assert torch.allclose(trajectory_logits(21, start).softmax(-1), gaussian_logits(21, 1.5).softmax(-1), atol=2e-3)
    # A camera-shake kernel of the project's own generator, fitted by gradient descent from the round start.
    shake = torch.from_numpy(motion_kernel(np.random.default_rng(3), size=21, length_range=(15.0, 15.0))).float()
    parameters = start.clone().requires_grad_()
    optimizer = torch.optim.Adam([parameters], lr=0.05)
    error = lambda: (trajectory_logits(21, parameters).softmax(-1).view(21, 21) - shake).abs().sum()  # noqa: E731
    initial_error = error().item()
    for _ in range(300):
        optimizer.zero_grad()
        error().backward()
        optimizer.step()
    fitted = trajectory_logits(21, parameters.detach()).softmax(-1).view(1, 21, 21)
    assert error().item() < 0.1 * initial_error
    target_shape, fitted_shape = kernel_statistics(shake[None]), kernel_statistics(fitted)
    assert target_shape["elongation"] > 3  # a streak, which the round start is not
    assert fitted_shape["elongation"] > 0.8 * target_shape["elongation"]


def test_a_trajectory_whose_spots_shrink_to_nothing_stays_a_finite_one_pixel_line():
    """Spots far narrower than a pixel (an adaptation run's kernels once collapsed so, then stopped on NaN) draw the
    same kernel as spots of the narrowest width, with finite gradients."""
    from cycledeblur.models.kernel import TRAJECTORY_MIN_WIDTH, trajectory_logits, trajectory_start

    straight = trajectory_start(1.0).clone()
    straight[:-1] = torch.tensor([0.0, 1.0]).repeat(len(straight[:-1]) // 2)  # a horizontal streak, one px a step
    narrowest, vanishing = straight.clone(), straight.clone()
    narrowest[-1], vanishing[-1] = math.log(TRAJECTORY_MIN_WIDTH), -60.0
    vanishing = vanishing[None].requires_grad_()
    kernel = trajectory_logits(21, vanishing).softmax(-1)
    kernel.square().sum().backward()
    assert torch.isfinite(kernel).all() and torch.isfinite(vanishing.grad).all()
    assert torch.equal(kernel.detach(), trajectory_logits(21, narrowest[None]).softmax(-1))
    line = kernel.detach().view(21, 21)
    assert line[10].sum() > 0.999  # all of it on the row of the path


def test_wiener_generator_round_trips(tmp_path, astronaut):
    from cycledeblur.models import WienerDeblurGenerator

    tiny = {"kernel_size": 5, "base_channels": 4, "refine_channels": 4}
    generator = randomised(WienerDeblurGenerator(kernel_family="gaussian", **tiny))
    generator.save_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(load_generator(tmp_path)(astronaut), generator(astronaut))
    with pytest.raises(ConfigError, match="kernel_family"):
        WienerDeblurGenerator(kernel_family="box")


def test_multiscale_discriminator_judges_full_and_half_resolution(tmp_path, astronaut):
    from cycledeblur.losses import generator_adversarial_loss
    from cycledeblur.models import MultiScaleDiscriminator

    discriminator = MultiScaleDiscriminator(base_channels=4, n_layers=2)
    (full_weight, full), (half_weight, half) = discriminator(astronaut)
    assert (full_weight, half_weight) == (0.6, 0.4)
    assert full.shape == discriminator.full_scale(astronaut).shape and half.shape[-1] < full.shape[-1]
    expected = 0.6 * generator_adversarial_loss(full, "lsgan") + 0.4 * generator_adversarial_loss(half, "lsgan")
    assert torch.allclose(generator_adversarial_loss(discriminator(astronaut), "lsgan"), expected)
    randomised(discriminator).save_pretrained(tmp_path)
    reloaded = DISCRIMINATORS.get("multiscale_patchgan").from_pretrained(tmp_path)
    with torch.no_grad():
        assert all(torch.equal(a[1], b[1]) for a, b in zip(reloaded(astronaut), discriminator.eval()(astronaut)))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"attention": True, "norm": "batch"}, {"residual_output": False, "out_channels": 1, "n_downsampling": 2}],
)
def test_unet_generator_shapes_identity_and_round_trip(tmp_path, astronaut, kwargs):
    from cycledeblur.models import UnetGenerator

    generator = UnetGenerator(base_channels=4, n_downsampling=kwargs.pop("n_downsampling", 3), **kwargs)
    with torch.no_grad():
        output = generator(astronaut)
    assert output.shape == (1, kwargs.get("out_channels", 3), 64, 64) and output.abs().max() <= 1
    if generator.residual_output:
        assert torch.equal(output, astronaut)  # zero-initialised head: the untrained network is the identity
    randomised(generator).eval().save_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(load_generator(tmp_path)(astronaut), generator(astronaut))
    with pytest.raises(ValueError, match="multiples of 8"):
        UnetGenerator(base_channels=4, n_downsampling=3)(astronaut[..., :60, :60])


def test_self_attention_starts_as_the_identity_and_mixes_positions():
    from cycledeblur.models.unet import SelfAttention

    attention = SelfAttention(8)
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(attention(x), x)
    with torch.no_grad():
        attention.gamma.fill_(1.0)
    x.requires_grad_(True)
    attention(x)[0, :, 0, 0].sum().backward()
    assert (x.grad[0, :, 3, 3] != 0).any()  # the corner pixel's output depends on the opposite corner


def test_light_generator_is_small_starts_as_identity_and_round_trips(tmp_path, astronaut):
    from cycledeblur.models import LightGenerator

    light, resnet = LightGenerator(base_channels=8, n_blocks=2), ResnetGenerator(base_channels=8, n_blocks=2)
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(light) < count(resnet) / 4
    with torch.no_grad():
        assert torch.equal(light(astronaut), astronaut)
    randomised(light).eval().save_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(load_generator(tmp_path)(astronaut), light(astronaut))


@pytest.mark.parametrize(("channels", "height", "width"), [(3, 32, 32), (1, 16, 40)])
def test_nafnet_output_shape_range_and_size_multiple(channels, height, width):
    generator = NAFNetGenerator(in_channels=channels, out_channels=channels, **TINY_NAFNET)
    assert generator.size_multiple == 4
    with torch.no_grad():
        out = randomised(generator)(torch.rand(2, channels, height, width) * 2 - 1)
    assert out.shape == (2, channels, height, width) and out.min() >= -1 and out.max() <= 1
    with pytest.raises(ValueError, match=r"multiples of 4; got \(32, 30\)"):
        generator(images(channels)[..., :30])


def test_nafnet_blocks_start_as_the_identity(astronaut):
    """beta and gamma start at zero, so each NAFBlock passes its input through: the untrained network computes what
    its stem, strided convs, upsamplers and head compute without any block. The head is not zero-initialised (as in
    the paper), so unlike the other residual families the untrained network is not the identity."""
    from cycledeblur.models.nafnet import NAFBlock

    generator = NAFNetGenerator(**TINY_NAFNET)
    bare = NAFNetGenerator(width=4, encoder_blocks=(0, 0), middle_blocks=0, decoder_blocks=(0, 0))
    bare.load_state_dict({key: value for key, value in generator.state_dict().items() if key in bare.state_dict()})
    with torch.no_grad():
        output = generator(astronaut)
        assert torch.equal(output, bare(astronaut))
        assert (output - astronaut).abs().mean() > 0.01
        for block in generator.modules():
            if isinstance(block, NAFBlock):
                block.beta.fill_(0.1)
        assert (generator(astronaut) - output).abs().mean() > 1e-3  # opened, the blocks do change the output


def test_nafnet_round_trips_with_tuple_options(tmp_path, astronaut):
    generator = randomised(NAFNetGenerator(**TINY_NAFNET)).eval()
    generator.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config == {
        "architecture": "nafnet",
        "in_channels": 3,
        "out_channels": 3,
        "width": 4,
        "encoder_blocks": [1, 2],
        "middle_blocks": 1,
        "decoder_blocks": [2, 1],
    }
    loaded = load_generator(tmp_path / "saved")
    assert type(loaded) is NAFNetGenerator and loaded.size_multiple == 4
    reference, state = generator.state_dict(), loaded.state_dict()
    assert state.keys() == reference.keys() and all(torch.equal(state[key], reference[key]) for key in state)
    with torch.no_grad():
        expected = generator(astronaut)
        assert expected.std() > 0.1 and torch.equal(loaded(astronaut), expected)
    loaded.save_pretrained(tmp_path / "again")  # the reloaded network describes itself alike
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoder_blocks": (1, 1), "decoder_blocks": (1,)}, r"encoder_blocks \[1, 1\] and decoder_blocks \[1\] must have one"),
        ({"width": 0}, "width must be >= 1"),
        ({"encoder_blocks": (1, -1), "decoder_blocks": (1, 1)}, "block counts >= 0"),
        ({"out_channels": 1}, "in_channels 3 != out_channels 1"),
    ],
)
def test_nafnet_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        NAFNetGenerator(**kwargs)


def test_kernel_statistics_measure_spread_and_elongation():
    from cycledeblur.models.kernel import anisotropic_gaussian_logits, kernel_statistics

    round_gaussian = anisotropic_gaussian_logits(31, torch.tensor([[np.log(2.0), np.log(2.0), 0.3]])).softmax(-1)
    stats = kernel_statistics(round_gaussian.view(1, 31, 31))
    assert float(stats["size_px"]) == pytest.approx(2.0 * np.sqrt(2), rel=1e-3)
    assert float(stats["elongation"]) == pytest.approx(1.0, abs=1e-3)
    streak = torch.zeros(1, 31, 31)
    streak[0, 10, 3:28] = 1 / 25  # 25 px of horizontal shake: spread sqrt((25^2 - 1) / 12)
    stats = kernel_statistics(streak)
    assert float(stats["size_px"]) == pytest.approx(np.sqrt((25**2 - 1) / 12), rel=1e-4)
    assert float(stats["elongation"]) > 1000
