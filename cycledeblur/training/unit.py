"""Unpaired deblurring with UNIT (Liu, Breuel & Kautz 2017), a VAE-GAN: the training loop, written out in one function.

Domains: *blurred* and *sharp* photos, unrelated to each other. Three networks: the translator (`models/unit.py`: an
encoder and a decoder per domain around one shared latent space) and a PatchGAN judging each domain. A step:
1. encode each photo into its domain's code and sample it (reparameterisation: posterior mean + N(0, 1) noise);
2. decode each code in its own domain (VAE reconstruction, + KL of the codes to the prior) and in the other
   (translation, judged by that domain's discriminator);
3. encode each translation in its new domain and decode it back home (the cycle through the latent, + KL);
4. the discriminators learn real from translated.
With `model.blur_code`, UID-GAN's blur code: the blurred decoder also reads a code of how a photo is blurred, its
own for reconstruction and the way back, one drawn from the prior for the sharp photos it blurs.
The run delivers the blurred -> sharp direction, decoding posterior means: a plain deterministic generator.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import Config, LossConfig
from ..losses import color_consistency, generator_adversarial_loss, structural_dissimilarity, total_variation
from ..models import UnitTranslator, build_discriminator
from .adversarial import frozen, judge, with_instance_noise
from .image_pool import ImagePool
from .optim import unpaired_optimizers
from .samples import sample_batch, save_samples, spread_indices
from .session import TrainingSession
from .unpaired_data import unpaired_crops


def build_translator(config: Config) -> UnitTranslator:
    """The translator `config` trains: `model.generator`'s options, and the blur code when `model.blur_code`."""
    code_size = config.model.blur_code_size if config.model.blur_code else 0
    return UnitTranslator(channels=config.data.channels, **config.model.generator.options, blur_code_size=code_size)


def train_unit(config: Config, resume: str | bool | None = None) -> Path:
    """Train `config` (`train.mode: unit`) into `config.output_dir`; returns the folder of the blurred -> sharp generator."""
    session = TrainingSession(config, resume)
    accelerator, train_cfg, loss_cfg, data_cfg = session.accelerator, config.train, config.loss, config.data

    blurred_set, sharp_set, loaders = unpaired_crops(session, config)
    discriminator_spec = config.model.discriminator
    networks = session.start_networks(
        translator=build_translator(config),
        discriminator_sharp=build_discriminator(discriminator_spec.name, in_channels=data_cfg.channels, **discriminator_spec.options),
        discriminator_blurred=build_discriminator(discriminator_spec.name, in_channels=data_cfg.channels, **discriminator_spec.options),
    )
    session.check_crop_sizes(networks["translator"], networks["discriminator_sharp"], data_cfg.channels)
    optimizer_g, optimizer_d, scheduler_g, scheduler_d = unpaired_optimizers(
        networks["translator"].parameters(), [networks["discriminator_sharp"], networks["discriminator_blurred"]], train_cfg
    )
    networks, (optimizer_g, optimizer_d, scheduler_g, scheduler_d), delivered = session.prepare(
        networks, optimizer_g, optimizer_d, scheduler_g, scheduler_d
    )
    translator, discriminator_sharp, discriminator_blurred = (
        networks[name] for name in ("translator", "discriminator_sharp", "discriminator_blurred")
    )
    prepared_loaders = [accelerator.prepare(loader) for loader, _ in loaders]
    # Called with frozen weights in the generator step, past DDP's hooks.
    unwrapped = {
        name: accelerator.unwrap_model(networks[name], keep_torch_compile=False)
        for name in ("discriminator_sharp", "discriminator_blurred")
    }
    code_size = accelerator.unwrap_model(translator, keep_torch_compile=False).blur_code_size

    pool_seed = train_cfg.seed * 10_000 + 2 * accelerator.process_index  # distinct per run seed, rank and side
    fake_sharp_pool = ImagePool(train_cfg.pool_size, seed=pool_seed)
    fake_blurred_pool = ImagePool(train_cfg.pool_size, seed=pool_seed + 1)
    session.start(delivered, fake_sharp_pool=fake_sharp_pool, fake_blurred_pool=fake_blurred_pool)

    sample_photos = [blurred_set.sample_images(i)[0] for i in spread_indices(len(blurred_set), 4)]
    sample_inputs = sample_batch(sample_photos, train_cfg.sample_size, delivered.size_multiple).to(accelerator.device)

    def sample_rows(deblur, translator) -> list[torch.Tensor]:
        deblurred = deblur(sample_inputs)
        typical_blur = sample_inputs.new_zeros(len(sample_inputs), code_size)  # the prior's mean
        reblurred = translator(translator(deblurred, "encode", "sharp"), "decode", "blurred", typical_blur, deblurred)
        return [sample_inputs, deblurred, reblurred]

    streams = zip(*(session.data.batches(loader, sampler, session.step) for loader, (_, sampler) in zip(prepared_loaders, loaders)))
    with session:
        while session.step < train_cfg.max_steps:
            blurred, sharp = session.data.windows(session.step, *next(streams))
            noise = train_cfg.instance_noise_at(session.step)
            update_generators = session.step % train_cfg.n_critic == 0
            with accelerator.accumulate(*networks.values()):
                if update_generators:
                    fake_sharp, fake_blurred, terms, weights = unit_terms(translator, unwrapped, blurred, sharp, loss_cfg, code_size, noise)
                    accelerator.backward(sum(weights[name] * value for name, value in terms.items()))
                    session.hold_frozen()
                    optimizer_g.step()
                    optimizer_g.zero_grad(set_to_none=True)
                else:  # an extra discriminator update: fresh translations, no generator loss
                    with torch.no_grad():
                        fake_sharp, fake_blurred = translations(translator, blurred, sharp, code_size)
                    terms = {}

                # Discriminators: real vs. translated (from the history pool).
                terms["d_sharp"] = judge(discriminator_sharp, sharp, fake_sharp_pool.query(fake_sharp.detach()), loss_cfg.gan_mode, noise)
                terms["d_blurred"] = judge(
                    discriminator_blurred, blurred, fake_blurred_pool.query(fake_blurred.detach()), loss_cfg.gan_mode, noise
                )
                accelerator.backward(terms["d_sharp"] + terms["d_blurred"])
                optimizer_d.step()
                optimizer_d.zero_grad(set_to_none=True)

            session.record(terms)
            if not accelerator.sync_gradients:
                continue
            session.end_step(
                [scheduler_g, scheduler_d],
                list(networks.values()),
                lambda path: save_samples(accelerator, [delivered, translator], sample_rows, path),
                generator_updated=update_generators,
            )
    return session.finish(delivered)


