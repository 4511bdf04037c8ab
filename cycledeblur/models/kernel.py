"""Blur kernels predicted from an image, and the sharp -> blurred generator that convolves with them."""

from __future__ import annotations

import math

import torch
from kornia.filters import filter2d
from torch import nn

from ..errors import ConfigError
from .hub import HubModel
from .layers import check_choice
from .registry import GENERATORS


def check_kernel_size(kernel_size: int) -> None:
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be an odd number >= 3, got {kernel_size}")


KERNEL_FAMILIES = ("free", "gaussian", "trajectory")
# Points of a `trajectory` kernel's camera path: about one per pixel over the longest path a 21 px kernel holds.
TRAJECTORY_POINTS = 16
# The path starts as a circle this small (px), not as one point: the points of a path that sits in one spot all get
# the same gradient, which centring the path cancels, so it could never stretch into a streak.
TRAJECTORY_START_RADIUS = 0.25
# The narrowest spot (px). A narrower one draws the same one-pixel-wide line (the next pixel gets under 4e-6 of a
# spot of 0.2 px), while its gradient, distance^2 / width^3, overflows float32 as the width shrinks: a run whose
# kernels collapse into thin streaks would stop on NaN rather than train on.
TRAJECTORY_MIN_WIDTH = 0.2


def gaussian_logits(kernel_size: int, sigma: float) -> torch.Tensor:
    """Flattened log-density of a centred isotropic Gaussian: its softmax is the normalised Gaussian kernel."""
    radius = torch.arange(kernel_size, dtype=torch.float32) - kernel_size // 2
    return (-(radius[:, None] ** 2 + radius[None, :] ** 2) / (2 * sigma**2)).flatten()


def anisotropic_gaussian_logits(kernel_size: int, parameters: torch.Tensor) -> torch.Tensor:
    """N x k^2 log-densities of centred Gaussians from N x 3 (log sigma_u, log sigma_v, angle) rows."""
    radius = torch.arange(kernel_size, dtype=parameters.dtype, device=parameters.device) - kernel_size // 2
    y, x = radius[:, None].flatten().repeat_interleave(kernel_size), radius.repeat(kernel_size)
    log_u, log_v, angle = (column[:, None] for column in parameters.unbind(dim=1))
    u, v = x * angle.cos() + y * angle.sin(), -x * angle.sin() + y * angle.cos()
    return -0.5 * ((u / log_u.exp()) ** 2 + (v / log_v.exp()) ** 2)


def trajectory_logits(kernel_size: int, parameters: torch.Tensor) -> torch.Tensor:
    """N x k^2 log-densities of camera paths from N x (2 * (TRAJECTORY_POINTS - 1) + 1) rows: the (dy, dx) steps
    between consecutive points of the path (px), then the log width of the spot each point leaves (px, at least
    TRAJECTORY_MIN_WIDTH). The path is centred on its mean point; the density is the sum of one isotropic Gaussian
    spot per point."""
    steps, log_width = parameters[:, :-1].unflatten(1, (-1, 2)), parameters[:, -1:]
    points = torch.cat([steps.new_zeros(len(steps), 1, 2), steps.cumsum(dim=1)], dim=1)
    points = points - points.mean(dim=1, keepdim=True)
    radius = torch.arange(kernel_size, dtype=parameters.dtype, device=parameters.device) - kernel_size // 2
    y, x = radius[:, None].flatten().repeat_interleave(kernel_size), radius.repeat(kernel_size)
    squared_distance = (y - points[..., :1]) ** 2 + (x - points[..., 1:]) ** 2  # N x points x k^2
    width = log_width.exp().clamp_min(TRAJECTORY_MIN_WIDTH)
    return torch.logsumexp(-squared_distance / (2 * width[:, :, None] ** 2), dim=1)


def trajectory_start(sigma: float) -> torch.Tensor:
    """The `trajectory_logits` parameters of a tiny circle of spots of `sigma` px: a round blur of about sigma."""
    angles = torch.arange(TRAJECTORY_POINTS) * 2 * math.pi / TRAJECTORY_POINTS
    points = TRAJECTORY_START_RADIUS * torch.stack([angles.sin(), angles.cos()], dim=1)
    return torch.cat([points.diff(dim=0).flatten(), torch.tensor([math.log(sigma)])])


