"""The N-layer PatchGAN discriminator of pix2pix (Isola et al. 2017) and CycleGAN."""

import math

import torch
from kornia.filters import gaussian_blur2d
from torch import nn
from torch.nn.utils import parametrizations

from .hub import HubModel
from .layers import NORMS, check_choice, norm_layer
from .registry import DISCRIMINATORS


@DISCRIMINATORS.register("patchgan")
class PatchDiscriminator(HubModel):
    """One real/fake logit per overlapping patch of 9 * 2**n_layers - 2 pixels (70 for n_layers=3).

    4x4 convs: n_layers - 1 of stride 2 after the stem, then two of stride 1. Channels double per layer up to
    8 * base_channels. `spectral_norm` wraps every conv, on top of `norm`. With `high_pass` (the sigma, px, of a
    Gaussian subtracted from the input) it judges edges and texture, where blur shows, rather than the colours and
    layout by which it could tell two small, unrelated photo sets apart.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
        high_pass: float = 0.0,
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        if high_pass < 0:
            raise ValueError(f"high_pass is a Gaussian's sigma in pixels (0: off), got {high_pass}")
        self.high_pass = high_pass
        # A bias followed by a normalisation is cancelled by its mean subtraction.
        bias = norm == "none"
        widths = [base_channels * min(2**layer, 8) for layer in range(n_layers + 1)]
        # As in pix2pix, the stem has no norm.
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for layer in range(1, n_layers + 1):
            stride = 2 if layer < n_layers else 1
            layers += [
                nn.Conv2d(widths[layer - 1], widths[layer], 4, stride, 1, bias=bias),
                norm_layer(norm, widths[layer]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.layers = nn.Sequential(*layers)

        self.init_weights()
        if spectral_norm:
            for conv in self._convs():
                parametrizations.spectral_norm(conv)

    def _convs(self) -> list[nn.Conv2d]:
        return [layer for layer in self.layers if isinstance(layer, nn.Conv2d)]

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input patch behind one output logit."""
        field = 1
        for conv in reversed(self._convs()):
            field = (field - 1) * conv.stride[0] + conv.kernel_size[0]
        return field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.high_pass > 0:
            side = 2 * math.ceil(3 * self.high_pass) + 1
            x = x - gaussian_blur2d(x, (side, side), (self.high_pass, self.high_pass), border_type="reflect")
        return self.layers(x)


@DISCRIMINATORS.register("multiscale_patchgan")
class MultiScaleDiscriminator(HubModel):
    """Two PatchGANs (pix2pixHD, Wang et al. 2018): one on the image, one on it downsampled 2x (average pooling).

    The half-resolution discriminator sees twice the context per logit, so it weighs the global structure while the
    full-resolution one weighs fine detail. `forward` returns [(full_weight, logits), (half_weight, logits)];
    the adversarial losses take the weighted sum of the two scales' losses.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
        high_pass: float = 0.0,
        full_weight: float = 0.6,
        half_weight: float = 0.4,
    ) -> None:
        super().__init__()
        options = {"in_channels": in_channels, "base_channels": base_channels, "n_layers": n_layers, "norm": norm}
        options |= {"spectral_norm": spectral_norm, "high_pass": high_pass}
        self.full_scale = PatchDiscriminator(**options)
        self.half_scale = PatchDiscriminator(**options)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.weights = (full_weight, half_weight)

    def forward(self, x: torch.Tensor) -> list[tuple[float, torch.Tensor]]:
        return [(self.weights[0], self.full_scale(x)), (self.weights[1], self.half_scale(self.downsample(x)))]
