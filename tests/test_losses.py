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
