"""A sharp -> blurred generator constrained by physics: predict one blur kernel per image and convolve with it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .hub import HubModel
from .registry import GENERATORS


@GENERATORS.register("kernel")
class KernelBlurGenerator(HubModel, pipeline_tag="image-to-image"):
    """Blurs each image with a kernel it predicts from that image: non-negative, summing to one, `kernel_size`^2.

    As the reblurring half of a CycleGAN, it can only produce what a camera can (a convolution of the sharp
    image), so the cycle blurred -> deblurred -> reblurred is well posed, and the cycle sharp -> reblurred ->
    deblurred trains the deblurring generator on realistically blurred copies of real sharp photos.
    The kernel starts as a Gaussian of `initial_sigma` px.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        kernel_size: int = 21,
        base_channels: int = 32,
        initial_sigma: float = 1.5,
    ) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ConfigError(f"a blur keeps the channel count: in_channels {in_channels} != out_channels {out_channels}")
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be an odd number >= 3, got {kernel_size}")
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        widths = [base_channels, base_channels * 2, base_channels * 4]
        layers: list[nn.Module] = []
        for width_in, width_out in zip([in_channels, *widths[:-1]], widths):
            layers += [nn.Conv2d(width_in, width_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.to_kernel = nn.Linear(widths[-1], kernel_size * kernel_size)
        self.init_weights()
        nn.init.zeros_(self.to_kernel.weight)
        with torch.no_grad():  # softmax(log g) == g: start from a plausible mild blur, not from the identity
            radius = torch.arange(kernel_size, dtype=torch.float32) - kernel_size // 2
            self.to_kernel.bias.copy_((-(radius[:, None] ** 2 + radius[None, :] ** 2) / (2 * initial_sigma**2)).flatten())

    @property
    def size_multiple(self) -> int:
        return 1

    def kernels(self, images: torch.Tensor) -> torch.Tensor:
        """One kernel per image: N x k x k, non-negative, each summing to one."""
        logits = self.to_kernel(self.encoder(images)).float()
        return logits.softmax(dim=-1).view(-1, self.kernel_size, self.kernel_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = images.shape
        kernels = self.kernels(images).to(images.dtype)
        pad = self.kernel_size // 2
        # Reflection, as a camera sees the scene go on past the frame; replicate where the image is too small.
        mode = "reflect" if pad < min(height, width) else "replicate"
        padded = F.pad(images, [pad] * 4, mode=mode)
        # A grouped convolution applies each image's own kernel to all of its channels in one call.
        weight = kernels.repeat_interleave(channels, dim=0).flip(-2, -1).unsqueeze(1)
        blurred = F.conv2d(padded.reshape(1, batch * channels, *padded.shape[-2:]), weight, groups=batch * channels)
        return blurred.view(batch, channels, height, width)
