"""Shared fixtures: real photographs (scikit-image, CC0), blurred with `cycledeblur synth`, and tiny configs."""

import os
import tempfile
from pathlib import Path

# Before anything imports `datasets` / `huggingface_hub`: they read these at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="cycledeblur-datasets-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from cycledeblur.config import BLUR_KINDS, SyntheticBlurConfig, load_config  # noqa: E402
from cycledeblur.synth import synthesize_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Test tensors are tiny: with 2 OpenMP threads on 2 cores the sync overhead dominates, and it turns into
# a 10x slowdown whenever anything else runs on the machine.
torch.set_num_threads(1)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photo(name: str, size: int = 96) -> np.ndarray:
    """A real photograph, center-cropped to a square and downscaled to `size` px."""
    image = getattr(data, name)()
    side = min(image.shape[:2])
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    square = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS))


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        Image.fromarray(photo(name)).save(folder / f"{name}.png")
    return folder


CORPUS_SPLITS = {
    "train": ("rocket", "coffee"),
    "val": ("hubble_deep_field", "immunohistochemistry"),
    "test": ("astronaut", "chelsea"),
}


@pytest.fixture
def corpus(tmp_path):
    """bench/corpus.py's layout, tiny: two small photos per split."""
    folder = tmp_path / "corpus"
    for split, names in CORPUS_SPLITS.items():
        (folder / split).mkdir(parents=True)
        for name in names:
            Image.fromarray(photo(name, size=96 if split == "train" else 64)).save(folder / split / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def unpaired(photo_folder, tmp_path_factory) -> Path:
    """blur/ and sharp/ folders of disjoint real photos, the blurred ones made by `synth`."""
    out = tmp_path_factory.mktemp("unpaired")
    synthesize_folder(photo_folder, out, kind="mixed", seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def paired(photo_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paired")
    synthesize_folder(photo_folder, out, kind="mixed", seed=1, paired=True, progress=False)
    return out


TINY_TRAINING = [
    "data.crop_size=32",
    "data.num_workers=0",
    "train.batch_size=2",
    "train.pool_size=4",
    "train.log_every=1",
    "train.sample_every=1000",
    "train.sample_size=32",
    "train.report=false",  # tests/test_report.py writes and checks reports
]
# Tiny networks for each shipped config that tests train.
TINY_NETWORKS = {
    "default.yaml": [
        "model.generator.base_channels=4",
        "model.generator.n_blocks=1",
        "model.discriminator.base_channels=4",
        "model.discriminator.n_layers=2",
    ],
    "cpu-fast.yaml": [
        "model.generator.base_channels=4",
        "model.generator.refine_channels=4",
        "model.generator.kernel_size=9",
        "model.reblur_generator.base_channels=4",
        "model.reblur_generator.kernel_size=9",
        "model.discriminator.base_channels=4",
        "model.discriminator.n_layers=2",
    ],
    "paired.yaml": [
        "model.generator.base_channels=4",
        "model.generator.n_downsampling=3",
        "model.discriminator.base_channels=4",
        "model.discriminator.n_layers=2",
    ],
    "general.yaml": [
        "model.generator.width=4",
        "model.generator.encoder_blocks=[1, 1]",
        "model.generator.middle_blocks=1",
        "model.generator.decoder_blocks=[1, 1]",
        "model.discriminator.base_channels=4",
        "model.discriminator.n_layers=2",
        "train.mixed_precision=no",  # bf16 on a CPU without avx512_bf16 is emulated, and slow
    ],
    "adapt.yaml": [  # the deblurring generator starts from the bundled model: its size is given
        "model.reblur_generator.base_channels=4",
        "model.reblur_generator.kernel_size=9",
        "model.discriminator.base_channels=4",
        "model.discriminator.n_layers=2",
        "train.mixed_precision=no",
    ],
    "unit.yaml": [
        "model.generator.base_channels=4",
        "model.generator.n_blocks=1",
        "model.discriminator.name=patchgan",
        "model.discriminator.base_channels=4",
        "model.discriminator.n_layers=2",
        "model.blur_code_size=2",
        "train.mixed_precision=no",
    ],
}
TINY_OVERRIDES = TINY_NETWORKS["default.yaml"] + TINY_TRAINING
# configs/general.yaml's network (fine-tuning keeps it) on a few small crops of real photos.
TINY_GENERAL_RUN = [
    "data.crop_size=32",
    "data.num_workers=0",
    "train.batch_size=2",
    "train.max_steps=2",
    "train.log_every=1",
    "train.sample_every=1000",
    "train.sample_size=32",
    "train.checkpoint_every=1000",
    "train.mixed_precision=no",
]


@pytest.fixture
def tiny_config(unpaired, tmp_path):
    """A config factory: tiny networks on 32 px crops of real photos, writing into tmp_path/run."""

    def make(*overrides: str, run: str = "run", base: str = "default.yaml"):
        return load_config(
            ROOT / "configs" / base,
            [
                f"data.blur={unpaired / 'blur'}",
                f"data.sharp={unpaired / 'sharp'}",
                f"output_dir={tmp_path / run}",
                *TINY_NETWORKS[base],
                *TINY_TRAINING,
                *overrides,
            ],
        )

    return make


def reset_accelerate_state() -> None:
    """Forget the last Accelerator's process-wide state, so that the next one may use other settings."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    PartialState._reset_state()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each training run in a test builds its own Accelerator."""
    yield
    reset_accelerate_state()


def only(kind: str, **ranges) -> SyntheticBlurConfig:
    """A synthetic blur config that draws `kind` alone, without noise unless `ranges` sets it."""
    weights = {other: float(other == kind) for other in BLUR_KINDS}
    return SyntheticBlurConfig(**{**weights, "noise_sigma": (0.0, 0.0), **ranges})


def randomised(model: torch.nn.Module, std: float = 0.1) -> torch.nn.Module:
    """Random weights everywhere (seeded), so that a zero-initialised head cannot hide a loading bug."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, std, generator=generator)
    return model


def checkpoint_weights(run_dir: Path, step: int) -> dict[str, dict[str, torch.Tensor]]:
    """Every network's weights in the checkpoint of `step`, by file name."""
    from safetensors.torch import load_file

    folder = run_dir / "checkpoints" / f"step_{step:07d}"
    return {f.name: load_file(f) for f in sorted(folder.glob("model*.safetensors"))}


# GAN stabilisers that carry state across steps: exact-resume tests switch them all on.
STABILITY_KNOBS = ("train.ema_decay=0.9", "train.n_critic=3", "train.instance_noise=0.2")
