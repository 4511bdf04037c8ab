"""The building blocks the network families share, so that every network reads them the same way: the norm
choices, zero-initialised output layers, and the encoder-decoder generator base (resnet, unet, light)."""

import torch
from torch import nn

from ..errors import ConfigError
from .hub import HubModel

NORMS = ("instance", "batch", "none")


def check_choice(argument: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{argument} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """CycleGAN's norms: InstanceNorm without affine parameters, BatchNorm, or none."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def zero_init(layer: nn.Conv2d) -> None:
    """A layer that starts at zero: added to the input, the untrained network is the identity."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


class EncoderDecoderGenerator(HubModel):
    """What the encoder-decoder generators (resnet, unet, light) share: `n_downsampling` stride-2 levels, so
    inputs must be multiples of `size_multiple`, and a `head` conv whose output is added to the input
    (`residual_output`, starting at zero: the untrained network is the identity) or squashed by tanh.
    Subclasses set those three attributes and define `features`."""

    n_downsampling: int
    residual_output: bool
    head: nn.Conv2d

    def set_layout(self, in_channels: int, out_channels: int, n_downsampling: int, residual_output: bool) -> None:
        """Record the attributes the shared parts read; a residual output must have the input's channel count."""
        if residual_output and in_channels != out_channels:
            raise ConfigError(f"residual_output needs in_channels == out_channels; got {in_channels} and {out_channels}")
        self.in_channels = in_channels
        self.n_downsampling = n_downsampling
        self.residual_output = residual_output

    @property
    def size_multiple(self) -> int:
        """Input heights and widths must be multiples of this."""
        return 2**self.n_downsampling

    def init_weights(self) -> None:
        super().init_weights()
        if self.residual_output:
            zero_init(self.head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's last feature map, at the input's resolution, for the head."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.size_multiple or x.shape[-1] % self.size_multiple:
            raise ValueError(f"input height and width must be multiples of {self.size_multiple}; got {tuple(x.shape[-2:])}")
        correction = self.head(self.features(x))
        return (x + correction).clamp(-1, 1) if self.residual_output else torch.tanh(correction)
