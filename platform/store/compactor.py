"""Compaction while an experiment runs: the driver tells a ``Compactor`` of every finished
trial; every ``every_n`` results or ``every_s`` seconds (whichever comes first) it compacts the
experiment in a background thread, one compaction at a time, so leaderboards during and after
the run read one file per partition. Safe with concurrent writers and compactors: a compacted
file is a cache keyed by the exact files it holds (see ``_files``); a failed compaction is a
warning, never an error of the run.

    compactor = Compactor(store, "table4", every_n=50, every_s=300)
    compactor.note()        # after each finished trial (cheap; compacts in the background when due)
    compactor.close()       # waits for a running compaction
"""

from __future__ import annotations

import threading
import time

from dragsaw.platform.store._files import log
from dragsaw.platform.store._store import ResultStore


class Compactor:
    """Periodic background compaction of one experiment (see the module doc).

    every_n: results between compactions (>= 1); every_s: seconds between compactions
    when at least one result arrived since the last one (> 0).
    """

    def __init__(self, store: ResultStore, experiment: str, every_n: int = 50, every_s: float = 300.0):
        if every_n < 1 or not every_s > 0:
            raise ValueError(f"`every_n` must be >= 1 and `every_s` > 0, but got {every_n} and {every_s}")
        self.store, self.experiment, self.every_n, self.every_s = store, experiment, every_n, every_s
        self.pending, self.runs, self.last = 0, 0, time.monotonic()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def note(self, results: int = 1) -> bool:
        """Count ``results`` finished trials; start a compaction if one is due and none runs.
        Returns whether one was started."""
        with self._lock:
            self.pending += results
            due = self.pending >= self.every_n or time.monotonic() - self.last >= self.every_s
            if not due or self.pending == 0 or (self._thread is not None and self._thread.is_alive()):
                return False
            self.pending, self.last = 0, time.monotonic()
            self._thread = threading.Thread(target=self._run, name="dragsaw-compact", daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        try:
            self.store.compact(self.experiment)
            self.runs += 1
        except Exception as err:  # noqa: BLE001 - a cache must never fail a run
            log.warning("warning: background compaction of %s failed (results are unaffected): %s",
                        self.experiment, err)

    def close(self) -> None:
        """Wait for a running compaction to end."""
        thread = self._thread
        if thread is not None:
            thread.join()
