"""Metric logging through Accelerate's tracker API: a JSON-lines file always, TensorBoard when installed."""

from __future__ import annotations

import json
from pathlib import Path

from accelerate.tracking import GeneralTracker
from accelerate.utils import is_tensorboard_available


class JsonLinesTracker(GeneralTracker):
    """One JSON object per `log` call in RUN/logs/metrics.jsonl: greppable, and what tests and benches read."""

    name = "jsonl"
    requires_logging_directory = True

    def __init__(self, logging_dir: str | Path):
        super().__init__()
        self.path = Path(logging_dir) / "metrics.jsonl"

    @property
    def tracker(self):
        return self.path

    def store_init_configuration(self, values: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        (self.path.parent / "hparams.json").write_text(json.dumps(values, indent=2, default=str))

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps({"step": step, **values}) + "\n")


def build_trackers(logging_dir: Path) -> list:
    trackers: list = [JsonLinesTracker(logging_dir)]
    if is_tensorboard_available():
        trackers.append("tensorboard")
    return trackers


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "logs" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
