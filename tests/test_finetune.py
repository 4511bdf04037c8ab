"""Fine-tuning: a run starts from a released model (`model.init_from`), with adapted channels and frozen parts."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cycledeblur.errors import ConfigError, UserError
from cycledeblur.models import ResnetGenerator
from cycledeblur.training import train
from cycledeblur.training.init_from import initial_weights, start_from
from cycledeblur.training.tracking import read_metrics

from .conftest import ROOT, TINY_GENERAL_RUN, TINY_NETWORKS, photo, randomised

TINY_RESNET = {"base_channels": 4, "n_blocks": 1}


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A 3-channel run trained for 2 steps: what a user would fine-tune from."""
    return tmp_path_factory.mktemp("released") / "run"


def train_released(tiny_config, released):
    if not (released / "generator").is_dir():
        train(tiny_config("train.max_steps=2", "train.checkpoint_every=2", f"output_dir={released}"))
    return released


def test_every_network_of_a_run_is_the_starting_point(tiny_config, released):
    run = train_released(tiny_config, released)
    weights, channels = initial_weights(str(run))
    assert channels == 3 and sorted(weights) == ["deblur", "discriminator_blurred", "discriminator_sharp", "reblur"]
    delivered = load_file(run / "generator" / "model.safetensors")
    assert all((weights["deblur"][key] == value).all() for key, value in delivered.items())
    saved_discriminator = load_file(run / "checkpoints" / "step_0000002" / "model_3.safetensors")
    assert all((weights["discriminator_blurred"][key] == value).all() for key, value in saved_discriminator.items())


def test_a_gray_model_from_an_rgb_one_computes_the_mean_of_its_corrections(tmp_path):
    """Summed input kernels and averaged output kernels: on a gray image (R = G = B) the 1-channel network adds the
    mean of the three channels' corrections of the 3-channel one."""
    rgb = randomised(ResnetGenerator(**TINY_RESNET), std=0.2).eval()
    rgb.save_pretrained(tmp_path / "rgb")
    gray = ResnetGenerator(in_channels=1, out_channels=1, **TINY_RESNET).eval()
    weights, channels = initial_weights(str(tmp_path / "rgb"))
    start_from(gray, weights["deblur"], channels, 1, "deblur")
    image = torch.from_numpy(photo("astronaut", 32).mean(axis=2, keepdims=True).copy())
    image = (image.permute(2, 0, 1)[None].float() / 255) * 2 - 1
    with torch.no_grad():
        expected = (image + rgb.head(rgb.features(image.expand(-1, 3, -1, -1))).mean(1, keepdim=True)).clamp(-1, 1)
        torch.testing.assert_close(gray(image), expected, atol=1e-5, rtol=1e-5)


def test_fine_tuning_gray_from_rgb_with_a_frozen_encoder(tiny_config, released, tmp_path):
    run = train_released(tiny_config, released)
    tuned = train(
        tiny_config(
            "data.channels=1",
            f"model.init_from={run}",
            "train.freeze=[encoder]",
            "train.freeze_steps=2",
            "train.max_steps=3",
            "train.checkpoint_every=2",
            run="gray",
        )
    )
    source = load_file(run / "generator" / "model.safetensors")
    at_two = load_file(tmp_path / "gray" / "checkpoints" / "step_0000002" / "model.safetensors")
    at_three = load_file(tmp_path / "gray" / "checkpoints" / "step_0000003" / "model.safetensors")
    assert at_two["encoder.0.weight"].shape[1] == 1
    torch.testing.assert_close(at_two["encoder.0.weight"], source["encoder.0.weight"].sum(1, keepdim=True))
    held = [key for key in at_two if key.startswith("encoder.") and key != "encoder.0.weight"]
    assert held and all((at_two[key] == source[key]).all() for key in held)  # frozen for steps 1 and 2
    free = [key for key in at_two if not key.startswith("encoder.") and key in source and key != "head.weight"]
    assert free and not any((at_two[key] == source[key]).all() for key in free if at_two[key].dtype.is_floating_point)
    assert not all((at_three[key] == at_two[key]).all() for key in held)  # and step 3 releases the encoder
    assert ResnetGenerator.from_pretrained(tuned).in_channels == 1


