"""NAFNet (Chen, Chu, Zhang & Sun, "Simple Baselines for Image Restoration", ECCV 2022): a U-Net of blocks with
no nonlinear activation. Gating (SimpleGate: one half of the channels times the other) and a per-channel
attention from the global average (simplified channel attention) do the work of ReLUs and full attention."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .hub import HubModel
from .registry import GENERATORS


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel (NCHW), with a learned scale and shift per channel."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in float32: under bf16 autocast, a variance of 16 channels in 8 mantissa bits is noise.
        dtype = x.dtype
        x = x.float()
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).square().mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(variance + self.eps)
        return (x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)).to(dtype)


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = x.chunk(2, dim=1)
        return first * second


class NAFBlock(nn.Module):
    """Two residual halves: (norm, 1x1 expand, 3x3 depthwise, gate, channel attention, 1x1) and (norm, 1x1 expand,
    gate, 1x1). Each half is scaled by a learned per-channel factor that starts at zero, so a new block is the
    identity and a deep stack trains from the first step."""

    def __init__(self, channels: int, expansion: int = 2) -> None:
        super().__init__()
        hidden = channels * expansion
        self.norm1 = LayerNorm2d(channels)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.gate = SimpleGate()
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden // 2, hidden // 2, 1))
        self.project = nn.Conv2d(hidden // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.ffn_expand = nn.Conv2d(channels, hidden, 1)
        self.ffn_project = nn.Conv2d(hidden // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.depthwise(self.expand(self.norm1(x))))
        y = self.project(y * self.attention(y))
        x = x + y * self.beta
        y = self.ffn_project(self.gate(self.ffn_expand(self.norm2(x))))
        return x + y * self.gamma


@GENERATORS.register("nafnet")
class NAFNetGenerator(HubModel, pipeline_tag="image-to-image"):
    """A 3x3 stem to `width` channels; per encoder level, `encoder_blocks[level]` NAFBlocks then a stride-2 2x2 conv
    that doubles the channels; `middle_blocks` at the bottom; per decoder level, a 1x1 conv + pixel shuffle up, the
    skip connection added, `decoder_blocks[level]` NAFBlocks (listed from the deepest level up); a 3x3 head whose
    output is added to the input. H and W must be multiples of `size_multiple` (2 ** levels)."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 16,
        encoder_blocks: tuple[int, ...] = (1, 1, 1, 8),
        middle_blocks: int = 1,
        decoder_blocks: tuple[int, ...] = (1, 1, 1, 1),
    ) -> None:
        super().__init__()
        encoder_blocks, decoder_blocks = tuple(encoder_blocks), tuple(decoder_blocks)
        if in_channels != out_channels:
            raise ConfigError(f"nafnet adds its output to the input: in_channels {in_channels} != out_channels {out_channels}")
        if len(encoder_blocks) != len(decoder_blocks):
            raise ConfigError(
                f"encoder_blocks {list(encoder_blocks)} and decoder_blocks {list(decoder_blocks)} must have one entry per level each"
            )
        if width < 1 or middle_blocks < 0 or min(encoder_blocks + decoder_blocks, default=0) < 0:
            raise ConfigError("width must be >= 1 and block counts >= 0")
        self.in_channels = in_channels
        self.levels = len(encoder_blocks)
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        channels = width
        for count in encoder_blocks:
            self.encoders.append(nn.Sequential(*(NAFBlock(channels) for _ in range(count))))
            self.downs.append(nn.Conv2d(channels, 2 * channels, 2, stride=2))
            channels *= 2
        self.middle = nn.Sequential(*(NAFBlock(channels) for _ in range(middle_blocks)))
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for count in decoder_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.PixelShuffle(2)))
            channels //= 2
            self.decoders.append(nn.Sequential(*(NAFBlock(channels) for _ in range(count))))
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)

    @property
    def size_multiple(self) -> int:
        return 2**self.levels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2] % self.size_multiple or images.shape[-1] % self.size_multiple:
            raise ValueError(f"input height and width must be multiples of {self.size_multiple}; got {tuple(images.shape[-2:])}")
        x = self.stem(images)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(up(x) + skip)
        return (images + self.head(x).to(images.dtype)).clamp(-1, 1)
