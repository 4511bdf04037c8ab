import pytest
import yaml

from cycledeblur.cli import main
from cycledeblur.config import Config, SyntheticBlurConfig, config_to_dict, load_config, save_config
from cycledeblur.errors import ConfigError

from .conftest import ROOT

ALL_GENERATORS = "kernel, light, nafnet, resnet, unet, unit, wiener"


@pytest.mark.parametrize(
    ("name", "generator"),
    [
        ("default.yaml", "resnet"),
        ("demo.yaml", "resnet"),
        ("cpu-fast.yaml", "wiener"),
        ("paired.yaml", "unet"),
        ("paired-cpu-fast.yaml", "wiener"),
        ("general.yaml", "nafnet"),
    ],
)
def test_shipped_configs_load(name, generator):
    config = load_config(ROOT / "configs" / name)
    assert isinstance(config, Config)
    assert config.model.generator.name == generator


def test_default_config_is_the_reference_cyclegan():
    config = load_config(ROOT / "configs" / "default.yaml")
    assert config.data.crop_size == 256
    assert config.model.generator.options["n_blocks"] == 9
    assert config.model.discriminator.options["n_layers"] == 3  # 70x70 PatchGAN
    assert (config.loss.gan_mode, config.loss.cycle) == ("lsgan", 10.0)
    assert (config.loss.identity_deblur, config.loss.identity_reblur) == (0.5, 0.5)
    assert (config.train.pool_size, config.train.lr_g, config.train.betas) == (50, 2e-4, (0.5, 0.999))


def test_unquoted_no_is_the_choice_no():
    """YAML 1.1 reads `no` as false; `train.mixed_precision=no` must still mean the choice "no"."""
    assert load_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="train.mixed_precision must be one of"):
        load_config(None, ["train.mixed_precision=yes"])


def test_dotted_overrides_are_typed():
    config = load_config(
        ROOT / "configs" / "default.yaml",
        [
            "train.max_steps=7",
            "train.lr_g=1e-4",
            "train.betas=[0.9, 0.99]",
            "data.hflip=false",
            "model.generator.n_blocks=2",
            "loss.gan_mode=hinge",
            "data.blur=some/folder",
        ],
    )
    assert config.train.max_steps == 7
    assert config.train.lr_g == pytest.approx(1e-4)  # "1e-4" is a string to YAML 1.1
    assert config.train.betas == (0.9, 0.99)
    assert config.data.hflip is False
    assert config.model.generator.options["n_blocks"] == 2
    assert config.loss.gan_mode == "hinge"
    assert config.data.blur == "some/folder"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_stepz=3", "unknown config key 'train.max_stepz' (did you mean 'train.max_steps'?); valid keys under train: mode"),
        ("trian.max_steps=3", "unknown config key 'trian'"),
        ("train.max_steps=many", "train.max_steps has the wrong type: expected int, got 'many'"),
        ("train.max_steps=2.5", "train.max_steps has the wrong type"),
        ("data.hflip=3", "data.hflip has the wrong type: expected bool"),
        ("loss.gan_mode=wgan", "loss.gan_mode must be one of 'lsgan', 'vanilla', 'hinge'"),
        ("train.betas=[0.5]", "train.betas must be a list of 2 values"),
        ("model.generator.n_blokcs=2", "unknown config key 'model.generator.n_blokcs' for model.generator 'resnet'"),
        ("model.generator.name=unet9000", f"unknown generator 'unet9000'; valid generators: {ALL_GENERATORS}"),
        ("model.generator.in_channels=1", "is set from data.channels"),
        ("model.discriminator.n_layers=x", "model.discriminator.n_layers has the wrong type"),
        # Inside an optional section, the message still names the key at fault.
        ("model.reblur_generator={name: resnet, n_blokcs: 2}", "unknown config key 'model.reblur_generator.n_blokcs'"),
        ("train", "must look like key=value"),
        ("data.grayscale=1.5", "data.grayscale is a fraction of crops: it must be in [0, 1], got 1.5"),
    ],
)
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as error:
        load_config(ROOT / "configs" / "default.yaml", [override])
    assert message in str(error.value)


def test_gray_crops_need_color_data():
    with pytest.raises(ConfigError, match="data.grayscale makes color crops gray: it needs data.channels=3, got 1"):
        load_config(ROOT / "configs" / "default.yaml", ["data.grayscale=0.5", "data.channels=1"])


def test_resolved_config_round_trips(tmp_path):
    config = load_config(
        ROOT / "configs" / "demo.yaml",
        ["train.lr_d=3e-4", "model.generator.upsample=transposed", "data.crop_schedule={0: 32, 100: 64}"],
    )
    assert config.data.crop_schedule == {0: 32, 100: 64}
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config_to_dict(config)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")