def sampled(mean: torch.Tensor) -> torch.Tensor:
    """A draw from the unit-variance posterior around `mean` (the reparameterisation trick)."""
    return mean + torch.randn_like(mean)


def latent_kl(mean: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, I) || N(0, I)), averaged over the code's elements."""
    return 0.5 * mean.float().square().mean()


def blur_codes(translator, blurred: torch.Tensor, code_size: int) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The blurred photos' sampled blur codes, a code drawn from the prior for each photo to be blurred, and the
    KL of the codes' posteriors (summed over a code, averaged over photos); Nones without a blur code."""
    if not code_size:
        return None, None, None
    mean, log_variance = translator(blurred, "blur_code")
    own = mean + (0.5 * log_variance).exp() * torch.randn_like(mean)
    kl = 0.5 * (mean.float().square() + log_variance.float().exp() - log_variance.float() - 1).sum(dim=1).mean()
    return own, torch.randn_like(mean), kl


def translations(translator, blurred: torch.Tensor, sharp: torch.Tensor, code_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each batch decoded in the other domain, from sampled codes (the sharp ones blurred with prior blur codes)."""
    prior_code = torch.randn(len(sharp), code_size, device=sharp.device) if code_size else None
    fake_sharp = translator(sampled(translator(blurred, "encode", "blurred")), "decode", "sharp", source=blurred)
    return fake_sharp, translator(sampled(translator(sharp, "encode", "sharp")), "decode", "blurred", prior_code, sharp)


def unit_terms(translator, unwrapped: dict, blurred, sharp, loss_cfg: LossConfig, code_size: int, instance_noise: float = 0.0):
    """The translator's loss terms and their weights, plus the translations (reused, detached, by the discriminators)."""
    vae = loss_cfg.vae
    own_code, prior_code, code_kl = blur_codes(translator, blurred, code_size)
    code_blurred, code_sharp = translator(blurred, "encode", "blurred"), translator(sharp, "encode", "sharp")
    latent_blurred, latent_sharp = sampled(code_blurred), sampled(code_sharp)
    fake_sharp = translator(latent_blurred, "decode", "sharp", source=blurred)
    fake_blurred = translator(latent_sharp, "decode", "blurred", prior_code, sharp)
    terms = {
        "reconstruction": F.l1_loss(translator(latent_blurred, "decode", "blurred", own_code, blurred), blurred)
        + F.l1_loss(translator(latent_sharp, "decode", "sharp", source=sharp), sharp),
        "kl": latent_kl(code_blurred) + latent_kl(code_sharp),
    }
    weights = {"reconstruction": vae.reconstruction, "kl": vae.kl}
    if code_kl is not None:
        terms["blur_kl"], weights["blur_kl"] = code_kl, vae.blur_kl

    with (
        frozen(unwrapped["discriminator_sharp"]) as discriminator_sharp,
        frozen(unwrapped["discriminator_blurred"]) as discriminator_blurred,
    ):
        terms["adv_deblur"] = generator_adversarial_loss(
            discriminator_sharp(with_instance_noise(fake_sharp, instance_noise)), loss_cfg.gan_mode
        )
        terms["adv_reblur"] = generator_adversarial_loss(
            discriminator_blurred(with_instance_noise(fake_blurred, instance_noise)), loss_cfg.gan_mode
        )
    weights |= {"adv_deblur": loss_cfg.adv_deblur, "adv_reblur": loss_cfg.adv_reblur}

    # The cycle: each translation encoded in its new domain must decode back to the photo it came from. Without
    # cycle_trains_reblur the way back from a blurred sharp photo trains the deblurring path alone: the blurred
    # decoder learns to blur from its discriminator, where the cycle would pin it to the identity.
    reblurred = fake_blurred if loss_cfg.cycle_trains_reblur else fake_blurred.detach()
    code_back_to_blurred, code_back_to_sharp = translator(fake_sharp, "encode", "sharp"), translator(reblurred, "encode", "blurred")
    sharp_again = translator(sampled(code_back_to_sharp), "decode", "sharp", source=reblurred)
    blurred_again = translator(sampled(code_back_to_blurred), "decode", "blurred", own_code, fake_sharp)
    terms["cycle"] = F.l1_loss(sharp_again, sharp) + loss_cfg.cycle_blurred * F.l1_loss(blurred_again, blurred)
    terms["cycle_kl"] = latent_kl(code_back_to_blurred) + latent_kl(code_back_to_sharp)
    weights |= {"cycle": loss_cfg.cycle, "cycle_kl": vae.cycle_kl}
    if loss_cfg.ssim > 0:
        terms["ssim"] = structural_dissimilarity(blurred_again, blurred) + structural_dissimilarity(sharp_again, sharp)
        weights["ssim"] = loss_cfg.ssim
    # Identity, as in CycleGAN: a sharp photo read as blurred comes out as it went in (and a blurred one read as
    # sharp), decoded from posterior means as at inference.
    if loss_cfg.identity_deblur > 0:
        terms["identity_deblur"] = F.l1_loss(translator(translator(sharp, "encode", "blurred"), "decode", "sharp", source=sharp), sharp)
        weights["identity_deblur"] = loss_cfg.identity_deblur * loss_cfg.cycle
    if loss_cfg.identity_reblur > 0:
        reblurred = translator(translator(blurred, "encode", "sharp"), "decode", "blurred", own_code, blurred)
        terms["identity_reblur"] = F.l1_loss(reblurred, blurred)
        weights["identity_reblur"] = loss_cfg.identity_reblur * loss_cfg.cycle
    if loss_cfg.tv > 0:
        terms["tv"], weights["tv"] = total_variation(fake_sharp), loss_cfg.tv
    if loss_cfg.color > 0:
        sigma, space = loss_cfg.color_blur_sigma, loss_cfg.color_space
        terms["color"] = color_consistency(fake_sharp, blurred, sigma, space) + color_consistency(fake_blurred, sharp, sigma, space)
        weights["color"] = loss_cfg.color
    return fake_sharp, fake_blurred, terms, weights
