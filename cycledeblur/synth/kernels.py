"""Random blur kernels: camera shake, Gaussian (lens/atmosphere) and defocus disks.

Every generator returns a float64 2-D array of odd size, non-negative and summing to 1,
drawn from the `numpy.random.Generator` it is given.
"""

from __future__ import annotations

import cmath
import math

import numpy as np

from ..errors import UserError

KINDS = ("motion", "gaussian", "defocus", "mixed")

# Boracchi & Foi simulate 2000 steps of a trajectory of nominal length 60; the per-step dynamics
# below are tuned to those units, so the trajectory is drawn there and rescaled afterwards.
_TRAJECTORY_STEPS = 2000
_NOMINAL_LENGTH = 60.0
_LOG_ANXIETY_RANGE = (math.log(1e-4), math.log(1e-2))
# Spread of the hand's log-speed; speeds then vary over roughly a factor of two either way.
_SPEED_VARIATION = 0.5
# Supersampling per pixel axis when integrating smooth kernels over each pixel's area.
_SUPERSAMPLE = 8


def motion_kernel(
    rng: np.random.Generator,
    size: int | None = None,
    length_range: tuple[float, float] = (5.0, 25.0),
    exposure_range: tuple[float, float] = (0.5, 1.0),
) -> np.ndarray:
    """A camera-shake kernel: the path, in pixels, that a point travels while the shutter is open.

    The shake is a random walk with inertia, a pull back to the rest position and impulsive jerks
    (Boracchi & Foi 2012). The shutter is open for a random fraction (`exposure_range`) of the
    shake, starting at a random time; the exposed path is `length_range` pixels long (arc length,
    so a path that folds back covers less ground). The kernel is centred on the path's centroid so
    blurring does not shift the image. `size=None` fits the kernel to the path; a given size
    shrinks a path that would not fit.
    """
    _check_range("length_range", length_range, minimum=0.0)
    _check_range("exposure_range", exposure_range, minimum=0.0, maximum=1.0)
    length = rng.uniform(*length_range)
    exposure = rng.uniform(*exposure_range)
    trajectory = _shake_trajectory(rng)
    exposed_steps = max(1, round(exposure * (_TRAJECTORY_STEPS - 1)))
    start = rng.integers(0, _TRAJECTORY_STEPS - exposed_steps)
    path = trajectory[start : start + exposed_steps + 1]
    path = (path - path.mean()) * (length / np.abs(np.diff(path)).sum())
    reach = max(np.abs(path.real).max(), np.abs(path.imag).max())
    if size is None:
        size = 2 * math.floor(reach) + 3
    _check_size(size)
    half = size // 2
    if reach >= half:
        path *= (half - 1e-6) / reach
    return _splat(path + complex(half, half), size)


