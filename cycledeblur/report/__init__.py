"""`cycledeblur report RUN`: one self-contained HTML page of a run (curves, samples, before/after, evaluation,
config). Training writes RUN/report.html when it ends; the command refreshes it at any time."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

REPORT_FILE = "report.html"


def write_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of `run` to `out` (default RUN/report.html), through a temporary file: a reader never
    sees half a page. Returns the path written."""
    from .contents import read_contents
    from .page import render

    run = Path(run).expanduser()
    if not (run / "config.yaml").is_file():
        raise UserError(f"{run}: not a run folder (no config.yaml)")
    out = Path(out) if out is not None else run / REPORT_FILE
    page = render(read_contents(run))
    partial = out.with_name(f".{out.name}.partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(page, encoding="utf-8")
    partial.replace(out)
    return out
