"""Interrupts of a running experiment.

The first SIGINT (Ctrl-C) or SIGTERM while trials run stops the experiment in order: no
new trial starts, the running ones are stopped (each has its last finished epoch's
checkpoint in the store, so ``dragsaw resume`` continues it from there), Ray is shut
down, the command prints what is finished, interrupted and failed (counted from the
store, exactly as ``dragsaw status`` counts) and exits with 128 + the signal (130 for
SIGINT, 143 for SIGTERM). A second signal stops at once. Outside the trial phase (data
preparation, Ray start-up) a signal stops at once too. Ray Tune's own SIGINT handler,
which would print a ``Tuner.restore(...)`` hint that is not how dragsaw resumes, is
never installed.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ray import tune

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_active: Interrupts | None = None  # what StopOnInterrupt consults (a Stopper must pickle)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by a signal that stops the command at once."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupts:
    """SIGINT / SIGTERM handling for the lifetime of a ``with`` block (main thread only;
    elsewhere signals keep their handlers). ``graceful()`` marks the trial phase, during
    which a first signal only asks Tune to stop (see :class:`StopOnInterrupt`)."""

    def __init__(self, echo: Callable[[str], None] = print):
        self.echo = echo
        self.signum: int | None = None
        self.reason: str | None = None  # why the run stops without a signal (the lease was lost)
        self._graceful = False
        self._closing = False
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | signal.Handlers | None] = {}

    def __enter__(self) -> Interrupts:
        global _active
        # Tune installs its own SIGINT handler in Tuner.fit unless told not to.
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        _active = self
        return self

    def __exit__(self, *exc) -> None:
        global _active
        for s, handler in self._previous.items():
            # None: the handler was not set from Python and cannot be put back; the default then.
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        self._previous = {}
        _active = None

    def reinstall(self) -> None:
        """Take the signals back: Ray's core installs its own SIGTERM handler (which aborts the
        process) when it connects; call this after ``ray.init``."""
        if self._previous and threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                signal.signal(s, self._handle)

    def _handle(self, signum: int, frame) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if self._closing:
            return  # shutting down already: let it finish
        if self._graceful and first:
            self.echo(f"\n{signal.Signals(signum).name}: stopping: no new trials start; running trials stop "
                      "(each keeps its last epoch's checkpoint). Press Ctrl-C again to stop at once.")
            return
        raise Interrupted(signum)

    def stop(self, reason: str) -> None:
        """Stop the run as a first signal would, for ``reason`` (any thread)."""
        if self.reason is None:
            self.reason = reason
            self.echo(f"stopping: {reason}")

    @property
    def stopping(self) -> bool:
        return self.signum is not None or self.reason is not None

    @contextmanager
    def graceful(self) -> Iterator[None]:
        """The trial phase: a first signal stops Tune in order instead of raising."""
        if self.signum is not None:
            raise Interrupted(self.signum)
        self._graceful = True
        try:
            yield
        finally:
            self._graceful = False

    def closing(self) -> None:
        """From now on signals are only noted: cleanup (lease release, Ray shutdown) must finish."""
        self._closing = True

    @property
    def exit_status(self) -> int | None:
        """128 + the signal number once a signal arrived (130 SIGINT, 143 SIGTERM), else None."""
        return None if self.signum is None else 128 + self.signum


class StopOnInterrupt(tune.Stopper):
    """A Tune stopper that ends the whole experiment once the active :class:`Interrupts`
    is stopping: Tune then starts no new trial and stops the running ones."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return _active is not None and _active.stopping


def reinstall() -> None:
    """:meth:`Interrupts.reinstall` of the active handler, if any (after ``ray.init``)."""
    if _active is not None:
        _active.reinstall()


def stopping() -> bool:
    """Whether the active run is being stopped (for callbacks that word their lines)."""
    return _active is not None and _active.stopping
