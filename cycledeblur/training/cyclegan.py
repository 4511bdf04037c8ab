"""Unpaired deblurring with CycleGAN (Zhu et al. 2017): the training loop, written out in one function.

Domains: *blurred* photos and *sharp* photos, unrelated to each other. Four networks:
`deblur` (blurred -> sharp), `reblur` (sharp -> blurred), and a PatchGAN judging each domain.
Semi-paired: when a few blurred/sharp pairs are given (`data.paired_blur`), an L1 term pulls their deblurred
versions toward their sharp twins.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import Config, LossConfig
from ..data import PairedCropDataset, load_pairs
from ..losses import (
    color_consistency,
    generator_adversarial_loss,
    structural_dissimilarity,
    total_variation,
)
from ..models import build_discriminator, build_generator
from ..models.kernel import KernelBlurGenerator, kernel_statistics
from .adversarial import frozen, judge, with_instance_noise
from .image_pool import ImagePool
from .optim import unpaired_optimizers
from .guard import GUARD_PHOTOS
from .samples import evaluating, sample_batch, save_kernel_picture, save_samples, spread_indices
from .session import TrainingSession
from .unpaired_data import unpaired_crops


def train_unpaired(config: Config, resume: str | bool | None = None) -> Path:
    """Train `config` into `config.output_dir`; returns the folder of the final blur->sharp generator."""
    session = TrainingSession(config, resume)
    accelerator, train_cfg, loss_cfg, data_cfg = session.accelerator, config.train, config.loss, config.data

    blurred_set, sharp_set, loaders = unpaired_crops(session, config)
    if data_cfg.paired_blur:
        with accelerator.main_process_first():
            pairs = load_pairs(
                data_cfg.paired_blur,
                data_cfg.paired_sharp,
                split=data_cfg.split,
                image_column=data_cfg.image_column,
                keys=("data.paired_blur", "data.paired_sharp"),
            )
        pair_set = PairedCropDataset(*pairs, data_cfg, seed=train_cfg.seed + 2, image_column=data_cfg.image_column)
        # The pairs are few by definition: a smaller batch of them rather than an error.
        loaders.append(session.data.loader(pair_set, seed=train_cfg.seed + 2, batch_size=min(train_cfg.batch_size, len(pair_set))))

    channels = {"in_channels": data_cfg.channels, "out_channels": data_cfg.channels}
    reblur_spec = config.model.reblur_generator or config.model.generator
    discriminator_spec = config.model.discriminator
    networks = session.start_networks(
        deblur=build_generator(config.model.generator.name, **channels, **config.model.generator.options),
        reblur=build_generator(reblur_spec.name, **channels, **reblur_spec.options),
        discriminator_sharp=build_discriminator(discriminator_spec.name, in_channels=data_cfg.channels, **discriminator_spec.options),
        discriminator_blurred=build_discriminator(discriminator_spec.name, in_channels=data_cfg.channels, **discriminator_spec.options),
    )
    session.check_crop_sizes(networks["deblur"], networks["discriminator_sharp"], data_cfg.channels)
    reblur_group = {"params": networks["reblur"].parameters(), "lr": train_cfg.lr_reblur or train_cfg.lr_g}
    optimizer_g, optimizer_d, scheduler_g, scheduler_d = unpaired_optimizers(
        [{"params": networks["deblur"].parameters()}, reblur_group],
        [networks["discriminator_sharp"], networks["discriminator_blurred"]],
        train_cfg,
    )
    networks, (optimizer_g, optimizer_d, scheduler_g, scheduler_d), delivered = session.prepare(
        networks, optimizer_g, optimizer_d, scheduler_g, scheduler_d
    )
    deblur, reblur = networks["deblur"], networks["reblur"]
    discriminator_sharp, discriminator_blurred = networks["discriminator_sharp"], networks["discriminator_blurred"]
    prepared_loaders = [accelerator.prepare(loader) for loader, _ in loaders]
    # Networks used with frozen weights (the discriminators in the generator step) are called unwrapped, past DDP's hooks.
    unwrapped = {
        "reblur": accelerator.unwrap_model(reblur, keep_torch_compile=False),
        "discriminator_sharp": accelerator.unwrap_model(discriminator_sharp, keep_torch_compile=False),
        "discriminator_blurred": accelerator.unwrap_model(discriminator_blurred, keep_torch_compile=False),
    }

    pool_seed = train_cfg.seed * 10_000 + 2 * accelerator.process_index  # distinct per run seed, rank and side
    fake_sharp_pool = ImagePool(train_cfg.pool_size, seed=pool_seed)
    fake_blurred_pool = ImagePool(train_cfg.pool_size, seed=pool_seed + 1)
    session.start(delivered, fake_sharp_pool=fake_sharp_pool, fake_blurred_pool=fake_blurred_pool)

    multiple = accelerator.unwrap_model(deblur, keep_torch_compile=False).size_multiple
    sample_photos = [blurred_set.sample_images(i)[0] for i in spread_indices(len(blurred_set), 4)]
    sample_inputs = sample_batch(sample_photos, train_cfg.sample_size, multiple)
    sample_inputs = sample_inputs.to(accelerator.device)

    def sample_rows(deblur, reblur) -> list[torch.Tensor]:
        deblurred = deblur(sample_inputs)
        return [sample_inputs, deblurred, reblur(deblurred)]

    draws_kernels = isinstance(unwrapped["reblur"], KernelBlurGenerator)

    def save_all_samples(path: Path) -> None:
        save_samples(accelerator, [delivered, reblur], sample_rows, path)
        if draws_kernels:  # the blur the reblurring generator has learned: the kernels of the grid's last row
            with evaluating(accelerator, [delivered, reblur]) as (deblur_net, reblur_net):
                kernels = reblur_net.kernels(deblur_net(sample_inputs))
            save_kernel_picture(kernels, path.with_name(f"{path.stem}_kernels.png"))

    streams = zip(*(session.data.batches(loader, sampler, session.step) for loader, (_, sampler) in zip(prepared_loaders, loaders)))
    with session:
        while session.step < train_cfg.max_steps:
            blurred, sharp, *pair = next(streams)
            blurred, sharp = session.data.windows(session.step, blurred, sharp)
            pair = session.data.windows(session.step, *pair[0]) if pair else None
            noise = train_cfg.instance_noise_at(session.step)
            update_generators = session.step % train_cfg.n_critic == 0
            with accelerator.accumulate(*networks.values()):
                if update_generators:
                    # Generators: fool the discriminators, and come back where they started.
                    fake_sharp, fake_blurred, terms, weights = generator_terms(
                        deblur, reblur, unwrapped, blurred, sharp, loss_cfg, noise, pair
                    )
                    loss_g = sum(weights[name] * value for name, value in terms.items())
                    accelerator.backward(loss_g)
                    session.hold_frozen()
                    optimizer_g.step()
                    optimizer_g.zero_grad(set_to_none=True)
                else:  # an extra discriminator update: fresh fakes, no generator loss
                    with torch.no_grad():
                        fake_sharp, fake_blurred, terms = deblur(blurred), reblur(sharp), {}

                # Discriminators: real vs. generated (from the history pool), on detached fakes.
                if loss_cfg.adv_deblur > 0:
                    terms["d_sharp"] = judge(
                        discriminator_sharp, sharp, fake_sharp_pool.query(fake_sharp.detach()), loss_cfg.gan_mode, noise
                    )
                terms["d_blurred"] = judge(
                    discriminator_blurred, blurred, fake_blurred_pool.query(fake_blurred.detach()), loss_cfg.gan_mode, noise
                )
                accelerator.backward(sum(terms[name] for name in ("d_sharp", "d_blurred") if name in terms))
                optimizer_d.step()
                optimizer_d.zero_grad(set_to_none=True)

            session.record(terms)
            if draws_kernels and update_generators and session.logs_this_step:  # the log shows this batch's kernels
                with torch.no_grad():
                    session.record(kernel_statistics(unwrapped["reblur"].kernels(sharp)), group="kernel")
            if not accelerator.sync_gradients:
                continue
            session.end_step(
                [scheduler_g, scheduler_d],
                list(networks.values()),
                save_all_samples,
                generator_updated=update_generators,
            )
    if train_cfg.guard:
        session.guard(delivered, reblur, [sharp_set.sample_images(i)[0] for i in spread_indices(len(sharp_set), GUARD_PHOTOS)])
    return session.finish(delivered)


def generator_terms(deblur, reblur, unwrapped: dict, blurred, sharp, loss_cfg: LossConfig, instance_noise: float = 0.0, pair=None):
    """The generators' loss terms and their weights, plus the fakes (reused, detached, by the discriminators' step).
    `pair`: an optional (blurred, sharp) batch of true pairs, for the semi-paired L1 term."""
    fake_sharp, fake_blurred = deblur(blurred), reblur(sharp)
    with (
        frozen(unwrapped["discriminator_sharp"]) as discriminator_sharp,
        frozen(unwrapped["discriminator_blurred"]) as discriminator_blurred,
    ):
        terms = {}
        if loss_cfg.adv_deblur > 0:  # at 0 the deblurrer learns from the cycle alone, and its discriminator idles
            terms["adv_deblur"] = generator_adversarial_loss(
                discriminator_sharp(with_instance_noise(fake_sharp, instance_noise)), loss_cfg.gan_mode
            )
        terms["adv_reblur"] = generator_adversarial_loss(
            discriminator_blurred(with_instance_noise(fake_blurred, instance_noise)), loss_cfg.gan_mode
        )
    # Without cycle_trains_reblur the cycle trains the deblurrer only: its partner is frozen, its fakes detached.
    partner = contextlib.nullcontext(reblur) if loss_cfg.cycle_trains_reblur else frozen(unwrapped["reblur"])
    with partner as cycle_reblur:
        if loss_cfg.cycle_blurred > 0 or loss_cfg.ssim > 0:
            blurred_again = cycle_reblur(fake_sharp)
        sharp_again = deblur(fake_blurred if loss_cfg.cycle_trains_reblur else fake_blurred.detach())
    terms["cycle"] = F.l1_loss(sharp_again, sharp)
    if loss_cfg.cycle_blurred > 0:
        terms["cycle"] = loss_cfg.cycle_blurred * F.l1_loss(blurred_again, blurred) + terms["cycle"]
    weights = {"adv_deblur": loss_cfg.adv_deblur, "adv_reblur": loss_cfg.adv_reblur, "cycle": loss_cfg.cycle}
    if loss_cfg.ssim > 0:
        terms["ssim"] = structural_dissimilarity(blurred_again, blurred) + structural_dissimilarity(sharp_again, sharp)
        weights["ssim"] = loss_cfg.ssim
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
        terms["color"] = color_consistency(fake_sharp, blurred, sigma, space) + color_consistency(fake_blurred, sharp, sigma, space)
        weights["color"] = loss_cfg.color
    if pair is not None:
        pair_blurred, pair_sharp = pair
        terms["paired_l1"] = F.l1_loss(deblur(pair_blurred), pair_sharp)
        weights["paired_l1"] = loss_cfg.paired_l1
    return fake_sharp, fake_blurred, terms, weights
