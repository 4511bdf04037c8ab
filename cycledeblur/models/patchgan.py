"""The N-layer PatchGAN discriminator of pix2pix (Isola et al. 2017) and CycleGAN."""

import torch
from torch import nn
from torch.nn.utils import parametrizations

from .hub import NORMS, HubModel, check_choice, norm_layer
from .registry import DISCRIMINATORS


@DISCRIMINATORS.register("patchgan")
class PatchDiscriminator(HubModel):
    """One real/fake logit per overlapping patch of 9 * 2**n_layers - 2 pixels (70 for n_layers=3).

    4x4 convs: n_layers - 1 of stride 2 after the stem, then two of stride 1. Channels double per layer up to
    8 * base_channels. `spectral_norm` wraps every conv, on top of `norm`.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
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
        return self.layers(x)
