"""The training curves of a run as inline SVG, drawn by matplotlib: one small panel per logged value, grouped by
its prefix (loss/, lr/, perf/, val/). A long run is binned to at most `MAX_POINTS` points per curve (the bin's
mean, with its min-max band), so the page stays small whatever the number of steps."""

from __future__ import annotations

import io
import math

import numpy as np

MAX_POINTS = 400
GROUP_TITLES = {
    "loss": "Loss terms",
    "lr": "Learning rates",
    "perf": "Throughput",
    "val": "Validation",
    "data": "Data",
}


def series(metrics: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every numeric value logged, as (steps, values), in the order first logged."""
    found: dict[str, tuple[list, list]] = {}
    for row in metrics:
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                steps, values = found.setdefault(key, ([], []))
                steps.append(row["step"])
                values.append(value)
    return {key: (np.asarray(steps, float), np.asarray(values, float)) for key, (steps, values) in found.items()}


def binned(steps: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    """(steps, mean, low, high) over at most `max_points` bins of consecutive points."""
    if len(steps) <= max_points:
        return steps, values, values, values
    bins = np.array_split(np.arange(len(steps)), max_points)
    return tuple(
        np.array([reduce(source[b]) for b in bins])
        for source, reduce in ((steps, np.mean), (values, np.mean), (values, np.min), (values, np.max))
    )


def grouped(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list[str]]:
    """Keys by group (their prefix before '/'), the known groups first."""
    groups: dict[str, list[str]] = {}
    for key in curves:
        groups.setdefault(key.split("/")[0] if "/" in key else "other", []).append(key)
    return dict(
        sorted(groups.items(), key=lambda item: list(GROUP_TITLES).index(item[0]) if item[0] in GROUP_TITLES else len(GROUP_TITLES))
    )


def group_svg(curves: dict[str, tuple[np.ndarray, np.ndarray]], keys: list[str], columns: int = 4) -> str:
    """One SVG of small multiples, a panel per key; text stays text (small, searchable)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    rows = math.ceil(len(keys) / columns)
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 8, "axes.titlesize": 9}):
        figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 1.9 * rows), squeeze=False, layout="constrained")
        for axis, key in zip(axes.flat, keys):
            steps, mean, low, high = binned(*curves[key])
            axis.fill_between(steps, low, high, color="#9ecae1", linewidth=0, alpha=0.6)
            axis.plot(steps, mean, color="#08519c", linewidth=1)
            axis.set_title(key.split("/", 1)[-1])
            axis.set_xlabel("step")
            axis.grid(alpha=0.3)
            if (mean > 0).all() and mean.max() / max(mean.min(), 1e-12) > 100:
                axis.set_yscale("log")
        for axis in axes.flat[len(keys) :]:
            axis.set_visible(False)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg")
        plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # inline: no XML prolog or doctype