class KernelPredictor(nn.Module):
    """A strided conv encoder, pooled over the whole image, that predicts one blur kernel per image.

    Kernels are non-negative and sum to one (a softmax over kernel_size^2 logits). `family="free"` predicts
    every logit, so any shape (camera shake, defocus) can come out; `"gaussian"` predicts an anisotropic
    Gaussian (two widths and an angle), which is far easier to estimate from an image and fails gracefully;
    `"trajectory"` predicts a camera path of `TRAJECTORY_POINTS` points and the width of the spot each leaves:
    a streak of any length and bend, and, with no path, a round blur of that width (few numbers, all of them
    shaped like camera shake or a soft lens).
    The last layer starts with zero weights, so every image first gets a Gaussian of `initial_sigma` px (the
    trajectory: spots of that width on a circle of TRAJECTORY_START_RADIUS px, within 1e-3 of it).
    One more number per image comes out beside the kernel for each name in `extras`, starting at its value.
    With `latent` > 0, that many standard normal numbers, drawn anew for every image, join the image's features:
    one sharp photo then gets a different kernel each time, as one scene gets a different shake each shot.
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int,
        base_channels: int,
        initial_sigma: float,
        extras: dict[str, float] | None = None,
        family: str = "free",
        latent: int = 0,
    ) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        check_choice("kernel_family", family, KERNEL_FAMILIES)
        if not initial_sigma > 0:
            raise ConfigError(f"initial_sigma must be > 0, got {initial_sigma}")
        if latent < 0:
            raise ConfigError(f"latent must be >= 0, got {latent}")
        self.kernel_size = kernel_size
        self.family = family
        self.latent = latent
        widths = [base_channels, base_channels * 2, base_channels * 4]
        layers: list[nn.Module] = []
        for width_in, width_out in zip([in_channels, *widths[:-1]], widths):
            layers += [nn.Conv2d(width_in, width_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        if family == "free":
            kernel_init = gaussian_logits(kernel_size, initial_sigma)
        elif family == "gaussian":
            kernel_init = torch.tensor([math.log(initial_sigma), math.log(initial_sigma), 0.0])
        else:
            kernel_init = trajectory_start(initial_sigma)
        self.n_kernel_outputs = kernel_init.numel()
        self.extra_names = list(extras or {})
        self.head = nn.Linear(widths[-1] + latent, self.n_kernel_outputs + len(self.extra_names))
        self.initial_bias = torch.cat([kernel_init, torch.tensor(list((extras or {}).values()))])

    def reset_head(self) -> None:
        """Zero weights and the initial bias: call after any whole-network init, which would overwrite them."""
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(self.initial_bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """N x k x k kernels, and each extra by name (N values), in float32 whatever the autocast."""
        features = self.encoder(images)
        if self.latent:
            codes = torch.randn(len(features), self.latent, device=features.device, dtype=features.dtype)
            features = torch.cat([features, codes], dim=1)
        outputs = self.head(features).float()
        logits = outputs[:, : self.n_kernel_outputs]
        if self.family == "gaussian":
            logits = anisotropic_gaussian_logits(self.kernel_size, logits)
        elif self.family == "trajectory":
            logits = trajectory_logits(self.kernel_size, logits)
        kernels = logits.softmax(dim=-1).view(-1, self.kernel_size, self.kernel_size)
        extras = outputs[:, self.n_kernel_outputs :].unbind(dim=1)
        return kernels, dict(zip(self.extra_names, extras))


def kernel_statistics(kernels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The mean shape of N x k x k kernels: `size_px`, the root mean square distance of a kernel's mass from its
    centroid (a Gaussian of sigma s: s * sqrt(2)), and `elongation`, the ratio of its principal axes (1: round,
    like defocus or a Gaussian; large: a streak of camera shake)."""
    kernels = kernels.float()
    size = kernels.shape[-1]
    coordinates = torch.arange(size, dtype=kernels.dtype, device=kernels.device)
    y, x = coordinates[:, None].expand(size, size), coordinates[None, :].expand(size, size)
    mean_y, mean_x = (kernels * y).sum((-2, -1)), (kernels * x).sum((-2, -1))
    dy, dx = y - mean_y[:, None, None], x - mean_x[:, None, None]
    var_y, var_x, cov = (kernels * dy * dy).sum((-2, -1)), (kernels * dx * dx).sum((-2, -1)), (kernels * dy * dx).sum((-2, -1))
    # Eigenvalues of the 2 x 2 covariance [[var_y, cov], [cov, var_x]].
    half_trace, spread = (var_y + var_x) / 2, torch.sqrt(((var_y - var_x) / 2) ** 2 + cov**2)
    # Both floored alike: a kernel of one pixel (no spread at all) is round, not infinitely thin nor thinner than round.
    major, minor = (half_trace + spread).clamp_min(1e-6), (half_trace - spread).clamp_min(1e-6)
    return {"size_px": torch.sqrt(var_y + var_x).mean(), "elongation": torch.sqrt(major / minor).mean()}


