"""UNIT (Liu, Breuel & Kautz, "Unsupervised Image-to-Image Translation Networks", NeurIPS 2017): a variational
autoencoder per domain, blurred and sharp, whose latent spaces are one. Each domain has its own encoder front and
decoder back; the encoders' last blocks and the decoders' first blocks are shared, so that a photo and its other-
domain version are meant to land on the same latent code. Blurred -> sharp is: encode as blurred, decode as sharp.

The posterior of each code is a Gaussian of unit variance around the encoder's output (UNIT's choice): training
samples `mean + N(0, 1)` (the reparameterisation trick) and pays KL = mean^2 / 2 per element; inference decodes the
mean itself.

With a blur code (UID-GAN, Lu, Tai & Tang, CVPR 2019), a separate encoder reads *how* a blurred photo is blurred into
a small vector with a full diagonal Gaussian posterior, and the blurred decoder consumes it beside the content code:
sharp content decoded with a code drawn from the prior N(0, I) is a new, sampled blur.

Encoders and decoders are registered families (`ENCODERS`, `DECODERS`) of one signature, so a config picks them by
name; the delivered generator (`UnitGenerator`, family `unit`) is one encoder and one decoder with the shared blocks
between them, loadable alone; `UnitTranslator` holds both domains for training and shares its modules with a
`UnitGenerator` view of its blurred -> sharp path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .hub import HubModel
from .layers import NORMS, check_choice, norm_layer, zero_init
from .light import LightBlock, depthwise_separable
from .registry import DECODERS, ENCODERS, GENERATORS
from .resnet import ResnetBlock

DOMAINS = ("blurred", "sharp")


def _widths(base_channels: int, n_downsampling: int) -> list[int]:
    return [base_channels * 2**level for level in range(n_downsampling + 1)]


def _normed_conv(in_channels: int, out_channels: int, kernel_size: int, norm: str, *, stride: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, padding_mode="reflect", bias=norm == "none")
    return [conv, norm_layer(norm, out_channels), nn.ReLU(inplace=True)]


def _resnet_block(channels: int, norm: str) -> nn.Module:
    return ResnetBlock(channels, norm, "reflect", bias=norm == "none")  # a bias before a norm is cancelled by it


class Encoder(nn.Module):
    """Image -> features at 1 / 2^n_downsampling: a stem, `n_downsampling` halving layers that double the channels,
    `n_blocks` blocks. A family defines `stem`, `down` and `block` (its block at the latent's width, of which the
    shared layers are made too)."""

    def __init__(self, in_channels: int, base_channels: int, n_downsampling: int, n_blocks: int, norm: str) -> None:
        super().__init__()
        widths = _widths(base_channels, n_downsampling)
        down = [self.down(widths[level], widths[level + 1], norm) for level in range(n_downsampling)]
        blocks = [self.block(widths[-1], norm) for _ in range(n_blocks)]
        self.layers = nn.Sequential(self.stem(in_channels, widths[0], norm), *down, *blocks)

    stem: Callable[[int, int, str], nn.Module]
    down: Callable[[int, int, str], nn.Module]
    block: Callable[[int, str], nn.Module]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class Decoder(nn.Module):
    """Features -> image, the encoder's mirror: `n_blocks` blocks, `n_downsampling` doubling layers that halve the
    channels, a head and tanh. A family defines `block`, `up` and `head`. With `residual_output` the head's output
    is a correction to the photo that was encoded: no tanh, and `zero_head` makes it start at zero. With
    `source_skip` the decoder also reads that photo at full resolution (a conv stem added to its last features, then
    one block): the detail a code at 1 / 2^n_downsampling cannot carry is there to keep, and a blur is there to see."""

    def __init__(
        self, out_channels: int, base_channels: int, n_downsampling: int, n_blocks: int, norm: str, residual_output: bool, source_skip: bool
    ) -> None:
        super().__init__()
        widths = _widths(base_channels, n_downsampling)
        blocks = [self.block(widths[-1], norm) for _ in range(n_blocks)]
        up = [self.up(widths[level + 1], widths[level], norm) for level in reversed(range(n_downsampling))]
        self.layers = nn.Sequential(*blocks, *up, self.head(widths[0], out_channels), nn.Identity() if residual_output else nn.Tanh())
        self.source_stem = self.source_mix = None
        if source_skip:
            stem = nn.Conv2d(out_channels, widths[0], 3, padding=1, padding_mode="reflect")
            self.source_stem = nn.Sequential(stem, nn.ReLU(inplace=True))
            self.source_mix = self.block(widths[0], norm)

    block: Callable[[int, str], nn.Module]
    up: Callable[[int, int, str], nn.Module]
    head: Callable[[int, int], nn.Module]

    def zero_head(self) -> None:
        zero_init(self.layers[-2])

    def forward(self, features: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        if self.source_stem is None:
            return self.layers(features)
        body, head_and_activation = self.layers[:-2], self.layers[-2:]
        return head_and_activation(self.source_mix(body(features) + self.source_stem(source)))


def _corrected(source: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
    return (source + correction).clamp(-1, 1)


@ENCODERS.register("resnet")
class ResnetEncoder(Encoder):
    """UNIT's encoder: 7x7 stem, strided 3x3 convs, residual blocks."""

    stem = staticmethod(lambda i, o, norm: nn.Sequential(*_normed_conv(i, o, 7, norm)))
    down = staticmethod(lambda i, o, norm: nn.Sequential(*_normed_conv(i, o, 3, norm, stride=2)))
    block = staticmethod(_resnet_block)


