"""The color loss's CIELAB conversion, against scikit-image's, on a real photo."""

import numpy as np
import torch
from skimage import color, data

from cycledeblur.losses import color_consistency, rgb_to_lab


def test_rgb_to_lab_matches_scikit_image():
    photo = data.astronaut()[::4, ::4]
    images = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1
    expected = color.rgb2lab(photo / 255.0)  # L in [0, 100], a and b in about [-110, 110]
    lab = rgb_to_lab(images)[0].permute(1, 2, 0).numpy()
    scaled = np.stack([(lab[..., 0] + 1) * 50, lab[..., 1] * 110, lab[..., 2] * 110], axis=-1)
    assert np.abs(scaled - expected).max() < 0.05


def test_lab_color_loss_has_finite_gradients_on_black_and_sees_hue_shifts():
    black = torch.full((1, 3, 16, 16), -1.0, requires_grad=True)
    color_consistency(black, torch.zeros(1, 3, 16, 16), sigma=1.0, space="lab").backward()
    assert torch.isfinite(black.grad).all()
    gray = torch.zeros(1, 3, 16, 16)
    tinted = gray + torch.tensor([0.1, -0.05, -0.05]).view(1, 3, 1, 1)  # a reddish cast of about the same luminance
    assert color_consistency(tinted, gray, sigma=1.0, space="lab") > 0.02


def test_structural_dissimilarity_is_zero_for_equal_images_and_grows_with_blur():
    from torchvision.transforms.v2.functional import gaussian_blur

    from cycledeblur.losses import structural_dissimilarity

    photo = torch.from_numpy(data.astronaut()[::8, ::8].copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    slightly, strongly = (gaussian_blur(photo, [9, 9], [sigma, sigma]) for sigma in (0.8, 2.5))
    assert structural_dissimilarity(photo, photo).abs() < 1e-5
    assert 0 < structural_dissimilarity(slightly, photo) < structural_dissimilarity(strongly, photo)
    blurred = strongly.clone().requires_grad_(True)
    structural_dissimilarity(blurred, photo).backward()
    assert torch.isfinite(blurred.grad).all() and blurred.grad.abs().sum() > 0
