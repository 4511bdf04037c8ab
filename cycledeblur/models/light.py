"""A lightweight generator for mobile latency: the ResNet generator's layout with depthwise-separable convs."""

import torch
from torch import nn

from .layers import NORMS, EncoderDecoderGenerator, check_choice, norm_layer
from .registry import GENERATORS


def depthwise_separable(in_channels: int, out_channels: int, norm: str, *, stride: int = 1, activation: bool = True) -> nn.Sequential:
    """A 3x3 conv per channel, then a 1x1 conv across channels (MobileNet): ~9x fewer multiply-adds than a 3x3 conv."""
    bias = norm == "none"  # a bias before a normalisation is cancelled by its mean subtraction
    layers = [
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=bias),
        norm_layer(norm, in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=bias),
        norm_layer(norm, out_channels),
    ]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if activation else nn.Sequential(*layers)


class LightBlock(nn.Module):
    """Two depthwise-separable convs added back onto their input."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            depthwise_separable(channels, channels, norm),
            depthwise_separable(channels, channels, norm, activation=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@GENERATORS.register("light")
class LightGenerator(EncoderDecoderGenerator, pipeline_tag="image-to-image"):
    """Stem, strided depthwise-separable downsampling, `n_blocks` light residual blocks, 2x resize + depthwise-
    separable upsampling, 3x3 head. H and W must be multiples of `size_multiple`; `residual_output` as in the
    ResNet generator (the untrained network is the identity)."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 32,
        n_blocks: int = 6,
        n_downsampling: int = 2,
        norm: str = "instance",
        residual_output: bool = True,
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        self.set_layout(in_channels, out_channels, n_downsampling, residual_output)
        widths = [base_channels * 2**level for level in range(n_downsampling + 1)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.ReLU(inplace=True))
        self.encoder = nn.Sequential(
            *(depthwise_separable(widths[level], widths[level + 1], norm, stride=2) for level in range(n_downsampling))
        )
        self.blocks = nn.Sequential(*(LightBlock(widths[-1], norm) for _ in range(n_blocks)))
        self.decoder = nn.Sequential(
            *(
                layer
                for level in reversed(range(n_downsampling))
                for layer in (
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    depthwise_separable(widths[level + 1], widths[level], norm),
                )
            )
        )
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        self.init_weights()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.blocks(self.encoder(self.stem(x))))