def test_a_four_band_run_starts_from_an_rgb_model(tiny_config, released, unpaired, tmp_path):
    """RGB + a fourth band (near-infrared in satellite scenes; here the photo's luminance) from a 3-channel run."""
    run = train_released(tiny_config, released)
    for side in ("blur", "sharp"):
        (tmp_path / side).mkdir()
        for path in (unpaired / side).iterdir():
            rgb = np.asarray(Image.open(path).convert("RGB"))
            band = rgb.mean(axis=2, keepdims=True).astype(np.uint8)
            Image.fromarray(np.concatenate([rgb, band], axis=2), mode="RGBA").save(tmp_path / side / path.name)
    tuned = train(
        tiny_config(
            "data.channels=4",
            f"data.blur={tmp_path / 'blur'}",
            f"data.sharp={tmp_path / 'sharp'}",
            f"model.init_from={run}",
            "train.max_steps=2",
            run="bands",
        )
    )
    weights = load_file(tuned / "model.safetensors")
    assert weights["encoder.0.weight"].shape[1] == 4 and weights["head.weight"].shape[0] == 4


def test_fine_tuning_errors_name_the_key(tiny_config, released, tmp_path):
    run = train_released(tiny_config, released)
    with pytest.raises(UserError, match="model.init_from=.*nowhere: neither a folder nor a valid Hub repo id"):
        train(tiny_config(f"model.init_from={tmp_path / 'nowhere'}", "train.max_steps=1"))
    with pytest.raises(UserError, match="does not have this run's architecture"):
        train(tiny_config(f"model.init_from={run}", "model.generator.n_blocks=2", "train.max_steps=1", run="other"))
    with pytest.raises(ConfigError, match=r"train.freeze=\['encodr'\]: .*parts: \['blocks', 'decoder', 'encoder', 'head'\]"):
        train(tiny_config(f"model.init_from={run}", "train.freeze=[encodr]", "train.freeze_steps=1", "train.max_steps=1", run="typo"))
    with pytest.raises(ConfigError, match="train.freeze holds parts .* without model.init_from"):
        tiny_config("train.freeze=[encoder]", "train.freeze_steps=1")


@pytest.mark.parametrize("mode", ["unpaired", "paired"])
def test_the_ssim_loss_trains(tiny_config, paired, mode):
    """Unpaired: on both cycles; paired: against the sharp twin."""
    pairs = [f"data.blur={paired / 'blur'}", f"data.sharp={paired / 'sharp'}", "train.mode=paired"] if mode == "paired" else []
    run = train(tiny_config("loss.ssim=1.0", "train.max_steps=2", *pairs, run=mode)).parent
    rows = read_metrics(run)
    # Residual generators start as the identity: the first step's cycle comes back exactly (unpaired).
    assert len(rows) == 2 and all(0 <= row["loss/ssim"] < (4 if mode == "unpaired" else 2) for row in rows)
    assert rows[-1]["loss/ssim"] > 0


def test_a_pushed_folder_is_a_starting_point_with_its_partners(tiny_config, released, tmp_path):
    """What `cycledeblur push --include-discriminators` uploads is what `model.init_from` reads back (by Hub id, from
    the cache; here the staged folder itself)."""
    from cycledeblur.cli import main

    run = train_released(tiny_config, released)
    staged = tmp_path / "staged"
    assert main(["push", "--model", str(run), "--repo-id", "me/deblur", "--include-discriminators", "--dry-run", str(staged)]) == 0
    pushed, channels = initial_weights(str(staged))
    direct, _ = initial_weights(str(run))
    assert channels == 3 and sorted(pushed) == sorted(direct) == ["deblur", "discriminator_blurred", "discriminator_sharp", "reblur"]
    for role in direct:
        assert all((pushed[role][key] == value).all() for key, value in direct[role].items()), role


def test_a_reordered_network_set_still_round_trips_through_push_and_init_from(tiny_config, tmp_path, monkeypatch):
    """The roles' order is the set's alone: reversed, the checkpoint numbers the networks the other way round, and
    push and init_from still find each network where its role says."""
    from cycledeblur.cli import main
    from cycledeblur.training.network_sets import NETWORK_SETS, NetworkSet

    reversed_set = NetworkSet(tuple(reversed(NETWORK_SETS["unpaired"].roles)))
    monkeypatch.setitem(NETWORK_SETS, "unpaired", reversed_set)
    run = tmp_path / "reordered"
    train(tiny_config("train.max_steps=2", "train.checkpoint_every=2", f"output_dir={run}"))
    first_file = load_file(run / "checkpoints" / "step_0000002" / "model.safetensors")
    assert reversed_set.names[0] == "discriminator_blurred" and any(key.startswith("layers.") for key in first_file)
    staged = tmp_path / "staged"
    assert main(["push", "--model", str(run), "--repo-id", "me/deblur", "--include-discriminators", "--dry-run", str(staged)]) == 0
    pushed, _ = initial_weights(str(staged))
    direct, _ = initial_weights(str(run))
    assert sorted(pushed) == sorted(direct) == sorted(reversed_set.names)
    for role in direct:
        assert all((pushed[role][key] == value).all() for key, value in direct[role].items()), role
    assert all((direct["discriminator_blurred"][key] == value).all() for key, value in first_file.items())
    tuned = tmp_path / "tuned"
    train(tiny_config("train.max_steps=1", f"model.init_from={staged}", f"output_dir={tuned}", run="tuned"))
    assert (tuned / "generator" / "model.safetensors").is_file()


