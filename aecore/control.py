"""Pause, step and stop a training run from outside it.

The trainer asks :meth:`RunControl.gate` before every batch, as it used to check
its stop event: "go" (train this batch), "pause" (wait: the process keeps its
memory, optimiser state and position in the epoch) or "stop". The state is one
number, the batch budget: -1 runs freely, 0 is paused, N > 0 runs N more batches
and then pauses, so Step N means exactly N batches whatever the epochs in between.

The same object works within a process (threads: the CLI, tests) and across one
(:meth:`for_process` builds it from a multiprocessing context; it travels to the
spawned training process as an argument), so the dashboard's job and its
training process share it, beside the pipe that carries progress the other way.
"""

from __future__ import annotations

import threading
from typing import Literal

from aecore.errors import ConfigError

RUNNING = -1


class _Box:
    """A number with a lock, the threading twin of ``multiprocessing.Value``."""

    def __init__(self, value: int):
        self.value = value
        self._lock = threading.Lock()

    def get_lock(self):
        return self._lock


class RunControl:
    def __init__(self, stop_event=None, *, _budget=None, _go=None):
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self._budget = _budget if _budget is not None else _Box(RUNNING)
        self._go = _go if _go is not None else threading.Event()  # set while the budget is not 0
        if self._budget.value != 0:
            self._go.set()

    @classmethod
    def for_process(cls, ctx) -> RunControl:
        """Shared with a process started from ``ctx`` (e.g. ``multiprocessing.get_context("spawn")``)."""
        return cls(ctx.Event(), _budget=ctx.Value("q", RUNNING), _go=ctx.Event())

    # --- asked from outside --------------------------------------------------------------
    def pause(self) -> None:
        """Stop after the batch that is running now."""
        self._set_budget(0)

    def resume(self) -> None:
        self._set_budget(RUNNING)

    def step(self, n: int) -> None:
        """Run exactly ``n`` more batches, then pause again."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"a step is a whole number of batches from 1 up; got {n!r}.")
        self._set_budget(n)

    def stop(self) -> None:
        self.stop_event.set()
        self._go.set()  # a paused trainer wakes to stop

    def _set_budget(self, n: int) -> None:
        with self._budget.get_lock():
            self._budget.value = n
            self._go.set() if n != 0 else self._go.clear()

    @property
    def paused(self) -> bool:
        return self._budget.value == 0 and not self.stop_event.is_set()

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    # --- asked by the trainer before every batch ----------------------------------------
    def gate(self) -> Literal["go", "pause", "stop"]:
        """Whether the next batch may run; a "go" spends one batch of a step's budget."""
        if self.stop_event.is_set():
            return "stop"
        with self._budget.get_lock():
            b = self._budget.value
            if b == 0:
                return "pause"
            if b > 0:
                self._budget.value = b - 1
                if b == 1:
                    self._go.clear()
        return "go"

    def wait(self, timeout: float | None = None) -> bool:
        """Block while paused; True once the run may go on (or must stop)."""
        return self._go.wait(timeout)


__all__ = ["RUNNING", "RunControl"]