def gaussian_kernel(
    rng: np.random.Generator,
    size: int | None = None,
    sigma_range: tuple[float, float] = (1.0, 3.0),
    anisotropic: bool = True,
) -> np.ndarray:
    """A Gaussian kernel with sigma drawn from `sigma_range` (px), per axis and at a random angle if anisotropic."""
    _check_range("sigma_range", sigma_range, minimum=0.0)
    sigma_u = rng.uniform(*sigma_range)
    sigma_v = rng.uniform(*sigma_range) if anisotropic else sigma_u
    angle = rng.uniform(0.0, math.pi)
    if size is None:
        size = 2 * math.ceil(3.0 * max(sigma_u, sigma_v)) + 1
    _check_size(size)
    cos, sin = math.cos(angle), math.sin(angle)

    def density(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        u, v = x * cos + y * sin, -x * sin + y * cos
        return np.exp(-0.5 * ((u / sigma_u) ** 2 + (v / sigma_v) ** 2))

    return _normalise(_integrate_over_pixels(density, size))


def defocus_kernel(
    rng: np.random.Generator,
    size: int | None = None,
    radius_range: tuple[float, float] = (1.5, 6.0),
) -> np.ndarray:
    """A uniform disk (an out-of-focus lens) with radius drawn from `radius_range` (px) and an anti-aliased rim."""
    _check_range("radius_range", radius_range, minimum=0.0)
    radius = rng.uniform(*radius_range)
    if size is None:
        size = 2 * math.ceil(radius) + 1
    _check_size(size)
    # A radius under half a pixel would leave no subsample inside; the centre pixel always sees the lens.
    radius = max(radius, 0.5)
    return _normalise(_integrate_over_pixels(lambda y, x: (x * x + y * y <= radius * radius).astype(float), size))


def random_kernel(rng: np.random.Generator, kind: str = "mixed") -> np.ndarray:
    """A kernel of `kind` with default parameters; "mixed" picks motion, gaussian or defocus at random."""
    check_kind(kind)
    generators = {"motion": motion_kernel, "gaussian": gaussian_kernel, "defocus": defocus_kernel}
    if kind == "mixed":
        kind = str(rng.choice(list(generators)))
    return generators[kind](rng)


def check_kind(kind: str) -> None:
    """Raise a UserError naming the valid kinds if `kind` is not one of them."""
    if kind not in KINDS:
        raise UserError(f"unknown blur kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def _shake_trajectory(rng: np.random.Generator) -> np.ndarray:
    """Positions (complex x + iy) of a random shake, in Boracchi & Foi's nominal units."""
    # Per-trajectory temperament, drawn as in the paper (how nervous, how strongly pulled back, how
    # jerky), except that the paper's anxiety, uniform up to 0.1, mostly tangles the path into a blob;
    # log-uniform over the calmer range below spans straight, curved and looped streaks like real shake.
    anxiety = math.exp(rng.uniform(*_LOG_ANXIETY_RANGE))
    centripetal = 0.7 * rng.random()
    gaussian_term = 10.0 * rng.random()
    jerk_frequency = 0.2 * rng.random()
    step = _NOMINAL_LENGTH / (_TRAJECTORY_STEPS - 1)  # unit speed
    moves = _TRAJECTORY_STEPS - 1
    kicks = (rng.standard_normal(moves) + 1j * rng.standard_normal(moves)).tolist()
    jerks = (rng.random(moves) < jerk_frequency * anxiety).tolist()
    # A jerk roughly reverses the motion: the hand overshoots and snaps back.
    jerk_turns = np.exp(1j * (math.pi + rng.random(moves) - 0.5)).tolist()
    velocity = cmath.exp(2j * math.pi * rng.random()) * step
    position = 0j
    positions = [position]
    for kick, jerk, turn, speed in zip(kicks, jerks, jerk_turns, _hand_speed(rng, moves).tolist()):
        acceleration = anxiety * (gaussian_term * kick - centripetal * position) * step
        if jerk:
            acceleration += 2.0 * velocity * turn
        velocity += acceleration
        velocity *= step / max(abs(velocity), 1e-12)
        position += speed * velocity
        positions.append(position)
    return np.array(positions)


def _hand_speed(rng: np.random.Generator, moves: int) -> np.ndarray:
    """A smoothly varying speed factor around 1: where the hand slows, the kernel gets brighter."""
    harmonics = np.arange(1, 5)
    amplitudes = _SPEED_VARIATION * rng.standard_normal(harmonics.size) / harmonics
    phases = rng.uniform(0.0, 2.0 * math.pi, harmonics.size)
    time = np.linspace(0.0, 1.0, moves)
    return np.exp(amplitudes @ np.cos(2.0 * math.pi * harmonics[:, None] * time + phases[:, None]))


def _splat(points: np.ndarray, size: int) -> np.ndarray:
    """Rasterise equally weighted sub-pixel points onto a size x size grid by bilinear splatting."""
    x, y = points.real, points.imag
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    kernel = np.zeros(size * size)
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        # Points sit inside [0, size - 1], so a neighbour off the grid only ever gets zero weight.
        rows, cols = np.minimum(y0 + dy, size - 1), np.minimum(x0 + dx, size - 1)
        kernel += np.bincount(rows * size + cols, weights=weight, minlength=size * size)
    return _normalise(kernel.reshape(size, size))


def _integrate_over_pixels(density, size: int) -> np.ndarray:
    """Average `density(y, x)` (offsets from the kernel centre, px) over each pixel's area."""
    offsets = (np.arange(size * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - size / 2
    fine = density(offsets[:, None], offsets[None, :])
    return fine.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))


def _normalise(kernel: np.ndarray) -> np.ndarray:
    kernel = np.clip(kernel, 0.0, None)
    return kernel / kernel.sum()


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 3 or size % 2 == 0:
        raise UserError(f"kernel size must be an odd integer >= 3, got {size!r}")


def _check_range(name: str, bounds: tuple[float, float], minimum: float, maximum: float = math.inf) -> None:
    low, high = bounds
    if not minimum < low <= high <= maximum:
        raise UserError(f"{name} must satisfy {minimum} < low <= high <= {maximum}, got {bounds!r}")
