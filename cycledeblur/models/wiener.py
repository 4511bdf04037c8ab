"""A blurred -> sharp generator built on the physics of blur: estimate each image's kernel, invert it, refine."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .hub import HubModel
from .layers import zero_init
from .kernel import KernelPredictor
from .registry import GENERATORS

# The gate is sigmoid(GATE_SCALE * raw output): Adam moves a weight by about lr per step, so at lr 1e-3 an
# unscaled gate would need thousands of steps to open; scaled, a few hundred. It starts nearly shut.
GATE_SCALE = 10.0
GATE_INIT_LOGIT = -4.0


@GENERATORS.register("wiener")
class WienerDeblurGenerator(HubModel, pipeline_tag="image-to-image"):
    """Blind deconvolution as a network (after Dong et al., "Deep Wiener Deconvolution", 2020).

    Per image, an encoder predicts the blur kernel, the strength of a gradient prior and a gate; the image is
    deconvolved with the Wiener filter conj(K) / (|K|^2 + lambda |D|^2) (D: finite differences), mixed with
    the input by the gate, then a small full-resolution CNN adds a correction (ringing, noise). The
    deconvolution runs in float32 on the image's mirror extension, which is periodic, so the FFT sees no
    seam at the borders. Any image size works.

    The gate (0: keep the input, 1: the full deconvolution) starts at 0.018 and the correction at zero, so the
    untrained network is nearly the identity: what it gains over the blurred input is learned. The kernel starts
    as a Gaussian of `initial_sigma` px and the prior's weight at `initial_regularization`.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        kernel_size: int = 21,
        kernel_family: str = "free",
        base_channels: int = 16,
        initial_sigma: float = 1.5,
        initial_regularization: float = 3e-3,
        refine_channels: int = 16,
        refine_layers: int = 3,
    ) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ConfigError(f"deconvolution keeps the channel count: in_channels {in_channels}, out_channels {out_channels}")
        if not initial_regularization > 0:
            raise ConfigError(f"initial_regularization must be > 0, got {initial_regularization}")
        if refine_layers < 0 or (refine_layers > 0 and refine_channels < 1):
            raise ConfigError(f"refine_layers must be >= 0 and refine_channels >= 1; got {refine_layers}, {refine_channels}")
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        extras = {"log_regularization": math.log(initial_regularization), "gate_logit": GATE_INIT_LOGIT / GATE_SCALE}
        self.predictor = KernelPredictor(in_channels, kernel_size, base_channels, initial_sigma, extras, family=kernel_family)
        layers: list[nn.Module] = []
        width = 2 * in_channels  # the deconvolved image beside the input, whose noise it must not amplify
        for _ in range(refine_layers - 1):
            layers += [_refine_conv(width, refine_channels), nn.LeakyReLU(0.2, inplace=True)]
            width = refine_channels
        self.refine = nn.Sequential(*layers, _refine_conv(width, in_channels)) if refine_layers else None
        self.init_weights()
        self.predictor.reset_head()
        if self.refine is not None:
            zero_init(self.refine[-1])

    @property
    def size_multiple(self) -> int:
        return 1

    def estimate(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image: the blur kernel (N x k x k), the prior's weight lambda (N) and the gate (N), in float32."""
        kernels, extras = self.predictor(images)
        return kernels, extras["log_regularization"].exp(), torch.sigmoid(GATE_SCALE * extras["gate_logit"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        kernels, regularization, gate = self.estimate(images)
        deconvolved = wiener_deconvolve(images.float(), kernels, regularization)
        mixed = images.float() + gate.view(-1, 1, 1, 1) * (deconvolved - images.float())
        if self.refine is not None:
            mixed = mixed + self.refine(torch.cat([mixed, images.float()], dim=1).to(images.dtype)).float()
        return mixed.clamp(-1, 1).to(images.dtype)


def _refine_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    # Replicate padding works for any image size; reflection needs images wider than the pad.
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="replicate")


def wiener_deconvolve(images: torch.Tensor, kernels: torch.Tensor, regularization: torch.Tensor) -> torch.Tensor:
    """Undo the blur `kernels[i]` (N x k x k) of image i (N x C x H x W), with a gradient prior of weight
    `regularization[i]`."""
    with torch.autocast(images.device.type, enabled=False):
        images, kernels = images.float(), kernels.float()
        height, width = images.shape[-2:]
        size = kernels.shape[-1]
        # The mirror extension is 2H x 2W; the kernel must fit in it without wrapping onto itself.
        grow_y, grow_x = max(0, (size + 1) // 2 - height), max(0, (size + 1) // 2 - width)
        if grow_y or grow_x:
            images = F.pad(images, [0, grow_x, 0, grow_y], mode="replicate")
        mirrored = torch.cat([images, images.flip(-1)], dim=-1)
        mirrored = torch.cat([mirrored, mirrored.flip(-2)], dim=-2)
        rows, cols = mirrored.shape[-2:]
        # The kernel's centre goes to the origin, so that the filter does not shift the image.
        placed = F.pad(kernels, [0, cols - size, 0, rows - size]).roll((-(size // 2), -(size // 2)), dims=(-2, -1))
        # Spectra as (real, imaginary) pairs rather than complex tensors: ONNX has no complex type, so this is what
        # lets `cycledeblur export` trace the filter.
        kernel_real, kernel_imag = torch.view_as_real(torch.fft.rfft2(placed)).unsqueeze(1).unbind(-1)
        image_real, image_imag = torch.view_as_real(torch.fft.rfft2(mirrored)).unbind(-1)
        # The frequencies k / n of the FFT bins, for k from 0 (not fftfreq's -n/2 to n/2: the cosines are the same,
        # and unlike fftfreq, arange has an ONNX translation).
        freq_y = 2 * math.pi * torch.arange(rows, device=images.device)[:, None] / rows
        freq_x = 2 * math.pi * torch.arange(cols // 2 + 1, device=images.device)[None, :] / cols
        gradient_energy = 4 - 2 * torch.cos(freq_y) - 2 * torch.cos(freq_x)  # |D_x|^2 + |D_y|^2
        denominator = kernel_real.square() + kernel_imag.square() + regularization.view(-1, 1, 1, 1) * gradient_energy
        # image * conj(kernel) / denominator
        restored_real = (image_real * kernel_real + image_imag * kernel_imag) / denominator
        restored_imag = (image_imag * kernel_real - image_real * kernel_imag) / denominator
        restored_spectrum = torch.view_as_complex(torch.stack([restored_real, restored_imag], dim=-1))
        restored = torch.fft.irfft2(restored_spectrum, s=(rows, cols))
        return restored[..., :height, :width]