def test_cli_config_error_is_one_line_and_exit_code_2(capsys):
    code = main(["train", "--config", str(ROOT / "configs" / "demo.yaml"), "train.bogus=1"])
    captured = capsys.readouterr()
    assert code == 2
    assert "unknown config key 'train.bogus'" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_cli_missing_data_folder_is_a_user_error(tmp_path, capsys):
    code = main(
        [
            "train",
            "--config",
            str(ROOT / "configs" / "demo.yaml"),
            f"output_dir={tmp_path}/run",
            f"data.blur={tmp_path}/missing",
            f"data.sharp={tmp_path}/missing",
        ]
    )
    assert code == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.n_critic=0", "train.n_critic must be >= 1"),
        ("train.ema_decay=1", "train.ema_decay must be in"),
        ("train.instance_noise=-0.1", "train.instance_noise must be >= 0"),
    ],
)
def test_stability_knobs_are_range_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(ROOT / "configs" / "default.yaml", [override])


def test_synthetic_blur_parses_takes_overrides_and_round_trips(tmp_path):
    general = load_config(ROOT / "configs" / "general.yaml")
    assert general.data.synthetic_blur.motion_length == (3.0, 35.0) and general.data.synthetic_blur.identity == 0.1
    config = load_config(
        ROOT / "configs" / "general.yaml", ["data.synthetic_blur.motion_length=[2,10]", "data.synthetic_blur.jpeg_quality=[70, 90]"]
    )
    assert config.data.synthetic_blur.motion_length == (2.0, 10.0)
    assert all(isinstance(bound, float) for bound in config.data.synthetic_blur.motion_length)
    assert config.data.synthetic_blur.jpeg_quality == (70, 90)
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    # One key on a config without the section adds the section, with the other keys at their defaults.
    added = load_config(ROOT / "configs" / "paired.yaml", ["data.blur=", "data.synthetic_blur.defocus=1"])
    assert added.data.synthetic_blur == SyntheticBlurConfig(defocus=1.0)
    assert load_config(ROOT / "configs" / "paired.yaml").data.synthetic_blur is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.synthetic_blur.motion=-0.5", "data.synthetic_blur.motion is a weight: it must be >= 0, got -0.5"),
        (
            "data.synthetic_blur={motion: 0, gaussian: 0, defocus: 0, mixture: 0, identity: 0}",
            "data.synthetic_blur: at least one of the weights motion, gaussian, defocus, mixture, identity must be > 0",
        ),
        ("data.synthetic_blur.motion_length=[10, 2]", "data.synthetic_blur.motion_length must be [low, high] with 0 < low"),
        ("data.synthetic_blur.defocus_radius=[0, 2]", "data.synthetic_blur.defocus_radius must be [low, high] with 0 < low"),
        ("data.synthetic_blur.noise_sigma=[-0.01, 0.01]", "data.synthetic_blur.noise_sigma must be [low, high] with 0 <= low"),
        ("data.synthetic_blur.jpeg_probability=1.5", "data.synthetic_blur.jpeg_probability must be in [0, 1]"),
        ("data.synthetic_blur.soft_fraction=-0.1", "data.synthetic_blur.soft_fraction must be in [0, 1]"),
        ("data.synthetic_blur.jpeg_quality=[60, 101]", "data.synthetic_blur.jpeg_quality must be at most 100"),
        ("data.synthetic_blur.motion_length=5", "data.synthetic_blur.motion_length must be a list of 2 values"),
        ("data.synthetic_blur.motoin=1", "unknown config key 'data.synthetic_blur.motoin' (did you mean 'data.synthetic_blur.motion'?)"),
        ("data.blur=some/blurred", "data.synthetic_blur makes the pairs of train.mode=paired from data.sharp alone"),
        ("train.mode=unpaired", "data.synthetic_blur makes the pairs of train.mode=paired from data.sharp alone"),
    ],
)
def test_synthetic_blur_errors_are_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(ROOT / "configs" / "general.yaml", [override])
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_config_loads(path):
    load_config(path)


@pytest.mark.parametrize("name", ["finetune-medical.yaml", "finetune-satellite.yaml"])
def test_the_domain_fine_tunes_are_the_adaptation_recipe(name):
    """configs/adapt.yaml's recipe on the domain's channels and crops: one recipe to measure and to fix."""
    recipe, domain = (config_to_dict(load_config(ROOT / "configs" / config)) for config in ("adapt.yaml", name))
    for settings in (recipe, domain):
        del settings["output_dir"], settings["data"]
    assert domain == recipe


def test_the_gpu_adaptation_is_the_cpu_one_scaled_up():
    """Same recipe (losses, learning rates, networks' families, the deblurrer's architecture), other sizes."""
    cpu, gpu = (config_to_dict(load_config(ROOT / "configs" / name)) for name in ("adapt.yaml", "adapt-gpu.yaml"))
    assert gpu["loss"] == cpu["loss"] and gpu["model"]["generator"] == cpu["model"]["generator"]
    assert {key: gpu["train"][key] for key in ("lr_g", "lr_reblur", "lr_d", "betas", "ema_decay")} == {
        key: cpu["train"][key] for key in ("lr_g", "lr_reblur", "lr_d", "betas", "ema_decay")
    }
    assert gpu["data"]["crop_size"] > cpu["data"]["crop_size"] and gpu["train"]["batch_size"] > cpu["train"]["batch_size"]
