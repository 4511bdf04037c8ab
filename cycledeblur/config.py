"""Typed training configuration: dataclasses loaded from YAML, with dotted `key=value` overrides.

Every key is checked against the dataclasses (and, for `model.generator` / `model.discriminator`, against the
registered network's constructor), so a typo or a wrong type fails at once with one message naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError


@dataclass
class SyntheticBlurConfig:
    """Pairs made in the loader from sharp photos: a new kernel, noise level and JPEG quality for every crop, drawn
    from (train.seed, epoch, index) so a resumed run sees the same pairs. The weights pick the blur kind."""

    motion: float = 0.35
    """Weight of camera shake (a random trajectory, `motion_length` px long)."""
    gaussian: float = 0.2
    """Weight of an anisotropic Gaussian (`gaussian_sigma` px per axis, at a random angle)."""
    defocus: float = 0.2
    """Weight of a defocus disk (`defocus_radius` px)."""
    mixture: float = 0.15
    """Weight of two kernels of different kinds, one after the other (shake through a soft lens)."""
    identity: float = 0.1
    """Weight of no blur at all: the model learns to leave sharp photos alone (noise and JPEG still apply)."""
    motion_length: tuple[float, float] = (3.0, 35.0)
    """Length of the camera-shake path, px, uniform in this range."""
    gaussian_sigma: tuple[float, float] = (0.5, 4.0)
    """Std of the Gaussian along each of its two axes, px, each uniform in this range."""
    defocus_radius: tuple[float, float] = (1.0, 8.0)
    """Radius of the defocus disk, px, uniform in this range."""
    noise_sigma: tuple[float, float] = (0.0, 0.02)
    """Gaussian sensor noise, std in [0, 1] units, uniform in this range (after the blur)."""
    jpeg_probability: float = 0.0
    """Fraction of blurred crops saved through JPEG at a quality drawn from `jpeg_quality`."""
    jpeg_quality: tuple[int, int] = (60, 95)
    """JPEG quality of the crops that `jpeg_probability` picks, uniform in this range."""
    soft_fraction: float = 0.0
    """Fraction of crops whose sharp side is itself smoothed first, by an isotropic Gaussian of `soft_sigma` px,
    before the blur is drawn on top: photos that are soft by nature (microscopy, scans, shallow focus) then come
    back soft, instead of over-sharpened into halos."""
    soft_sigma: tuple[float, float] = (0.5, 2.0)
    """Std of the smoothing of `soft_fraction`'s sharp sides, px, uniform in this range."""

    def __post_init__(self) -> None:
        for kind in BLUR_KINDS:
            if getattr(self, kind) < 0:
                raise ConfigError(f"data.synthetic_blur.{kind} is a weight: it must be >= 0, got {getattr(self, kind)}")
        if sum(getattr(self, kind) for kind in BLUR_KINDS) <= 0:
            raise ConfigError(f"data.synthetic_blur: at least one of the weights {', '.join(BLUR_KINDS)} must be > 0")
        for name in ("motion_length", "gaussian_sigma", "defocus_radius", "noise_sigma", "jpeg_quality", "soft_sigma"):
            low, high = getattr(self, name)
            zero_ok = name == "noise_sigma"  # no noise is a valid draw; a kernel of size 0 is not
            if low < 0 or (low == 0 and not zero_ok) or low > high:
                bound = "0 <=" if zero_ok else "0 <"
                raise ConfigError(f"data.synthetic_blur.{name} must be [low, high] with {bound} low <= high; got {[low, high]}")
        for name in ("jpeg_probability", "soft_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"data.synthetic_blur.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.jpeg_quality[1] > 100:
            raise ConfigError(f"data.synthetic_blur.jpeg_quality must be at most 100; got {list(self.jpeg_quality)}")


BLUR_KINDS = ("motion", "gaussian", "defocus", "mixture", "identity")


@dataclass
class DataConfig:
    blur: str = ""
    """Blurred photos: a local folder or a Hugging Face Hub dataset id."""
    sharp: str = ""
    """Sharp photos (unrelated to the blurred ones): a local folder or a Hub dataset id."""
    split: str = "train"
    """The split of a Hub dataset (ignored for local folders)."""
    image_column: str = "image"
    """The image column of a Hub dataset (local folders: `image`, as `imagefolder` names it)."""
    channels: int = 3
    """Channels the model sees; images are converted to it (gray -> RGB, RGBA -> RGB, RGB -> gray...)."""
    crop_size: int = 256
    """Side of the square random crops the loader cuts (px); a multiple of the generator's stride."""
    small_images: Literal["upscale", "pad", "error"] = "upscale"
    """What to do with an image smaller than the crop: upscale it, reflect-pad it, or stop with an error."""
    strict: bool = False
    """Stop at the first image that cannot be used (corrupt, truncated, not an image, over the pixel limit, a pair
    of different sizes), naming it. False: it is skipped with a warning, the next readable image takes its place,
    and the log counts the skips (`data/skipped_files`)."""
    hflip: bool = True
    """Flip each crop left-right at random (both images of a pair alike)."""
    quarter_turns: bool = False
    """Turn each crop by a random multiple of 90 degrees; with `hflip`, every one of the 8 orientations is drawn."""
    grayscale: float = 0.0
    """Fraction of crops made gray (luma in every channel, as `torchvision`'s `rgb_to_grayscale`): a model trained
    on color photos alone then also sees the gray ones it will be given. Needs `channels: 3`."""
    color_jitter: float = 0.0
    """Brightness and contrast jitter strength (0 disables it); applied to both sides independently."""
    flat_crop_std: float = 0.01
    """Crops whose flattest channel has a smaller standard deviation (in [0, 1] units) are redrawn (up to 10
    times): a flat crop (sky, a scan's black border) holds no blur, and instance normalization divides its
    zero variance by ~sqrt(eps), which blows its gradients up to inf/NaN."""
    num_workers: int | Literal["auto"] = "auto"
    """Data-loader worker processes per training process (0: load in the training process itself). `auto`: 0 on a
    CPU (the step uses every core; 1 with `cache_images: none`), and on a GPU one per core of this process but one,
    at most 8. The run prints its choice and saves it in its `config.yaml`."""
    cache_images: Literal["auto", "all", "none"] = "auto"
    """Decode the training images once, before the workers start, and hold them in memory as stored (forked
    workers share them): a crop then costs a crop, not a decode of its whole photo. `auto`: while each folder's
    images take at most a quarter of the memory available when it is loaded (divided among this machine's
    processes), the rest read from their files at each use; `all`: every one; `none`: read every image from its file for every crop."""
    crop_schedule: dict[int, int] = field(default_factory=dict)
    """Progressive resolution: {step: crop size from that step on}, e.g. {0: 64, 2000: 128, 4000: 256}. Sizes are at
    most `crop_size`: the loader cuts `crop_size` crops and each step takes a random window of the scheduled size
    from them. Empty: `crop_size` throughout."""
    paired_blur: str = ""
    """Semi-paired training: a few blurred photos whose sharp twins (same file names) are in `paired_sharp`. The
    deblurring generator is pulled toward each twin by `loss.paired_l1`. (In `train.mode: paired`, `blur` and
    `sharp` themselves are the pairs.)"""
    paired_sharp: str = ""
    """The sharp twins of `paired_blur` (same file names)."""
    val_blur: str = ""
    """Validation pairs (local folders): blurred photos whose sharp twins (same file names) are in `val_sharp`. The
    delivered generator is scored on them, whole images, at the start and every `train.val_every` steps (log keys
    `val/psnr`, `val/ssim`; each pair's PSNR in `logs/validation.jsonl`); with `train.keep_best` the best step is
    delivered. Never train on them."""
    val_sharp: str = ""
    """The sharp twins of `val_blur` (same file names)."""
    synthetic_blur: SyntheticBlurConfig | None = None
    """`train.mode: paired` without blurred photos: each sharp photo of `data.sharp` is blurred in the loader, with a
    new random kernel for every crop (see its keys). `data.blur` stays empty."""

    def __post_init__(self) -> None:
        if not 0 <= self.grayscale <= 1:
            raise ConfigError(f"data.grayscale is a fraction of crops: it must be in [0, 1], got {self.grayscale}")
        if self.grayscale and self.channels != 3:
            raise ConfigError(f"data.grayscale makes color crops gray: it needs data.channels=3, got {self.channels}")
        for first, second in (("paired_blur", "paired_sharp"), ("val_blur", "val_sharp")):
            if bool(getattr(self, first)) != bool(getattr(self, second)):
                raise ConfigError(f"data.{first} and data.{second} go together: set both or neither")
        for step, size in self.crop_schedule.items():
            if step < 0 or not 0 < size <= self.crop_size:
                raise ConfigError(
                    f"data.crop_schedule {{{step}: {size}}}: steps must be >= 0 and sizes in 1..data.crop_size "
                    f"({self.crop_size}), the size the loader cuts"
                )

    def crop_sizes(self) -> list[tuple[str, int]]:
        """Every crop size the run trains on, by the key that sets it."""
        return [("data.crop_size", self.crop_size)] + [(f"data.crop_schedule[{step}]", size) for step, size in self.crop_schedule.items()]

    def crop_size_at(self, step: int) -> int:
        """The crop size of `step` under `crop_schedule` (`crop_size` before its first step, or without one)."""
        started = [start for start in self.crop_schedule if start <= step]
        return self.crop_schedule[max(started)] if started else self.crop_size


@dataclass
class NetworkConfig:
    """A registered network family and its constructor arguments (channel counts come from `data.channels`)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


def _default_generator() -> NetworkConfig:
    return NetworkConfig("resnet", {"base_channels": 64, "n_blocks": 9})


def _default_discriminator() -> NetworkConfig:
    return NetworkConfig("patchgan", {"base_channels": 64, "n_layers": 3})


@dataclass
class ModelConfig:
    generator: NetworkConfig = field(default_factory=_default_generator)
    """The blurred -> sharp generator, the one a run delivers."""
    reblur_generator: NetworkConfig | None = None
    """The sharp -> blurred generator; None means the same family and options as `generator`.
    `kernel` (a predicted blur kernel, convolved) makes the cycle physically well posed."""
    discriminator: NetworkConfig = field(default_factory=_default_discriminator)
    """The discriminators, one of sharp photos and one of blurred photos (paired mode: one conditional discriminator of (blurred,
    candidate) pairs), of this family and options."""
    blur_code: bool = False
    """`train.mode: unit` only: UID-GAN's blur code. A separate encoder reads how each blurred photo is blurred into a
    vector of `blur_code_size` numbers (a diagonal Gaussian posterior, KL-regularised by `loss.vae.blur_kl`), which
    the blurred decoder consumes beside the content code; sharp photos are reblurred with codes drawn from the prior."""
    blur_code_size: int = 8
    """Length of the blur code (`blur_code`)."""
    init_from: str = ""
    """Fine-tuning: start from a released model: a run folder, a folder made by `cycledeblur push`, or its Hub id.
    The deblurring generator (and the partner networks the source has) start from its weights; the families and
    options must match the source's, the image channels may differ (3 -> 1 for CT/MR, 3 -> 4 for RGB + NIR)."""


@dataclass
class VaeLossConfig:
    """The weights of `train.mode: unit`'s variational terms (UNIT's defaults), beside the adversarial, cycle,
    identity, total-variation and color weights every unpaired mode shares."""

    reconstruction: float = 10.0
    """Weight of the L1 between each photo and its decoding in its own domain, from a sampled code (the VAE's
    likelihood term)."""
    kl: float = 0.01
    """Weight of the KL divergence of both domains' content codes from the prior N(0, I) (mean^2 / 2 per element:
    the posterior has unit variance)."""
    cycle_kl: float = 0.01
    """Weight of the same KL for the codes of the translated photos, on the way back of the cycle."""
    blur_kl: float = 0.01
    """Weight of the KL of the blur code from N(0, I) (`model.blur_code`)."""

    def __post_init__(self) -> None:
        for name in ("reconstruction", "kl", "cycle_kl", "blur_kl"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.vae.{name} is a weight: it must be >= 0, got {getattr(self, name)}")


@dataclass
class LossConfig:
    gan_mode: Literal["lsgan", "vanilla", "hinge"] = "lsgan"
    """The adversarial loss: least squares (CycleGAN's), the original cross-entropy, or hinge."""
    adv_deblur: float = 1.0
    """Weight of fooling the sharp-image discriminator. Lower trades hallucinated texture for fidelity: a blur kernel
    averages away what the deblurring generator invents, so the cycle alone cannot punish it. At 0 (unpaired) the
    discriminator of sharp photos is neither consulted nor trained."""
    adv_reblur: float = 1.0
    """Weight of fooling the blurred-image discriminator (what makes the reblurred images, or kernels, realistic)."""
    cycle: float = 10.0
    """Weight of the cycle L1 losses, deblur(reblur(sharp)) == sharp and reblur(deblur(blurred)) == blurred."""
    cycle_blurred: float = 1.0
    """Weight of the blurred side of the cycle, reblur(deblur(blurred)) == blurred, as a fraction of `cycle`. A kernel
    reblurring generator is only as right as its discriminator has made it: a kernel smaller than the user's blur
    makes this side teach the deblurrer to leave blur in place. At 0 the deblurrer learns from the pseudo-pairs
    (deblur(reblur(sharp)) == sharp) and its own discriminator only."""
    cycle_trains_reblur: bool = True
    """False: the cycle losses train only the deblurring generator, and the reblurring one learns from its discriminator
    alone. A kernel reblur generator then becomes a learned model of the camera's blur, instead of being pulled
    to the trivial delta kernel whenever the young deblurrer cannot yet invert its blur. In `train.mode: unit` the
    blurred photos made from sharp ones are detached on their way back, so that the cycle does not train the blurred
    decoder."""
    identity_deblur: float = 0.5
    """Weight of deblur(sharp) == sharp, as a fraction of `cycle` (CycleGAN's identity loss)."""
    identity_reblur: float = 0.5
    """Weight of reblur(blurred) == blurred, as a fraction of `cycle`. Set 0 with the `kernel` reblur generator:
    it pulls the predicted kernel to a delta, the trivial solution where nothing is deblurred."""
    tv: float = 0.0
    """Weight of the total variation of the deblurred image (a smoothness prior against noise and ringing)."""
    color: float = 0.0
    """Weight of the L1 between the low-passed deblurred image and the low-passed input: against color drift."""
    color_blur_sigma: float = 3.0
    """Scale (pixels) of the low-pass filter under which the color loss compares output and input."""
    color_space: Literal["rgb", "lab"] = "rgb"
    """Where the color loss compares: RGB, or CIELAB (3-channel data only), where distance follows visibility."""
    ssim: float = 0.0
    """Weight of the structural dissimilarity (1 - SSIM, 11 px Gaussian window) wherever an image must come back:
    the cycle (both directions) in unpaired training, the sharp twin in paired training. Medical users weight
    structure: SSIM compares local means, contrasts and correlations rather than single pixels."""
    paired_l1: float = 100.0
    """Weight of the L1 distance between a deblurred photo and its sharp twin: the content loss of
    `train.mode: paired` (pix2pix's 100, against 1 for `adv_deblur`), and the pull of `data.paired_blur` pairs."""
    vae: VaeLossConfig | None = None
    """`train.mode: unit`'s variational weights (see its keys); that mode fills in the defaults when it is not set."""


@dataclass
class TrainConfig:
    mode: Literal["unpaired", "paired", "unit"] = "unpaired"
    """unpaired: CycleGAN on unrelated blurred and sharp photos. paired: pix2pix on blurred/sharp pairs with matching
    file names (a conditional discriminator sees the blurred photo beside the sharp or deblurred one; loss: adversarial
    x `loss.adv_deblur` + L1 x `loss.paired_l1`). unit: UNIT on unrelated photos, a variational autoencoder per domain
    with one shared latent space (`model.generator: unit`; weights in `loss.vae`)."""
    pretrain_steps: int = 0
    """Paired mode's two-stage training: for this many steps the generator learns from the L1 content loss alone
    (the discriminator idles), then adversarial training starts from that well-behaved generator."""
    max_steps: int = 200_000
    """Optimizer steps of the whole run (the learning-rate schedule spans them)."""
    batch_size: int = 1
    """Images per step and process (each side, in unpaired mode)."""
    grad_accum_steps: int = 1
    """Batches whose gradients are summed before each optimizer step (one all-reduce per step)."""
    lr_g: float = 2e-4
    """Adam learning rate of the generators."""
    lr_reblur: float = 0.0
    """Unpaired mode: the reblurring generator's learning rate (0: `lr_g`). A fine-tune moves the released
    deblurring generator gently while its fresh reblurring partner has everything to learn."""
    lr_d: float = 2e-4
    """Adam learning rate of the discriminators."""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam's betas, for every network."""
    lr_decay_start: float = 0.5
    """Fraction of `max_steps` after which the learning rates decay linearly to zero."""
    pool_size: int = 50
    """Unpaired mode: how many earlier generated images the discriminators may be shown instead of the newest (each with
    probability 1/2 once the pool is full; 0: none)."""
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    """Autocast precision of the forward passes (weights and optimizer stay fp32). `auto`: a launcher's
    `--mixed_precision` if given, else the fastest correct one here: bf16 on a CPU with bf16 instructions
    (AVX512-BF16 or AMX) and on a GPU that has bf16, fp16 on an older GPU, fp32 on any other CPU. The run prints
    its choice and why, and saves the resolved value in its `config.yaml` and model card."""
    channels_last: bool = False
    """Networks and batches in the NHWC memory layout, which tensor-core convolutions prefer (bf16/fp16 on recent
    GPUs). Measure first (bench/speed.py): on this project's 2-core CPU it makes the step slower."""
    compile: bool = False
    """`torch.compile` the trained networks (Accelerate's dynamo plugin, inductor backend). The first steps pay for
    the compilation (minutes); measure whether the steps after it are faster on your device (bench/speed.py)."""
    fused_optimizer: bool = True
    """Adam's fused kernel (one kernel for all parameters, on CUDA and CPU) instead of PyTorch's default per-device
    choice; the same update up to float rounding."""
    seed: int = 0
    """Seeds the networks' initialization, batch order, crops and loader-made blur: the same seed replays the same run."""
    checkpoint_every: int = 5000
    """Steps between checkpoints (`checkpoints/step_N`, what `--resume` continues from); the last step always writes one."""
    keep_checkpoints: int = 3
    """Checkpoints kept; older ones are deleted once a newer one is complete."""
    sample_every: int = 1000
    """Steps between sample grids (`samples/step_N.png`)."""
    sample_size: int = 256
    """Side of the crops in the sample grids (px)."""
    report: bool = True
    """Write RUN/report.html when training ends (`cycledeblur report RUN` refreshes it at any time): the curves, sample
    grids, before/after pictures of the delivered generator and the config, in one offline page."""
    log_every: int = 100
    """Steps between log entries (`logs/metrics.jsonl`, TensorBoard): the losses are read from the device only then."""
    n_critic: int = 1
    """Discriminator updates per generator update: the discriminators learn at every step, the generators at every n_critic-th."""
    instance_noise: float = 0.0
    """Std of Gaussian noise added to every image a discriminator sees (on the [-1, 1] scale), annealed linearly to 0 over
    `instance_noise_steps` steps (0: over the whole run). Blurs the line between real and generated early on,
    when a discriminator that wins outright leaves the generators no gradient."""
    instance_noise_steps: int = 0
    """Steps over which `instance_noise` anneals to 0 (0: `max_steps`)."""
    freeze: list[str] = field(default_factory=list)
    """Fine-tuning: parts of the deblurring generator (parameter name prefixes, e.g. [encoder]) held at their
    starting weights for the first `freeze_steps` steps, while the rest adapts to the new domain."""
    freeze_steps: int = 0
    """Steps during which `freeze` holds its parameters (0: none)."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the deblurring generator's weights with this decay (0: off; 0.999 is
    typical). The average is what samples show and what the run delivers: it smooths out the GAN's oscillation."""
    val_every: int = 1000
    """Steps between scorings on the validation pairs (`data.val_blur`), besides the first and the last step."""
    keep_best: bool = False
    """Deliver the weights of the validation scoring with the best PSNR, the start included: a fine-tune that only
    hurts its validation pairs delivers the weights it started from. Needs `data.val_blur`."""
    keep_best_margin: float = 0.0
    """dB by which a validation scoring must beat the best so far to replace it (`train.keep_best`). A gain within the
    noise of a few pairs is no reason to leave weights known to work: the start, for a fine-tune."""
    keep_best_by: Literal["mean", "worst"] = "mean"
    """What `train.keep_best` ranks the scorings by. `mean`: the mean PSNR over the validation pairs. `worst`: the
    worst group's mean PSNR change over the run's first scoring (the weights it started from, which count 0), so that
    a step is delivered only when it gains on every group: none pays for another. A group is a subfolder of
    `data.val_blur` (say mild/ and strong/, or one per kind of scan); a pair directly in it is a group of its own."""
    guard: bool = False
    """Unpaired fine-tunes without validation pairs to choose by: at the end, score the trained deblurrer and the
    weights it started from (`model.init_from`) on the sharp photos blurred by the final reblurring generator, and
    deliver the start if it scores higher. It favours the trained deblurrer, which learned on such pseudo-pairs:
    measured, it misses most runs that got worse (docs/quality.md). Prefer validation pairs and `train.keep_best`."""

    def __post_init__(self) -> None:
        bounds = {
            "val_every": self.val_every >= 1,
            "lr_reblur": self.lr_reblur >= 0,
            "n_critic": self.n_critic >= 1,
            "pretrain_steps": self.pretrain_steps >= 0,
            "instance_noise": self.instance_noise >= 0,
            "instance_noise_steps": self.instance_noise_steps >= 0,
            "freeze_steps": self.freeze_steps >= 0,
            "keep_best_margin": self.keep_best_margin >= 0,
            "ema_decay": 0 <= self.ema_decay < 1,
        }
        for key, valid in bounds.items():
            if not valid:
                limits = {"n_critic": ">= 1", "val_every": ">= 1", "ema_decay": "in [0, 1)"}.get(key, ">= 0")
                raise ConfigError(f"train.{key} must be {limits}, got {getattr(self, key)!r}")

    def instance_noise_at(self, step: int) -> float:
        """The instance noise's std at `step`: linear from `instance_noise` down to 0."""
        span = self.instance_noise_steps or self.max_steps
        return self.instance_noise * max(0.0, 1.0 - step / span)


@dataclass
class Config:
    output_dir: str = "runs/cycledeblur"
    """The run folder: resolved config, checkpoints, samples, logs and the delivered `generator/`."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        """Checks across sections."""
        paired = self.train.mode == "paired"
        if paired and self.data.paired_blur:
            raise ConfigError("train.mode=paired trains on data.blur/data.sharp as pairs; data.paired_blur is for unpaired mode")
        if self.data.synthetic_blur is not None and self.data.color_jitter:
            raise ConfigError("data.color_jitter is not applied to pairs blurred in the loader (data.synthetic_blur): set it to 0")
        if self.data.synthetic_blur is not None and (not paired or self.data.blur):
            raise ConfigError(
                "data.synthetic_blur makes the pairs of train.mode=paired from data.sharp alone: set train.mode=paired "
                "and leave data.blur empty"
            )
        if self.train.pretrain_steps and not paired:
            raise ConfigError("train.pretrain_steps needs train.mode=paired (its content loss is the L1 to the pairs)")
        if self.loss.color_space == "lab" and self.data.channels != 3:
            raise ConfigError(f"loss.color_space lab needs RGB data, but data.channels is {self.data.channels}")
        if self.train.keep_best and not self.data.val_blur:
            raise ConfigError("train.keep_best delivers the best step on the validation pairs: set data.val_blur and data.val_sharp")
        self._check_unit()
        if self.train.guard and (self.train.mode != "unpaired" or not self.model.init_from or self.train.keep_best):
            raise ConfigError(
                "train.guard checks an unpaired fine-tune from model.init_from (train.mode=unpaired); with validation "
                "pairs, train.keep_best chooses instead: set one of the two"
            )
        if self.train.freeze and self.train.freeze_steps and not self.model.init_from:
            raise ConfigError(
                "train.freeze holds parts of the generator at their starting weights, which are random without "
                "model.init_from: set it to the released model to fine-tune (or train.freeze_steps=0)"
            )

    def _check_unit(self) -> None:
        """`train.mode: unit` and its options go together, and its latent must fit the smallest crop."""
        unit, generator = self.train.mode == "unit", self.model.generator
        if not unit:
            given = [key for key, value in (("loss.vae", self.loss.vae), ("model.blur_code", self.model.blur_code)) if value]
            given += ["model.generator=unit"] if generator.name == "unit" else []
            if given:
                raise ConfigError(f"{given[0]} belongs to train.mode=unit (this run is {self.train.mode})")
            return
        if generator.name != "unit":
            raise ConfigError(f"train.mode=unit trains the generator family unit: set model.generator.name=unit (got {generator.name!r})")
        unsupported = {
            "model.reblur_generator": self.model.reblur_generator is not None,
            "data.paired_blur": bool(self.data.paired_blur),
        }
        for key, given in unsupported.items():
            if given:
                raise ConfigError(f"{key} is for train.mode=unpaired; train.mode=unit has one translator for both directions")
        if self.model.blur_code_size < 1:
            raise ConfigError(f"model.blur_code_size must be >= 1, got {self.model.blur_code_size}")
        self.loss.vae = self.loss.vae or VaeLossConfig()
        from .models import DECODERS, ENCODERS, GENERATORS

        def option(name: str) -> Any:
            return generator.options.get(name, GENERATORS.parameters("unit")[name].default)

        for part, registry in (("encoder", ENCODERS), ("decoder", DECODERS)):
            if option(part) not in registry.names():
                raise ConfigError(f"model.generator.{part}: unknown {part} {option(part)!r}; valid {part}s: {', '.join(registry.names())}")
        n_downsampling = option("n_downsampling")
        key, smallest = min(self.data.crop_sizes(), key=lambda item: item[1])
        if smallest // 2**n_downsampling < UNIT_MIN_LATENT:
            raise ConfigError(
                f"{key}={smallest} leaves a latent code of {smallest // 2**n_downsampling} px with "
                f"model.generator.n_downsampling={n_downsampling}: it needs at least {UNIT_MIN_LATENT} px (larger crops or fewer levels)"
            )
        if self.model.blur_code and smallest < UNIT_MIN_BLUR_CROP:
            raise ConfigError(
                f"{key}={smallest}: the blur code's encoder halves a crop four times and needs at least {UNIT_MIN_BLUR_CROP} px"
            )


UNIT_MIN_LATENT = 4  # px of the latent code's side: the shared blocks' 3x3 convs need room, and a code needs a layout
UNIT_MIN_BLUR_CROP = 16


# Set from `data.channels` by the training code, so a user never has to keep them in sync by hand.
DERIVED_NETWORK_ARGS = ("in_channels", "out_channels")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML file (or start from the defaults when `path` is None), apply `a.b.c=value` overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys, not {type(raw).__name__}")
    for override in overrides:
        _apply_override(raw, override)
    return _build(Config, raw, prefix="")


def config_to_dict(config: Config) -> dict[str, Any]:
    """A plain dict that `load_config` reads back to an equal Config (used for the run folder's config.yaml)."""

    def convert(value: Any) -> Any:
        if isinstance(value, NetworkConfig):
            return {"name": value.name, **value.options}
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return list(value)
        return value

    return convert(config)


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


def _apply_override(raw: dict[str, Any], override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like key=value, e.g. train.max_steps=100")
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is a value, not a section")
        node = child
    try:
        node[leaf] = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        node[leaf] = text


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r}{hint}; valid keys under {prefix.rstrip('.') or 'the top level'}: "
            + ", ".join(fields)
        )
    values = {}
    for name, value in raw.items():
        values[name] = _convert(hints[name], value, prefix + name)
    return cls(**values)


def _convert(expected: Any, value: Any, key: str) -> Any:
    """Check `value` against the annotation `expected`, converting only where the meaning is unambiguous."""
    if expected is NetworkConfig:
        return _build_network(value, key)
    if dataclasses.is_dataclass(expected):
        return _build(expected, value, key + ".")
    origin = typing.get_origin(expected)
    if origin is Literal:
        choices = typing.get_args(expected)
        if isinstance(value, bool) and ("yes" if value else "no") in choices:
            value = "yes" if value else "no"  # YAML 1.1 reads an unquoted `no` (mixed_precision: no) as false
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, choices))}; got {value!r}")
        return value
    if origin is tuple:
        item_types = typing.get_args(expected)
        if len(item_types) == 2 and item_types[1] is Ellipsis:  # tuple[int, ...]: any length
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{key} must be a list, got {value!r}")
            return tuple(_convert(item_types[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if not isinstance(value, (list, tuple)) or len(value) != len(item_types):
            raise ConfigError(f"{key} must be a list of {len(item_types)} values, got {value!r}")
        return tuple(_convert(t, v, f"{key}[{i}]") for i, (t, v) in enumerate(zip(item_types, value)))
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_convert(item_type, item, f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        key_type, value_type = typing.get_args(expected)
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return {_convert(key_type, k, f"{key} key {k!r}"): _convert(value_type, v, f"{key}[{k!r}]") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(expected):
            return None
        options = [option for option in typing.get_args(expected) if option is not type(None)]
        if len(options) == 1:  # `X | None`: X's own message names the key at fault inside it
            return _convert(options[0], value, key)
        for option in options:
            try:
                return _convert(option, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} has the wrong type: expected {_type_name(expected)}, got {value!r}")
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as a string; it plainly means a float.
            try:
                return float(value)
            except ValueError:
                pass
    elif expected is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # a Hub split such as 2024 or a folder named 123
    elif expected is Any or expected is inspect.Parameter.empty:
        return value
    else:
        raise TypeError(f"config field {key} has an unsupported annotation {expected!r}")
    raise ConfigError(f"{key} has the wrong type: expected {_type_name(expected)}, got {value!r}")


def _build_network(raw: Any, key: str) -> NetworkConfig:
    from .models import DISCRIMINATORS, GENERATORS

    registry = GENERATORS if key.endswith("generator") else DISCRIMINATORS
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"{key} must be a mapping with a 'name' (one of {', '.join(registry.names())})")
    options = dict(raw)
    name = options.pop("name")
    parameters = registry.parameters(name)  # raises ConfigError naming the valid families
    allowed = [p for p in parameters if p not in DERIVED_NETWORK_ARGS]
    converted = {}
    for option, value in options.items():
        if option in DERIVED_NETWORK_ARGS:
            raise ConfigError(f"{key}.{option} is set from data.channels; remove it from the config")
        if option not in allowed:
            raise ConfigError(f"unknown config key '{key}.{option}' for {key} {name!r}; valid keys: name, {', '.join(allowed)}")
        converted[option] = _convert(parameters[option].annotation, value, f"{key}.{option}")
    return NetworkConfig(name, converted)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
