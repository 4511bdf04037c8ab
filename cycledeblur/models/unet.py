"""The U-Net generator of pix2pix (Isola et al. 2017), with an optional self-attention block at the bottleneck."""

import torch
from torch import nn

from ..errors import ConfigError
from .layers import NORMS, EncoderDecoderGenerator, check_choice, norm_layer
from .registry import GENERATORS


class SelfAttention(nn.Module):
    """SAGAN's self-attention (Zhang et al. 2019): every position sees every other; gamma starts at 0 (identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.key = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # N x HW x C'
        key = self.key(x).flatten(2)  # N x C' x HW
        attention = torch.softmax(query @ key, dim=-1)  # N x HW x HW
        attended = (self.value(x).flatten(2) @ attention.transpose(1, 2)).view(batch, channels, height, width)
        return x + self.gamma * attended


@GENERATORS.register("unet")
class UnetGenerator(EncoderDecoderGenerator, pipeline_tag="image-to-image"):
    """Encoder of stride-2 4x4 convs (LeakyReLU 0.2), decoder of 2x resize-convs (ReLU), each decoder level fed the
    encoder level of the same size (skip connections), so fine detail needs not pass the bottleneck.

    Channels double per level up to 8 * base_channels. H and W must be multiples of `size_multiple`. With
    `residual_output` the head's output, starting at zero, is added to the input (the untrained network is the
    identity). `attention` adds a self-attention block at the bottleneck (global context at 1/2**n resolution).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        n_downsampling: int = 4,
        norm: str = "instance",
        residual_output: bool = True,
        attention: bool = False,
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        if n_downsampling < 1:
            raise ConfigError(f"n_downsampling must be >= 1, got {n_downsampling}")
        self.set_layout(in_channels, out_channels, n_downsampling, residual_output)
        widths = [base_channels * min(2**level, 8) for level in range(n_downsampling + 1)]
        bias = norm == "none"  # a bias before a normalisation is cancelled by its mean subtraction
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(widths[level], widths[level + 1], 4, 2, 1, bias=bias),
                norm_layer(norm, widths[level + 1]),
                nn.LeakyReLU(0.2, inplace=True),
            )
            for level in range(n_downsampling)
        )
        self.bottleneck = SelfAttention(widths[-1]) if attention else nn.Identity()
        # Decoder level l: upsample level l+1's features, concatenate level l's, fuse.
        self.up = nn.ModuleList(
            nn.ModuleDict(
                {
                    "upsample": nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(widths[level + 1], widths[level], 3, padding=1, bias=bias),
                        norm_layer(norm, widths[level]),
                        nn.ReLU(inplace=True),
                    ),
                    "fuse": nn.Sequential(
                        nn.Conv2d(2 * widths[level], widths[level], 3, padding=1, bias=bias),
                        norm_layer(norm, widths[level]),
                        nn.ReLU(inplace=True),
                    ),
                }
            )
            for level in reversed(range(n_downsampling))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        self.init_weights()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        features = self.bottleneck(skips.pop())
        for block in self.up:
            features = block["fuse"](torch.cat([block["upsample"](features), skips.pop()], dim=1))
        return features