@GENERATORS.register("kernel")
class KernelBlurGenerator(HubModel, pipeline_tag="image-to-image"):
    """Blurs each image with a kernel it predicts from that image: non-negative, summing to one, `kernel_size`^2.

    As the reblurring half of a CycleGAN, it can only produce what a camera can (a convolution of the sharp
    image), so the cycle blurred -> deblurred -> reblurred is well posed, and the cycle sharp -> reblurred ->
    deblurred trains the deblurring generator on realistically blurred copies of real sharp photos.
    The kernel starts as a Gaussian of `initial_sigma` px; `kernel_family` and `latent` are as in `KernelPredictor`:
    with a latent, the kernels of one photo vary from draw to draw (in training and evaluation alike).

    With `noise`, it also adds Gaussian sensor noise of a standard deviation it predicts per image (starting at
    `initial_noise`, in units of the [0, 1] range as in `cycledeblur synth --noise`), in training mode only.
    Real blurred photos carry sensor noise; without it, the discriminator of blurred images tells real from generated
    by the noise alone, and the generator's only way to add the missing fine texture is to blur less.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        kernel_size: int = 21,
        kernel_family: str = "free",
        base_channels: int = 32,
        initial_sigma: float = 1.5,
        noise: bool = True,
        initial_noise: float = 0.002,
        latent: int = 0,
    ) -> None:
        super().__init__()
        if in_channels != out_channels:
            raise ConfigError(f"a blur keeps the channel count: in_channels {in_channels}, out_channels {out_channels}")
        if noise and not initial_noise > 0:
            raise ConfigError(f"initial_noise must be > 0, got {initial_noise}")
        self.in_channels = in_channels
        self.kernel_size = kernel_size
        self.noise = noise
        # Images span [-1, 1], twice the [0, 1] range in which the noise level is given.
        extras = {"log_noise_std": math.log(2 * initial_noise)} if noise else {}
        self.predictor = KernelPredictor(
            in_channels, kernel_size, base_channels, initial_sigma, extras, family=kernel_family, latent=latent
        )
        self.init_weights()
        self.predictor.reset_head()

    @property
    def size_multiple(self) -> int:
        return 1

    def kernels(self, images: torch.Tensor) -> torch.Tensor:
        """One kernel per image: N x k x k, non-negative, each summing to one."""
        return self.predictor(images)[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        kernels, extras = self.predictor(images)
        blurred = convolve(images, kernels.to(images.dtype))
        if self.noise and self.training:
            # Reparameterised, so that the noise level gets gradients like any other output.
            noise_std = extras["log_noise_std"].exp().view(-1, 1, 1, 1).to(images.dtype)
            blurred = blurred + noise_std * torch.randn_like(blurred)
        return blurred


def convolve(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of image i with kernels[i]; the border is reflected: the scene goes on past the frame.
    kornia's `filter2d` correlates, hence the flipped kernels."""
    pad = kernels.shape[-1] // 2
    mode = "reflect" if pad < min(images.shape[-2:]) else "replicate"  # reflection needs the image to be wider than the pad
    return filter2d(images, kernels.flip(-2, -1), border_type=mode)
