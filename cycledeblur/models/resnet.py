"""The CycleGAN ResNet generator (Johnson et al. 2016; Zhu et al. 2017), optionally predicting a residual."""

import torch
from torch import nn

from .layers import NORMS, EncoderDecoderGenerator, check_choice, norm_layer
from .registry import GENERATORS

UPSAMPLES = ("resize_conv", "transposed")
PADDINGS = ("reflect", "zeros")


def _normed(conv: nn.Conv2d | nn.ConvTranspose2d, norm: str) -> list[nn.Module]:
    return [conv, norm_layer(norm, conv.out_channels), nn.ReLU(inplace=True)]


def _conv(in_channels: int, out_channels: int, kernel_size: int, padding_mode: str, *, stride: int = 1, bias: bool) -> nn.Conv2d:
    """A conv that keeps the image size, or halves it with stride 2."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, padding_mode=padding_mode, bias=bias)


class ResnetBlock(nn.Module):
    """Two 3x3 convs added back onto their input."""

    def __init__(self, channels: int, norm: str, padding: str, bias: bool) -> None:
        super().__init__()
        first, second = (_conv(channels, channels, 3, padding, bias=bias) for _ in range(2))
        self.body = nn.Sequential(*_normed(first, norm), second, norm_layer(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@GENERATORS.register("resnet")
class ResnetGenerator(EncoderDecoderGenerator, pipeline_tag="image-to-image"):
    """7x7 stem, strided 3x3 downsampling, residual blocks, 2x upsampling, 7x7 head.

    Maps NCHW images in [-1, 1] to images in [-1, 1]; H and W must be multiples of `size_multiple`.
    With `residual_output`, the head's output is added to the input and starts at zero, so the untrained
    network is exactly the identity and training begins at the blurred input's PSNR.
    `upsample="resize_conv"` (nearest 2x, then a 3x3 conv) avoids the checkerboard artefacts of `"transposed"`.
    `padding` is the padding mode of every conv.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
        norm: str = "instance",
        upsample: str = "resize_conv",
        residual_output: bool = True,
        padding: str = "reflect",
    ) -> None:
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("upsample", upsample, UPSAMPLES)
        check_choice("padding", padding, PADDINGS)
        self.set_layout(in_channels, out_channels, n_downsampling, residual_output)
        # A bias followed by a normalisation is cancelled by its mean subtraction.
        bias = norm == "none"
        widths = [base_channels * 2**level for level in range(n_downsampling + 1)]

        self.encoder = nn.Sequential(
            *_normed(_conv(in_channels, widths[0], 7, padding, bias=bias), norm),
            *(
                layer
                for level in range(n_downsampling)
                for layer in _normed(_conv(widths[level], widths[level + 1], 3, padding, stride=2, bias=bias), norm)
            ),
        )
        self.blocks = nn.Sequential(*(ResnetBlock(widths[-1], norm, padding, bias) for _ in range(n_blocks)))
        decoder: list[nn.Module] = []
        for level in reversed(range(n_downsampling)):
            if upsample == "resize_conv":
                decoder.append(nn.Upsample(scale_factor=2, mode="nearest"))
                conv = _conv(widths[level + 1], widths[level], 3, padding, bias=bias)
            else:
                conv = nn.ConvTranspose2d(widths[level + 1], widths[level], 3, stride=2, padding=1, output_padding=1, bias=bias)
            decoder += _normed(conv, norm)
        self.decoder = nn.Sequential(*decoder)
        self.head = _conv(widths[0], out_channels, 7, padding, bias=True)

        self.init_weights()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.blocks(self.encoder(x)))