def fine_tune(config_name: str, data, tuned):
    """`cycledeblur train --config configs/CONFIG_NAME` from the bundled general model on DATA/{blur,sharp}, with a
    tiny reblurring generator and discriminators, for 2 steps."""
    from cycledeblur.cli import main

    arguments = [
        "train",
        "--config",
        str(ROOT / "configs" / config_name),
        f"data.blur={data / 'blur'}",
        f"data.sharp={data / 'sharp'}",
        f"output_dir={tuned}",
        *TINY_NETWORKS["adapt.yaml"],
        *TINY_GENERAL_RUN,
    ]
    assert main(arguments) == 0
    return tuned


def test_fine_tuning_on_real_dicom_slices_keeps_16_bit_gray(tmp_path):
    """The bundled general model, fine-tuned with configs/finetune-medical.yaml on CT/MR slices from pydicom's samples
    (16-bit, windowed), then a DICOM file deblurred: a 16-bit grayscale PNG."""
    from cycledeblur.cli import main
    from cycledeblur.domain_examples import MEDICAL_SLICES, dicom_sample, write_medical_examples
    from cycledeblur.image_files import read_pixels
    from cycledeblur.synth import synthesize_folder

    small = {stem: MEDICAL_SLICES[stem] for stem in ("ct_small", "mr_small", "ct_693", "mr2")}
    write_medical_examples(tmp_path / "slices", small)
    synthesize_folder(tmp_path / "slices", tmp_path / "scans", kind="gaussian", seed=0, progress=False)
    tuned = fine_tune("finetune-medical.yaml", tmp_path / "scans", tmp_path / "tuned")
    assert main(["deblur", str(dicom_sample("CT_small.dcm")), "--model", str(tuned), "--out", str(tmp_path / "out")]) == 0
    deblurred = read_pixels(tmp_path / "out" / "CT_small.png")
    assert deblurred.dtype == np.uint16 and deblurred.shape == (128, 128, 1)


def test_fine_tuning_on_aerial_tiles_then_a_scene_deblurred_in_tiles(tmp_path):
    """configs/finetune-satellite.yaml from the bundled general model (4 bands; the gray aerial photo repeated into
    them) on real aerial tiles, then the whole 512 px scene deblurred in 128 px tiles, its 16 bits and single band
    kept."""
    import pywt.data

    from cycledeblur.cli import main
    from cycledeblur.domain_examples import write_aerial_examples
    from cycledeblur.image_files import read_pixels, write_pixels
    from cycledeblur.synth import synthesize_folder

    write_aerial_examples(tmp_path / "tiles", tile_size=128)
    synthesize_folder(tmp_path / "tiles", tmp_path / "aerial", kind="motion", seed=0, progress=False)
    tuned = fine_tune("finetune-satellite.yaml", tmp_path / "aerial", tmp_path / "tuned")
    assert load_file(tuned / "generator" / "model.safetensors")["stem.weight"].shape[1] == 4
    scene = tmp_path / "scene.tif"
    write_pixels(pywt.data.aero().astype(np.uint16)[:, :, None] * 257, scene)
    assert main(["deblur", str(scene), "--model", str(tuned), "--out", str(tmp_path / "out"), "--tile", "128"]) == 0
    deblurred = read_pixels(tmp_path / "out" / "scene.tif")
    assert deblurred.dtype == np.uint16 and deblurred.shape == (512, 512, 1)


def test_a_pushed_model_is_found_by_hub_id_in_the_local_cache(tiny_config, released, tmp_path, monkeypatch, photo_folder):
    """Another user, offline (HF_HUB_OFFLINE=1), with the repo in the Hugging Face cache: `model.init_from` and
    `deblur --model` take the Hub id. The cache is laid out by hand as huggingface_hub writes it."""
    import huggingface_hub

    from cycledeblur.cli import main

    run = train_released(tiny_config, released)
    repo = tmp_path / "hub" / "models--someone--deblur"
    revision = "0123456789abcdef0123456789abcdef01234567"
    staged = ["push", "--model", str(run), "--repo-id", "someone/deblur", "--include-discriminators"]
    assert main([*staged, "--dry-run", str(repo / "snapshots" / revision)]) == 0
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    weights, channels = initial_weights("someone/deblur")
    assert channels == 3 and sorted(weights) == ["deblur", "discriminator_blurred", "discriminator_sharp", "reblur"]
    assert main(["deblur", str(photo_folder / "coffee.png"), "--model", "someone/deblur", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "coffee.png").is_file()
