"""SIGTERM / SIGUSR1 ask training to stop at the end of the running chunk, with a checkpoint."""

from __future__ import annotations

import signal
import threading

import numpy as np

# SLURM sends SIGTERM on preemption and at the time limit; submitit asks SLURM for SIGUSR1
# `signal_delay_s` before the limit (and on preemption where the cluster allows it).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """`with StopSignals() as stop:` a stop signal only sets a flag, so the jitted chunk in
    flight finishes and the loop checkpoints; `forward()` then hands the signal to whoever
    listened before (submitit's handler requeues the job and exits). Outside the main thread
    (no handlers can be set there) it never asks to stop."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum  # no I/O here: a print could re-enter stderr

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def requested(self) -> bool:
        """Whether any process got a stop signal: every process of a multi-host run must stop
        at the same step, since saving is collective (a collective itself, called per chunk)."""
        import jax

        if jax.process_count() == 1:
            return self.signum is not None
        from jax.experimental import multihost_utils

        got = multihost_utils.process_allgather(np.int32(self.signum or 0))
        if self.signum is None and np.any(got):
            self.signum = int(np.max(got))
        return bool(np.any(got))

    def forward(self) -> None:
        """Call the handler that was installed before ours (after `__exit__`)."""
        previous = self._previous.get(self.signum)
        if callable(previous):
            previous(self.signum, None)
