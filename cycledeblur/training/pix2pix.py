"""Paired deblurring with a conditional GAN (pix2pix, Isola et al. 2017): the training loop, written out in one function.

Data: blurred/sharp pairs with matching file names (GoPro-style). Two networks: `deblur` (blurred -> sharp) and a
conditional PatchGAN that judges a candidate beside the blurred photo it came from: (blurred, sharp) is real,
(blurred, deblurred) is fake, so the discriminator can check that the output is *this* photo sharpened, not any sharp photo.
Generator loss: adversarial x `loss.adv_deblur` + L1 to the sharp twin x `loss.paired_l1` (+ TV). With
`train.pretrain_steps`, the generator first learns from L1 alone (two-stage training).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import Config
from ..data import PairedCropDataset, SyntheticPairDataset, load_image_source, load_pairs
from ..losses import discriminator_adversarial_loss, generator_adversarial_loss, structural_dissimilarity, total_variation
from ..models import build_discriminator, build_generator
from .adversarial import frozen, with_instance_noise
from .optim import adam, linear_decay
from .samples import sample_batch, save_samples, spread_indices
from .session import TrainingSession


def train_paired(config: Config, resume: str | bool | None = None) -> Path:
    """Train `config` (`train.mode: paired`) into `config.output_dir`; returns the generator's folder."""
    session = TrainingSession(config, resume)
    accelerator, train_cfg, loss_cfg, data_cfg = session.accelerator, config.train, config.loss, config.data

    with accelerator.main_process_first():  # the first process builds the datasets' cache, the others reuse it
        if data_cfg.synthetic_blur is not None:
            sharp_images = load_image_source(data_cfg.sharp, split=data_cfg.split, image_column=data_cfg.image_column, key="data.sharp")
            pair_set = SyntheticPairDataset(sharp_images, data_cfg, seed=train_cfg.seed, image_column=data_cfg.image_column)
        else:
            blurred_images, sharp_images = load_pairs(
                data_cfg.blur,
                data_cfg.sharp,
                split=data_cfg.split,
                image_column=data_cfg.image_column,
                keys=("data.blur", "data.sharp"),
            )
            pair_set = PairedCropDataset(blurred_images, sharp_images, data_cfg, seed=train_cfg.seed, image_column=data_cfg.image_column)
    loader, sampler = session.data.loader(pair_set, seed=train_cfg.seed)

    channels = data_cfg.channels
    networks = session.start_networks(
        deblur=build_generator(config.model.generator.name, in_channels=channels, out_channels=channels, **config.model.generator.options),
        # Conditional: the discriminator sees the blurred photo and a candidate stacked along the channels.
        discriminator=build_discriminator(config.model.discriminator.name, in_channels=2 * channels, **config.model.discriminator.options),
    )
    session.check_crop_sizes(networks["deblur"], networks["discriminator"], 2 * channels)
    optimizer_g = adam(networks["deblur"].parameters(), train_cfg.lr_g, train_cfg)
    optimizer_d = adam(networks["discriminator"].parameters(), train_cfg.lr_d, train_cfg)
    scheduler_g = linear_decay(optimizer_g, train_cfg.max_steps, train_cfg.lr_decay_start)
    # The discriminator's schedule spans its own training, which starts after the generator's pretraining.
    scheduler_d = linear_decay(optimizer_d, train_cfg.max_steps - train_cfg.pretrain_steps, train_cfg.lr_decay_start)
    networks, (optimizer_g, optimizer_d, scheduler_g, scheduler_d, loader), delivered = session.prepare(
        networks, optimizer_g, optimizer_d, scheduler_g, scheduler_d, loader
    )
    deblur, discriminator = networks["deblur"], networks["discriminator"]
    # Called with frozen weights in the generator step, past DDP's hooks.
    unwrapped_discriminator = accelerator.unwrap_model(discriminator, keep_torch_compile=False)
    session.start(delivered)

    multiple = accelerator.unwrap_model(deblur, keep_torch_compile=False).size_multiple
    sample_pairs = [pair_set.sample_images(i) for i in spread_indices(len(pair_set), 4)]
    sample_blurred, sample_sharp = (
        sample_batch(list(side), train_cfg.sample_size, multiple).to(accelerator.device) for side in zip(*sample_pairs)
    )

    def sample_rows(deblur) -> list[torch.Tensor]:
        return [sample_blurred, deblur(sample_blurred), sample_sharp]

    batches = session.data.batches(loader, sampler, session.step)
    with session:
        while session.step < train_cfg.max_steps:
            blurred, sharp = session.data.windows(session.step, *next(batches))
            # Without an adversarial weight the discriminator never trains: plain supervised restoration.
            content_only = session.step < train_cfg.pretrain_steps or loss_cfg.adv_deblur == 0
            noise = train_cfg.instance_noise_at(session.step)
            update_generator = content_only or session.step % train_cfg.n_critic == 0
            with accelerator.accumulate(*networks.values()):
                if update_generator:
                    fake_sharp = deblur(blurred)
                    terms = {"paired_l1": F.l1_loss(fake_sharp, sharp)}
                    weights = {"paired_l1": loss_cfg.paired_l1}
                    if loss_cfg.ssim > 0:
                        terms["ssim"], weights["ssim"] = structural_dissimilarity(fake_sharp, sharp), loss_cfg.ssim
                    if not content_only:
                        with frozen(unwrapped_discriminator) as fixed_discriminator:
                            candidate = with_instance_noise(torch.cat([blurred, fake_sharp], 1), noise)
                            terms["adv_deblur"] = generator_adversarial_loss(fixed_discriminator(candidate), loss_cfg.gan_mode)
                        weights["adv_deblur"] = loss_cfg.adv_deblur
                    if loss_cfg.tv > 0:
                        terms["tv"], weights["tv"] = total_variation(fake_sharp), loss_cfg.tv
                    accelerator.backward(sum(weights[name] * value for name, value in terms.items()))
                    session.hold_frozen()
                    optimizer_g.step()
                    optimizer_g.zero_grad(set_to_none=True)
                else:  # an extra discriminator update: a fresh fake, no generator loss
                    with torch.no_grad():
                        fake_sharp, terms = deblur(blurred), {}

                if not content_only:  # the discriminator waits for a generator worth judging
                    real = with_instance_noise(torch.cat([blurred, sharp], 1), noise)
                    fake = with_instance_noise(torch.cat([blurred, fake_sharp.detach()], 1), noise)
                    terms["d_sharp"] = discriminator_adversarial_loss(discriminator(real), discriminator(fake), loss_cfg.gan_mode)
                    accelerator.backward(terms["d_sharp"])
                    optimizer_d.step()
                    optimizer_d.zero_grad(set_to_none=True)

            session.record(terms)
            if not accelerator.sync_gradients:
                continue
            session.end_step(
                [scheduler_g] if content_only else [scheduler_g, scheduler_d],
                list(networks.values()),
                lambda path: save_samples(accelerator, [delivered], sample_rows, path),
                generator_updated=update_generator,
            )
    return session.finish(delivered)
