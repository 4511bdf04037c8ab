"""A rich progress bar for training: step, throughput, ETA and the latest logged losses (main process only)."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainingProgress:
    def __init__(self, max_steps: int, start_step: int, images_per_step: int, enabled: bool = True):
        self.images_per_step = images_per_step
        self.last_losses: dict[str, float] = {}
        self._started, self._start_step = time.perf_counter(), start_step
        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            disable=not enabled,
        )
        self._task = self._progress.add_task("train", total=max_steps, completed=start_step, speed="", losses="")

    def __enter__(self) -> TrainingProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def advance(self, step: int) -> None:
        elapsed = time.perf_counter() - self._started
        speed = (step - self._start_step) * self.images_per_step / elapsed if elapsed > 0 else 0.0
        self._progress.update(self._task, completed=step, speed=f"{speed:.1f} img/s")

    def show_losses(self, losses: dict[str, float]) -> None:
        self.last_losses = dict(losses)
        shown = {k.removeprefix("loss/"): v for k, v in losses.items() if k.startswith("loss/")}
        self._progress.update(self._task, losses=" ".join(f"{k} {v:.3f}" for k, v in shown.items()))