@DECODERS.register("resnet")
class ResnetDecoder(Decoder):
    """UNIT's decoder: residual blocks, nearest 2x + 3x3 conv per level, 7x7 head."""

    block = staticmethod(_resnet_block)
    up = staticmethod(lambda i, o, norm: nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *_normed_conv(i, o, 3, norm)))
    head = staticmethod(lambda i, o: nn.Conv2d(i, o, 7, padding=3, padding_mode="reflect"))


@ENCODERS.register("light")
class LightEncoder(Encoder):
    """The `resnet` encoder's layout with depthwise-separable convs (~9x fewer multiply-adds per conv)."""

    stem = staticmethod(lambda i, o, norm: nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(inplace=True)))
    down = staticmethod(lambda i, o, norm: depthwise_separable(i, o, norm, stride=2))
    block = staticmethod(LightBlock)


@DECODERS.register("light")
class LightDecoder(Decoder):
    """The `resnet` decoder's layout with depthwise-separable convs."""

    block = staticmethod(LightBlock)
    up = staticmethod(lambda i, o, norm: nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), depthwise_separable(i, o, norm)))
    head = staticmethod(lambda i, o: nn.Conv2d(i, o, 3, padding=1))


class BlurEncoder(nn.Module):
    """UID-GAN's blur encoder: strided convs down to 1/16, a global average, and per code element a mean and a
    log-variance. The average makes the code one vector per photo, whatever its size: blur, not content."""

    def __init__(self, in_channels: int, base_channels: int, code_size: int) -> None:
        super().__init__()
        widths = [min(base_channels * 2**level, 4 * base_channels) for level in range(5)]
        layers = [nn.Conv2d(in_channels, widths[0], 7, padding=3, padding_mode="reflect"), nn.ReLU(inplace=True)]
        for level in range(4):
            layers += [nn.Conv2d(widths[level], widths[level + 1], 4, 2, 1, padding_mode="reflect"), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Conv2d(widths[-1], 2 * code_size, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_variance = self.layers(images).flatten(1).chunk(2, dim=1)
        return mean, log_variance.clamp(-10, 10)  # exp() of a wild log-variance early in training would overflow


def _check_layout(encoder: str, decoder: str, norm: str, n_downsampling: int, n_blocks: int, shared_blocks: int) -> None:
    ENCODERS.get(encoder)  # raises a ConfigError naming the valid families
    DECODERS.get(decoder)
    check_choice("norm", norm, NORMS)
    if n_downsampling < 0 or n_blocks < 0 or shared_blocks < 1:
        raise ConfigError(
            f"the unit generator needs n_downsampling >= 0, n_blocks >= 0 and shared_blocks >= 1 (the shared latent is "
            f"made of them); got {n_downsampling}, {n_blocks}, {shared_blocks}"
        )


def _shared_stack(family: type, channels: int, norm: str, count: int) -> nn.Sequential:
    return nn.Sequential(*(family.block(channels, norm) for _ in range(count)))


@GENERATORS.register("unit")
class UnitGenerator(HubModel, pipeline_tag="image-to-image"):
    """One direction of a UNIT translator: encoder, the shared blocks (the encoders' last, the decoders' first),
    decoder. Decodes the posterior mean: a plain image -> image network, deterministic. H and W must be multiples of
    `size_multiple`. With `residual_output` the decoder's output, starting at zero, corrects the input photo, as in
    the other generator families; UNIT's own decoders (False) draw the whole photo. With `source_skip` the decoder
    also reads the input photo at full resolution. Trained by `train.mode: unit`, which delivers its blurred -> sharp
    direction."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        encoder: str = "resnet",
        decoder: str = "resnet",
        base_channels: int = 64,
        n_downsampling: int = 2,
        n_blocks: int = 3,
        shared_blocks: int = 1,
        norm: str = "instance",
        residual_output: bool = False,
        source_skip: bool = False,
    ) -> None:
        super().__init__()
        _check_layout(encoder, decoder, norm, n_downsampling, n_blocks, shared_blocks)
        if residual_output and in_channels != out_channels:
            raise ConfigError(f"residual_output needs in_channels == out_channels; got {in_channels} and {out_channels}")
        self.in_channels, self.n_downsampling, self.residual_output = in_channels, n_downsampling, residual_output
        width = _widths(base_channels, n_downsampling)[-1]
        encoder_family, decoder_family = ENCODERS.get(encoder), DECODERS.get(decoder)
        self.encoder = encoder_family(in_channels, base_channels, n_downsampling, n_blocks, norm)
        self.shared_encoder = _shared_stack(encoder_family, width, norm, shared_blocks)
        self.shared_decoder = _shared_stack(decoder_family, width, norm, shared_blocks)
        self.decoder = decoder_family(out_channels, base_channels, n_downsampling, n_blocks, norm, residual_output, source_skip)
        self.init_weights()

    def init_weights(self) -> None:
        super().init_weights()
        if self.residual_output:
            self.decoder.zero_head()

    @property
    def size_multiple(self) -> int:
        return 2**self.n_downsampling

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The posterior mean of the images' latent code."""
        if images.shape[-2] % self.size_multiple or images.shape[-1] % self.size_multiple:
            raise ValueError(f"input height and width must be multiples of {self.size_multiple}; got {tuple(images.shape[-2:])}")
        return self.shared_encoder(self.encoder(images))

    def decode(self, latent: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """`source`, the photo `latent` was encoded from, only with `source_skip`."""
        return self.decoder(self.shared_decoder(latent), source)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        decoded = self.decode(self.encode(images), images)
        return _corrected(images, decoded) if self.residual_output else decoded


class UnitTranslator(HubModel):
    """Both domains of UNIT, for training: an encoder and a decoder per domain (`encoders`, `decoders`), the shared
    blocks once, and with `blur_code_size` the blur encoder and the layer that mixes its code into the blurred
    decoder's input. `blurred_to_sharp` is a `UnitGenerator` made of this translator's own modules (not a copy):
    what a run validates, averages and delivers.

    Called as `translator(images, "encode", domain)` -> posterior mean, `translator(latent, "decode", domain, code,
    source)` -> image (`code` only for the blurred domain with a blur code; `source`, the photo the latent was
    encoded from, only with `residual_output` or `source_skip`), `translator(images, "blur_code")` -> (mean,
    log-variance): every training pass goes through `forward`, as data-parallel training needs."""

    architecture: ClassVar[str] = "unit_translator"

    def __init__(
        self,
        channels: int = 3,
        encoder: str = "resnet",
        decoder: str = "resnet",
        base_channels: int = 64,
        n_downsampling: int = 2,
        n_blocks: int = 3,
        shared_blocks: int = 1,
        norm: str = "instance",
        blur_code_size: int = 0,
        residual_output: bool = False,
        source_skip: bool = False,
    ) -> None:
        super().__init__()
        if blur_code_size < 0:
            raise ConfigError(f"model.blur_code_size must be >= 0, got {blur_code_size}")
        direction = {"in_channels": channels, "out_channels": channels, "encoder": encoder, "decoder": decoder}
        layout = {"base_channels": base_channels, "n_downsampling": n_downsampling, "n_blocks": n_blocks}
        output = {"residual_output": residual_output, "source_skip": source_skip}
        view = UnitGenerator(**direction, **layout, shared_blocks=shared_blocks, norm=norm, **output)
        self.n_downsampling, self.blur_code_size, self.residual_output = n_downsampling, blur_code_size, residual_output
        width = _widths(base_channels, n_downsampling)[-1]
        encoder_family, decoder_family = ENCODERS.get(encoder), DECODERS.get(decoder)
        self.encoders = nn.ModuleDict({d: encoder_family(channels, base_channels, n_downsampling, n_blocks, norm) for d in DOMAINS})
        self.shared_encoder = _shared_stack(encoder_family, width, norm, shared_blocks)
        self.shared_decoder = _shared_stack(decoder_family, width, norm, shared_blocks)
        self.decoders = nn.ModuleDict(
            {d: decoder_family(channels, base_channels, n_downsampling, n_blocks, norm, residual_output, source_skip) for d in DOMAINS}
        )
        if blur_code_size:
            self.blur_encoder = BlurEncoder(channels, base_channels, blur_code_size)
            self.code_mixer = nn.Conv2d(width + blur_code_size, width, 1)
        self.init_weights()
        view.encoder, view.shared_encoder = self.encoders["blurred"], self.shared_encoder
        view.shared_decoder, view.decoder = self.shared_decoder, self.decoders["sharp"]
        # Kept out of the module tree, so that state dicts hold each weight once; `deepcopy` (the weight average)
        # copies the view together with the modules it shares.
        object.__setattr__(self, "blurred_to_sharp", view)

    blurred_to_sharp: UnitGenerator

    def init_weights(self) -> None:
        super().init_weights()
        if self.residual_output:
            for decoder in self.decoders.values():
                decoder.zero_head()

    @property
    def size_multiple(self) -> int:
        return 2**self.n_downsampling

    def forward(
        self, inputs: torch.Tensor, route: str, domain: str = "", code: torch.Tensor | None = None, source: torch.Tensor | None = None
    ):
        if route == "encode":
            return self.shared_encoder(self.encoders[domain](inputs))
        if route == "decode":
            features = self.shared_decoder(inputs)
            if domain == "blurred" and self.blur_code_size:
                spread = code.to(features.dtype)[:, :, None, None].expand(-1, -1, *features.shape[-2:])
                features = self.code_mixer(torch.cat([features, spread], dim=1))
            decoded = self.decoders[domain](features, source)
            return _corrected(source, decoded) if self.residual_output else decoded
        if route == "blur_code":
            return self.blur_encoder(inputs)
        raise ValueError(f"unknown route {route!r}: encode, decode or blur_code")
