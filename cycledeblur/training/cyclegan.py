"""Unpaired deblurring with CycleGAN (Zhu et al. 2017): the training loop, written out in one function.

Domains: *blurred* photos and *sharp* photos, unrelated to each other. Four networks:
`deblur` (blurred -> sharp), `reblur` (sharp -> blurred), and a PatchGAN judging each domain.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration, set_seed
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from ..config import Config, LossConfig, config_to_dict, save_config
from ..data import CropDataset, EpochSampler, load_image_source
from ..errors import ConfigError, UserError
from ..losses import color_consistency, discriminator_adversarial_loss, generator_adversarial_loss, total_variation
from ..models import build_discriminator, build_generator
from .checkpoints import resolve_resume, save_checkpoint
from .image_pool import ImagePool
from .model_card import write_generator
from .optim import adam, linear_decay
from .progress import TrainingProgress
from .samples import sample_batch, save_sample_grid
from .tracking import build_trackers


class TrainState:
    """The loop's own counters, saved with every checkpoint."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def build_accelerator(config: Config, run_dir: Path) -> Accelerator:
    has_accelerator = torch.cuda.is_available() or (hasattr(torch, "accelerator") and torch.accelerator.is_available())
    return Accelerator(
        # Without cpu=True, `torchrun` on a machine with no GPU starts independent processes, not a gloo group.
        cpu=not has_accelerator,
        mixed_precision=config.train.mixed_precision,
        # Two loaders of different lengths: an epoch end of either must not force an early optimizer step.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.train.grad_accum_steps, sync_with_dataloader=False
        ),
        # Schedules are defined in optimizer steps; Accelerate would otherwise step them once per process.
        step_scheduler_with_optimizer=False,
        log_with=build_trackers(run_dir / "logs"),
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )


def endless_batches(accelerator: Accelerator, loader: DataLoader, sampler: EpochSampler, start: int) -> Iterator:
    """Batches forever, starting after the first `start` ones, epoch after epoch, as an uninterrupted run would."""
    epoch, skip = divmod(start, len(loader))
    while True:
        source = accelerator.skip_first_batches(loader, skip) if skip else loader
        source.set_epoch(epoch)
        sampler.set_epoch(epoch)  # Accelerate forwards set_epoch two wrappers deep; skip + shard makes three
        yield from source
        epoch, skip = epoch + 1, 0


