"""Paired (pix2pix) and semi-paired training, and progressive resolution, for real on real photos."""

import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cycledeblur.cli import main
from cycledeblur.config import load_config
from cycledeblur.data import PairedCropDataset, load_pairs
from cycledeblur.errors import ConfigError, UserError
from cycledeblur.models import load_generator
from cycledeblur.training import train
from cycledeblur.training.tracking import read_metrics

from .conftest import ROOT, STABILITY_KNOBS, TINY_TRAINING, checkpoint_weights

# A plain generator starts far from its target, so its L1 loss has room to fall within a few dozen steps.
PLAIN_GENERATOR = (
    "model.generator.residual_output=false",
    "model.generator.norm=none",
    "model.generator.base_channels=8",
    "train.lr_g=2e-3",
)


def paired_data(paired):
    return ("train.mode=paired", f"data.blur={paired / 'blur'}", f"data.sharp={paired / 'sharp'}")


def test_paired_mode_pretrains_on_l1_then_trains_a_conditional_discriminator(tiny_config, paired, tmp_path):
    config = tiny_config(
        *paired_data(paired),
        *PLAIN_GENERATOR,
        # Every photo in every batch, so that the loss is read on the same photos from step to step.
        "train.batch_size=6",
        "train.max_steps=40",
        "train.pretrain_steps=30",
        "train.checkpoint_every=40",
    )
    generator_dir = train(config)
    rows = read_metrics(tmp_path / "run")
    pretraining, adversarial = rows[:30], rows[30:]
    # Stage one: the generator alone on the content loss, which falls; the discriminator idles.
    logged = [{key for key in row if not key.startswith("perf/")} for row in pretraining]
    assert all(keys == {"step", "loss/paired_l1", "lr/generator", "data/skipped_files"} for keys in logged)
    l1 = [row["loss/paired_l1"] for row in pretraining]
    assert sum(l1[-5:]) < 0.7 * sum(l1[:5]), l1
    # Stage two: adversarial training with the discriminator.
    assert all({"loss/paired_l1", "loss/adv_deblur", "loss/d_sharp"} <= set(row) for row in adversarial)
    # The discriminator is conditional: it sees the blurred photo beside the candidate, 3 + 3 channels.
    discriminator = checkpoint_weights(tmp_path / "run", 40)["model_1.safetensors"]
    first_conv = next(value for key, value in discriminator.items() if value.ndim == 4)
    assert first_conv.shape[1] == 6
    assert "pix2pix" in (generator_dir / "README.md").read_text()
    assert load_generator(generator_dir).architecture == "resnet"


@pytest.mark.parametrize("base", ["default.yaml", "cpu-fast.yaml"])
def test_paired_resume_is_exact_across_stages_and_a_progressive_boundary(tiny_config, paired, tmp_path, base):
    """Pretraining ends at step 2, the crops grow at step 6; both are crossed after the resume at step 4. The EMA
    and n_critic (stability knobs) also carry state across it."""
    common = (
        *paired_data(paired),
        "train.max_steps=8",
        "train.checkpoint_every=4",
        "train.keep_checkpoints=5",
        "train.batch_size=1",
        "train.pretrain_steps=2",
        "data.crop_schedule={0: 24, 6: 32}",
        *STABILITY_KNOBS,
    )
    train(tiny_config(*common, run="straight", base=base))
    train(tiny_config(*common, run="resumed", base=base), resume=str(tmp_path / "straight" / "checkpoints" / "step_0000004"))
    straight, resumed = checkpoint_weights(tmp_path / "straight", 8), checkpoint_weights(tmp_path / "resumed", 8)
    assert len(straight) == 2  # the generator and the discriminator
    for name in straight:
        assert all((straight[name][key] == resumed[name][key]).all() for key in straight[name]), name
    delivered = [load_file(tmp_path / run / "generator" / "model.safetensors") for run in ("straight", "resumed")]
    assert all((delivered[0][key] == delivered[1][key]).all() for key in delivered[0])


