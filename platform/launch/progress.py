"""Progress of a running experiment on the terminal: trials done, running, failed; best so far."""

from __future__ import annotations

import time
from collections.abc import Callable

from ray import tune

#: Metric a trainable reports for a trial that failed for good (a configuration error).
FAILED_KEY = "trial_failed"


def failed_result(result) -> bool:
    """Whether a Tune ``Result`` is a failed trial: an error, or a recorded configuration error."""
    return result.error is not None or bool((result.metrics or {}).get(FAILED_KEY))


class Progress(tune.Callback):
    """Prints one line whenever a trial starts, finishes or fails (and at most every
    ``every`` seconds on results)."""

    def __init__(self, total: int, metric: str, mode: str = "max", echo: Callable[[str], None] = print,
                 every: float = 30.0, store_url: str | None = None):
        self.total, self.metric, self.mode, self.echo, self.every = total, metric, mode, echo, every
        self.store_url = store_url  # where lost attempts are recorded (grids)
        self.running: set[str] = set()
        self.done = 0
        self.failed = 0
        self.best: tuple[float, str] | None = None
        self.start = time.monotonic()
        self.last = 0.0

    def _name(self, trial) -> str:
        spec = trial.config.get("trial")
        if spec:
            return f"{spec['variant']} {spec['dataset']} fold {spec['fold']} seed {spec['seed']}"
        return trial.trial_id

    def _line(self, event: str) -> None:
        best = ""
        if self.best is not None:
            best = f"; best {self.metric} {self.best[0]:.4f} ({self.best[1]})"
        minutes, seconds = divmod(int(time.monotonic() - self.start), 60)
        self.echo(f"[{minutes:02d}:{seconds:02d}] {self.done}/{self.total} done, {len(self.running)} running, "
                  f"{self.failed} failed{best}  <- {event}")
        self.last = time.monotonic()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._line(f"started {self._name(trial)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if isinstance(value, (int, float)):
            better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
            if better:
                self.best = (float(value), self._name(trial))
        if time.monotonic() - self.last > self.every:
            self._line(f"epoch {result.get('epoch')} of {self._name(trial)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        from dragsaw.platform.launch.interrupts import stopping

        self.running.discard(trial.trial_id)
        if stopping() and not (trial.last_result or {}).get("done_trial"):
            # Tune ends a trial it stops as if it had completed: say what happened.
            self._line(f"stopped {self._name(trial)}")
            return
        if (trial.last_result or {}).get(FAILED_KEY):  # a configuration error: recorded, not retried
            self.failed += 1
            self._line(f"FAILED {self._name(trial)}: its configuration cannot run (not retried; see the trials "
                       "table's error column)")
            return
        self.done += 1
        self._line(f"finished {self._name(trial)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed += 1
        lost = self._mark_lost(trial)
        self._line(f"FAILED {self._name(trial)} ({'its worker or node died: a lost attempt' if lost else 'see'} "
                   "the trials table's error column)")

    def _mark_lost(self, trial) -> int:
        """An attempt that died with its worker or node wrote no outcome: rewrite its ``running``
        row as ``lost`` (grids; a search's next attempt or ``status`` tells them)."""
        spec = trial.config.get("trial") if isinstance(trial.config, dict) else None
        if not self.store_url or not spec:
            return 0
        from dragsaw.platform.launch.trainable import mark_lost
        from dragsaw.platform.store import ResultStore, StoreError

        try:
            return mark_lost(ResultStore(self.store_url), spec["experiment"], spec["trial_id"],
                             f"Tune gave up on the trial after {trial.num_failures} failures")
        except (StoreError, OSError, ValueError) as exc:
            self.echo(f"note: could not record the lost attempt of {self._name(trial)}: {exc}")
            return 0

