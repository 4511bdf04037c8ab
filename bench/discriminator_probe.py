"""Can a PatchGAN tell the user's blurred photos from sharp ones under a given blur, on photos it was not trained on?

Rerun: python bench/discriminator_probe.py [--folders bench/out/adapt/runs/data/motion] [--high-pass 1.0]
[--fake-sigma 1.4] [--steps 600] [--norm instance]

The discriminator of configs/adapt.yaml (16 base channels, 3 layers) learns, with the least-squares GAN loss and
Adam as in training, real = crops of FOLDERS/blur (the user's blurred photos), fake = crops of FOLDERS/sharp blurred
by an isotropic Gaussian of --fake-sigma px (0: left sharp) plus noise. The last quarter of each folder's files is
held out; every 100 steps it prints the share of held-out real and fake crops classified right (the mean logit
against 0.5). A discriminator that only learns its training photos' content stays near 0.5 there: its gradient
cannot teach a reblurring generator the user's blur.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from kornia.filters import gaussian_blur2d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/discriminator_probe.py` from anywhere

from cycledeblur.data import load_image_tensor  # noqa: E402
from cycledeblur.image_files import list_images  # noqa: E402
from cycledeblur.losses import discriminator_adversarial_loss  # noqa: E402
from cycledeblur.models import build_discriminator  # noqa: E402

CROP = 128
BATCH = 4


def random_crops(photos: list[torch.Tensor], count: int, generator: torch.Generator) -> torch.Tensor:
    crops = []
    for _ in range(count):
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        top, left = (int(torch.randint(side - CROP + 1, (1,), generator=generator)) for side in photo.shape[1:])
        crops.append(photo[:, top : top + CROP, left : left + CROP])
    return torch.stack(crops) * 2 - 1


def blurred(crops: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    if sigma > 0:
        side = 2 * int(3 * sigma) + 1
        crops = gaussian_blur2d(crops, (side, side), (sigma, sigma), border_type="reflect")
    return crops + 0.01 * torch.randn(crops.shape, generator=generator)  # noise 0.005 on the [0, 1] scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=Path, default=Path("bench/out/adapt/runs/data/motion"))
    parser.add_argument("--high-pass", type=float, default=1.0)
    parser.add_argument("--fake-sigma", type=float, default=1.4)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--norm", default="instance")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("command:", shlex.join(["python", "bench/discriminator_probe.py", *sys.argv[1:]]))
    photos = {side: [load_image_tensor(path, 3) for path in list_images(args.folders / side)] for side in ("blur", "sharp")}
    train = {side: images[: len(images) * 3 // 4] for side, images in photos.items()}
    held_out = {side: images[len(images) * 3 // 4 :] for side, images in photos.items()}
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    options = {"base_channels": 16, "n_layers": 3, "norm": args.norm, "high_pass": args.high_pass}
    discriminator = build_discriminator("patchgan", **options)
    optimizer = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.9, 0.99))
    for step in range(args.steps + 1):
        real = random_crops(train["blur"], BATCH, generator)
        fake = blurred(random_crops(train["sharp"], BATCH, generator), args.fake_sigma, generator)
        loss = discriminator_adversarial_loss(discriminator(real), discriminator(fake), "lsgan")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            with torch.no_grad():
                real_scores = discriminator(random_crops(held_out["blur"], 16, generator)).mean((1, 2, 3))
                fake_crops = blurred(random_crops(held_out["sharp"], 16, generator), args.fake_sigma, generator)
                fake_scores = discriminator(fake_crops).mean((1, 2, 3))
            accuracy = ((real_scores > 0.5).float().mean() + (fake_scores < 0.5).float().mean()) / 2
            print(f"step {step}: loss {loss.item():.3f}, held-out accuracy {accuracy.item():.2f}", flush=True)


if __name__ == "__main__":
    main()