def test_progressive_resolution_trains_at_each_scheduled_size(tiny_config, tmp_path):
    """The image pool holds the fakes the discriminator saw: 24 px ones before the boundary, 32 px ones after it."""
    config = tiny_config("train.max_steps=6", "train.checkpoint_every=3", "train.keep_checkpoints=2", "data.crop_schedule={0: 24, 3: 32}")
    assert [config.data.crop_size_at(step) for step in (0, 2, 3, 100)] == [24, 24, 32, 32]
    train(config)
    for step, size in ((3, 24), (6, 32)):
        folder = tmp_path / "run" / "checkpoints" / f"step_{step:07d}"
        pool = load_file(folder / "loop_state_rank0.safetensors")["fake_sharp_pool.images"]
        assert len(pool) and pool.shape[1:] == (3, size, size), step


def test_semi_paired_training_learns_from_a_single_pair(tiny_config, paired, tmp_path):
    """One true pair beside the unpaired photos: its L1 term is trained (a batch of 1 pair next to batches of 2)."""
    few = tmp_path / "few"
    for side in ("blur", "sharp"):
        (few / side).mkdir(parents=True)
        shutil.copy(paired / side / "coffee.png", few / side / "coffee.png")
    config = tiny_config(
        *PLAIN_GENERATOR,
        "train.max_steps=30",
        f"data.paired_blur={few / 'blur'}",
        f"data.paired_sharp={few / 'sharp'}",
        "loss.paired_l1=10",
    )
    generator_dir = train(config)
    l1 = [row["loss/paired_l1"] for row in read_metrics(tmp_path / "run")]
    assert len(l1) == 30 and sum(l1[-5:]) < 0.7 * sum(l1[:5]), l1
    assert "semi-paired" in (generator_dir / "README.md").read_text()


def test_pairs_match_by_relative_name_whatever_the_extension(paired, tmp_path):
    blur = tmp_path / "blur"
    shutil.copytree(paired / "blur", blur)
    for path in blur.glob("*.png"):  # the blurred side as TIFFs
        with Image.open(path) as image:
            image.save(path.with_suffix(".tif"))
        path.unlink()
    blurred, sharp = load_pairs(str(blur), str(paired / "sharp"), split="train", image_column="image", keys=("data.blur", "data.sharp"))
    names = [[record["path"].rsplit("/", 1)[1].split(".")[0] for record in side["image"]] for side in (blurred, sharp)]
    assert names[0] == names[1] and len(names[0]) == 6
    config = load_config(None, ["data.crop_size=32"]).data
    (blurred_crop, sharp_crop), _ = PairedCropDataset(blurred, sharp, config, seed=0)[(0, 2)]
    # The same window of the same scene: the blurred crop is close to the sharp one, unlike a crop of another photo.
    other = PairedCropDataset(blurred, sharp, config, seed=0)[(0, 3)][0][1]
    assert (blurred_crop - sharp_crop).abs().mean() < 0.5 * (blurred_crop - other).abs().mean()


def test_pair_errors_name_the_file(paired, tmp_path):
    sharp = tmp_path / "sharp"
    shutil.copytree(paired / "sharp", sharp)
    (sharp / "coffee.png").rename(sharp / "tea.png")
    with pytest.raises(UserError, match=r"1 image\(s\) of data.blur have no twin .* 'coffee'"):
        load_pairs(str(paired / "blur"), str(sharp), split="train", image_column="image", keys=("data.blur", "data.sharp"))

    (sharp / "tea.png").rename(sharp / "coffee.png")
    with Image.open(sharp / "rocket.png") as image:
        image.crop((0, 0, 64, 80)).save(sharp / "rocket.png")
    blurred, sharp_set = load_pairs(str(paired / "blur"), str(sharp), split="train", image_column="image", keys=("data.blur", "data.sharp"))
    row = [record["path"].endswith("rocket.png") for record in blurred["image"]].index(True)
    strict = load_config(None, ["data.crop_size=32", "data.strict=true"]).data
    with pytest.raises(UserError, match=r"rocket.png .*rocket.png: the images differ in size"):
        PairedCropDataset(blurred, sharp_set, strict, seed=0)[(0, row)]
    _, skipped = PairedCropDataset(blurred, sharp_set, load_config(None, ["data.crop_size=32"]).data, seed=0)[(0, row)]
    assert skipped == 1  # without data.strict the pair is passed over, like an unreadable file


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.pretrain_steps=5"], "train.pretrain_steps needs train.mode=paired"),
        (["train.mode=paired", "data.paired_blur=a", "data.paired_sharp=b"], "data.paired_blur is for unpaired mode"),
        (["data.paired_blur=a"], "data.paired_blur and data.paired_sharp go together"),
        (["train.mode=pairs"], "train.mode must be one of 'unpaired', 'paired'"),
        (["data.crop_schedule={0: 512}"], "sizes in 1..data.crop_size (256)"),
        (["data.crop_schedule={0: big}"], "data.crop_schedule[0] has the wrong type: expected int"),
        (["data.crop_schedule=[64, 128]"], "data.crop_schedule must be a mapping"),
    ],
)
def test_mode_and_schedule_config_errors(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(ROOT / "configs" / "default.yaml", overrides)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [("{0: 18}", r"data.crop_schedule\[0\]=18 must be a multiple of 4"), ("{0: 16}", "too small for model.discriminator")],
)
def test_crop_sizes_are_checked_against_the_networks_before_training(tiny_config, schedule, message):
    config = tiny_config(f"data.crop_schedule={schedule}", "model.discriminator.name=multiscale_patchgan")
    with pytest.raises(ConfigError, match=message):
        train(config)


