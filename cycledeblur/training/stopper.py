"""Ctrl-C (SIGINT) and a cluster's pre-emption (SIGTERM) end a run after the current step, with a checkpoint."""

from __future__ import annotations

import signal
import threading

from accelerate import Accelerator


class SignalStopper:
    """Within `with`, SIGINT and SIGTERM are noted instead of acted on; `requested` says when the loop should stop.
    A second signal acts at once, as without this."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._previous_handlers: dict[int, object] = {}

    def __enter__(self) -> SignalStopper:
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[signal_number] = signal.signal(signal_number, self._on_signal)
        return self

    def __exit__(self, *exception: object) -> None:
        self._restore_handlers()

    def _on_signal(self, signal_number: int, frame: object) -> None:
        self.signal = signal.Signals(signal_number)
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signal_number, handler in self._previous_handlers.items():
            signal.signal(signal_number, handler)
        self._previous_handlers = {}

    def requested(self, accelerator: Accelerator, logged_now: bool) -> bool:
        """Whether to stop after this step. Every process must stop at the same step (checkpointing is collective),
        so several processes vote (Accelerate's trigger, one collective) at log steps, when they exchange their
        losses anyway; a single process stops at once."""
        if accelerator.num_processes == 1:
            return self.signal is not None
        if not logged_now:
            return False
        if self.signal is not None:
            accelerator.set_trigger()
        if not accelerator.check_trigger():
            return False
        self.signal = self.signal or signal.SIGTERM  # a process the signal missed stops with the others
        return True