def build_loader(dataset: CropDataset, config: Config, seed: int) -> tuple[DataLoader, EpochSampler]:
    sampler = EpochSampler(len(dataset), seed)
    if len(dataset) < config.train.batch_size:
        raise UserError(f"{len(dataset)} images cannot fill a batch of train.batch_size={config.train.batch_size}")
    loader = DataLoader(
        dataset,
        batch_size=config.train.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=config.data.num_workers,
        persistent_workers=config.data.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        # Each new iterator draws a base seed from this generator; from the global one, a resumed run (which
        # starts an iterator mid-epoch) would shift the random stream that the generators' noise is drawn from.
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, sampler


def train(config: Config, resume: str | bool | None = None) -> Path:
    """Train `config` into `config.output_dir`; returns the folder of the final blur->sharp generator."""
    run_dir = Path(config.output_dir)
    if config.loss.color_space == "lab" and config.data.channels != 3:
        raise ConfigError(f"loss.color_space lab needs RGB data, but data.channels is {config.data.channels}")
    resume_from = resolve_resume(run_dir, resume)
    accelerator = build_accelerator(config, run_dir)
    train_cfg, loss_cfg = config.train, config.loss
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    set_seed(train_cfg.seed)  # network initialisation

    with accelerator.main_process_first():  # the first process builds the datasets' cache, the others reuse it
        blurred_images = load_image_source(
            config.data.blur, split=config.data.split, image_column=config.data.image_column, key="data.blur"
        )
        sharp_images = load_image_source(
            config.data.sharp, split=config.data.split, image_column=config.data.image_column, key="data.sharp"
        )
    blurred_set = CropDataset(blurred_images, config.data, seed=train_cfg.seed, image_column=config.data.image_column)
    sharp_set = CropDataset(sharp_images, config.data, seed=train_cfg.seed + 1, image_column=config.data.image_column)
    blurred_loader, blurred_sampler = build_loader(blurred_set, config, seed=train_cfg.seed)
    sharp_loader, sharp_sampler = build_loader(sharp_set, config, seed=train_cfg.seed + 1)

    channels = {"in_channels": config.data.channels, "out_channels": config.data.channels}
    reblur_spec = config.model.reblur_generator or config.model.generator
    deblur = build_generator(config.model.generator.name, **channels, **config.model.generator.options)
    reblur = build_generator(reblur_spec.name, **channels, **reblur_spec.options)
    judge_sharp = build_discriminator(config.model.discriminator.name, in_channels=config.data.channels, **config.model.discriminator.options)
    judge_blurred = build_discriminator(config.model.discriminator.name, in_channels=config.data.channels, **config.model.discriminator.options)
    optimizer_g = adam(itertools.chain(deblur.parameters(), reblur.parameters()), train_cfg.lr_g, train_cfg.betas)
    optimizer_d = adam(itertools.chain(judge_sharp.parameters(), judge_blurred.parameters()), train_cfg.lr_d, train_cfg.betas)
    scheduler_g = linear_decay(optimizer_g, train_cfg.max_steps, train_cfg.lr_decay_start)
    scheduler_d = linear_decay(optimizer_d, train_cfg.max_steps, train_cfg.lr_decay_start)
    (deblur, reblur, judge_sharp, judge_blurred, optimizer_g, optimizer_d, scheduler_g, scheduler_d,
     blurred_loader, sharp_loader) = accelerator.prepare(
        deblur, reblur, judge_sharp, judge_blurred, optimizer_g, optimizer_d, scheduler_g, scheduler_d,
        blurred_loader, sharp_loader,
    )  # fmt: skip
    # Networks used with frozen weights (the judges in the generator step) are called unwrapped, past DDP's hooks.
    unwrapped = {
        "reblur": accelerator.unwrap_model(reblur),
        "judge_sharp": accelerator.unwrap_model(judge_sharp),
        "judge_blurred": accelerator.unwrap_model(judge_blurred),
    }

    # The average is never trained, only updated from the generator's weights, so it stays out of `prepare`.
    averaged_deblur = None
    if train_cfg.ema_decay > 0:
        averaging = get_ema_multi_avg_fn(train_cfg.ema_decay)
        averaged_deblur = AveragedModel(accelerator.unwrap_model(deblur), multi_avg_fn=averaging, use_buffers=True)
    # The generator that samples show and the run delivers.
    delivered = averaged_deblur.module if averaged_deblur is not None else deblur

    state = TrainState()
    pool_seed = train_cfg.seed * 10_000 + 2 * accelerator.process_index  # distinct per run seed, rank and side
    fake_sharp_pool = ImagePool(train_cfg.pool_size, seed=pool_seed)
    fake_blurred_pool = ImagePool(train_cfg.pool_size, seed=pool_seed + 1)
    accelerator.register_for_checkpointing(
        state, fake_sharp_pool, fake_blurred_pool, *([averaged_deblur] if averaged_deblur is not None else [])
    )
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        accelerator.print(f"resumed from {resume_from} at step {state.step}")
    accelerator.init_trackers("cycledeblur", config=_flat_hparams(config))

    multiple = accelerator.unwrap_model(deblur).size_multiple
    sample_indices = sorted({round(i * (len(blurred_set) - 1) / 3) for i in range(4)})  # spread over the set
    sample_inputs = sample_batch([blurred_set.load(i) for i in sample_indices], train_cfg.sample_size, multiple)
    sample_inputs = sample_inputs.to(accelerator.device)

    consumed = state.step * train_cfg.grad_accum_steps  # batches each loader has already delivered
    batches = zip(
        endless_batches(accelerator, blurred_loader, blurred_sampler, consumed),
        endless_batches(accelerator, sharp_loader, sharp_sampler, consumed),
    )
    images_per_step = train_cfg.batch_size * train_cfg.grad_accum_steps * accelerator.num_processes
    progress = TrainingProgress(train_cfg.max_steps, state.step, images_per_step, enabled=accelerator.is_main_process)
    running: dict[str, tuple[torch.Tensor, int]] = {}  # term -> (sum, count) since the last log

    with progress:
        while state.step < train_cfg.max_steps:
            blurred, sharp = next(batches)
            noise = train_cfg.instance_noise_at(state.step)
            update_generators = state.step % train_cfg.n_critic == 0
            with accelerator.accumulate(deblur, reblur, judge_sharp, judge_blurred):
                if update_generators:
                    # Generators: fool the judges, and come back where they started.
                    fake_sharp, fake_blurred, terms, weights = generator_terms(
                        deblur, reblur, unwrapped, blurred, sharp, loss_cfg, noise
                    )
                    loss_g = sum(weights[name] * value for name, value in terms.items())
                    accelerator.backward(loss_g)
                    optimizer_g.step()
                    optimizer_g.zero_grad(set_to_none=True)
                else:  # an extra judge update: fresh fakes, no generator loss
                    with torch.no_grad():
                        fake_sharp, fake_blurred, terms = deblur(blurred), reblur(sharp), {}

                # Judges: real vs. generated (from the history pool), on detached fakes.
                terms["d_sharp"] = discriminator_adversarial_loss(
                    judge_sharp(with_instance_noise(sharp, noise)),
                    judge_sharp(with_instance_noise(fake_sharp_pool.query(fake_sharp.detach()), noise)),
                    loss_cfg.gan_mode,
                )
                terms["d_blurred"] = discriminator_adversarial_loss(
                    judge_blurred(with_instance_noise(blurred, noise)),
                    judge_blurred(with_instance_noise(fake_blurred_pool.query(fake_blurred.detach()), noise)),
                    loss_cfg.gan_mode,
                )
                accelerator.backward(terms["d_sharp"] + terms["d_blurred"])
                optimizer_d.step()
                optimizer_d.zero_grad(set_to_none=True)

            # Sums stay on the device; they are read (a host sync) only every `log_every` steps.
            for name, value in terms.items():
                total, count = running.get(name, (0.0, 0))
                running[name] = (total + value.detach(), count + 1)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            scheduler_g.step()
            scheduler_d.step()
            if averaged_deblur is not None and update_generators:
                averaged_deblur.update_parameters(accelerator.unwrap_model(deblur))

            if state.step % train_cfg.log_every == 0 or state.step == train_cfg.max_steps:
                means = {name: total / count for name, (total, count) in running.items()}
                means = {f"loss/{name}": value.item() for name, value in accelerator.reduce(means, reduction="mean").items()}
                means["lr/generator"] = scheduler_g.get_last_lr()[0]
                accelerator.log(means, step=state.step)
                progress.show_losses(means)
                running = {}
            if accelerator.is_main_process and (state.step % train_cfg.sample_every == 0 or state.step == train_cfg.max_steps):
                _save_samples(accelerator, delivered, reblur, sample_inputs, run_dir / "samples" / f"step_{state.step:07d}.png")
            if state.step % train_cfg.checkpoint_every == 0 or state.step == train_cfg.max_steps:
                save_checkpoint(
                    accelerator, run_dir, state.step, train_cfg.keep_checkpoints, [deblur, reblur, judge_sharp, judge_blurred]
                )
            progress.advance(state.step)

    accelerator.wait_for_everyone()
    generator_dir = run_dir / "generator"
    if accelerator.is_main_process:
        write_generator(accelerator.unwrap_model(delivered), generator_dir, config, state.step, progress.last_losses)
    accelerator.end_training()
    return generator_dir


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`module` with its weights excluded from autograd: gradients still flow through it to its inputs."""
    trainable = [p for p in module.parameters() if p.requires_grad]  # weights a user froze stay frozen
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield module
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


def with_instance_noise(images: torch.Tensor, std: float) -> torch.Tensor:
    """What a judge sees: the images plus Gaussian noise of `std` (instance noise, Sønderby et al. 2017)."""
    return images + std * torch.randn_like(images) if std > 0 else images


def generator_terms(deblur, reblur, unwrapped: dict, blurred, sharp, loss_cfg: LossConfig, instance_noise: float = 0.0):
    """The generators' loss terms and their weights, plus the fakes (reused, detached, by the judges' step)."""
    fake_sharp, fake_blurred = deblur(blurred), reblur(sharp)
    with frozen(unwrapped["judge_sharp"]) as judge_sharp, frozen(unwrapped["judge_blurred"]) as judge_blurred:
        terms = {
            "adv_deblur": generator_adversarial_loss(
                judge_sharp(with_instance_noise(fake_sharp, instance_noise)), loss_cfg.gan_mode
            ),
            "adv_reblur": generator_adversarial_loss(
                judge_blurred(with_instance_noise(fake_blurred, instance_noise)), loss_cfg.gan_mode
            ),
        }
    if loss_cfg.cycle_trains_reblur:
        terms["cycle"] = F.l1_loss(reblur(fake_sharp), blurred) + F.l1_loss(deblur(fake_blurred), sharp)
    else:
        with frozen(unwrapped["reblur"]) as fixed_reblur:
            terms["cycle"] = F.l1_loss(fixed_reblur(fake_sharp), blurred) + F.l1_loss(deblur(fake_blurred.detach()), sharp)
    weights = {"adv_deblur": loss_cfg.adv_deblur, "adv_reblur": loss_cfg.adv_reblur, "cycle": loss_cfg.cycle}
    if loss_cfg.identity_deblur > 0:
        terms["identity_deblur"] = F.l1_loss(deblur(sharp), sharp)
        weights["identity_deblur"] = loss_cfg.identity_deblur * loss_cfg.cycle
    if loss_cfg.identity_reblur > 0:
        terms["identity_reblur"] = F.l1_loss(reblur(blurred), blurred)
        weights["identity_reblur"] = loss_cfg.identity_reblur * loss_cfg.cycle
    if loss_cfg.tv > 0:
        terms["tv"] = total_variation(fake_sharp)
        weights["tv"] = loss_cfg.tv
    if loss_cfg.color > 0:
        sigma = loss_cfg.color_blur_sigma
        space = loss_cfg.color_space
        terms["color"] = color_consistency(fake_sharp, blurred, sigma, space) + color_consistency(
            fake_blurred, sharp, sigma, space
        )
        weights["color"] = loss_cfg.color
    return fake_sharp, fake_blurred, terms, weights


@torch.no_grad()
def _save_samples(accelerator: Accelerator, deblur, reblur, blurred: torch.Tensor, path: Path) -> None:
    deblur, reblur = accelerator.unwrap_model(deblur), accelerator.unwrap_model(reblur)
    deblur.eval(), reblur.eval()
    with accelerator.autocast():
        fake_sharp = deblur(blurred)
        rows = [blurred, fake_sharp, reblur(fake_sharp)]
    deblur.train(), reblur.train()
    save_sample_grid(rows, path)


def _flat_hparams(config: Config) -> dict:
    """The config flattened to `section/key` scalars, the form trackers accept as hyperparameters."""
    flat = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}/")
            else:
                flat[prefix + key] = str(value) if isinstance(value, (list, tuple)) else value

    walk(config_to_dict(config), "")
    return flat