def test_general_recipe_trains_without_a_discriminator_on_pairs_blurred_in_the_loader_and_resumes_exactly(
    tiny_config, photo_folder, tmp_path
):
    """configs/general.yaml, tiny: NAFNet on sharp photos blurred in the loader, `loss.adv_deblur: 0`. Stopped at
    step 2 (mid-epoch: 6 photos, batches of 2) and resumed, it ends as the uninterrupted run, the EMA it delivers
    included."""
    common = ("data.blur=", f"data.sharp={photo_folder}", "train.max_steps=6", "train.checkpoint_every=2", "train.keep_checkpoints=3")
    train(tiny_config(*common, run="straight", base="general.yaml"))
    train(tiny_config(*common, run="resumed", base="general.yaml"), resume=str(tmp_path / "straight" / "checkpoints" / "step_0000002"))
    straight, resumed = checkpoint_weights(tmp_path / "straight", 6), checkpoint_weights(tmp_path / "resumed", 6)
    assert len(straight) == 2  # the generator and the (idle) discriminator
    for name in straight:
        assert all(torch.equal(straight[name][key], resumed[name][key]) for key in straight[name]), name
    delivered = [load_file(tmp_path / run / "generator" / "model.safetensors") for run in ("straight", "resumed")]
    assert all(torch.equal(delivered[0][key], delivered[1][key]) for key in delivered[0])
    assert load_generator(tmp_path / "straight" / "generator").architecture == "nafnet"

    # The content loss alone: the generator learns, the discriminator is never consulted, trained or stepped.
    logged = [{key for key in row if not key.startswith("perf/")} for row in read_metrics(tmp_path / "straight")]
    assert logged == [{"step", "loss/paired_l1", "lr/generator", "data/skipped_files"}] * 6
    generator, discriminator = (checkpoint_weights(tmp_path / "straight", 2)[name] for name in ("model.safetensors", "model_1.safetensors"))
    assert not all(torch.equal(generator[key], straight["model.safetensors"][key]) for key in generator)
    assert all(torch.equal(discriminator[key], straight["model_1.safetensors"][key]) for key in discriminator)
    discriminator_optimizer = torch.load(tmp_path / "straight" / "checkpoints" / "step_0000006" / "optimizer_1.bin", weights_only=True)
    assert discriminator_optimizer["state"] == {}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.generator.decoder_blocks=[1]", "encoder_blocks [0, 1, 2, 6] and decoder_blocks [1] must have one entry per level"),
        ("model.generator.encoder_blocks=[1, x]", "model.generator.encoder_blocks[1] has the wrong type: expected int, got 'x'"),
        ("data.crop_size=40", "data.crop_size=40 must be a multiple of 16, the generator's total stride"),
    ],
)
def test_general_recipe_network_errors_are_one_line(photo_folder, tmp_path, capsys, override, message):
    """The shipped NAFNet (4 levels), with options that cannot build it or a crop it cannot take."""
    args = [
        "train",
        "--config",
        str(ROOT / "configs" / "general.yaml"),
        f"data.sharp={photo_folder}",
        f"output_dir={tmp_path / 'run'}",
        *TINY_TRAINING,
        override,
    ]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1, error
