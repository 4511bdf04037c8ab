"""What `cycledeblur models` prints for one bundled model, from its bundle.json."""

from __future__ import annotations

from pathlib import Path

from . import BundleInfo


def duration(seconds: float) -> str:
    """`seconds` as "1 h 05 min", "12 min 30 s" or "45 s"."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def summary_lines(info: BundleInfo, folder: Path) -> list[str]:
    """The model's name, size and `folder`, how to remake it, how long that took where, and its measured quality."""
    size = f"{info['parameters'] / 1e6:.2f} M parameters, {info['weights_bytes'] / 1e6:.2f} MB"
    lines = [
        f"{info['name']}: {info['family']}, {size} ({folder})",
        f"  photos:   {info['corpus_command']}",
        f"  training: {info['training_command']}",
        f"  trained:  {info['steps']} steps in {duration(info['wall_seconds'])} on {info['machine']}, {info['date']}",
        f"  shipped:  {info['delivered'].split(':')[0]}",
        f"  data:     {info['data']}",
    ]
    if info["benchmark"]:
        lines += ["  quality:", *(f"    {row}" for row in info["benchmark"].strip().splitlines())]
    else:
        lines.append("  quality:  not measured when it was bundled")
    return lines
