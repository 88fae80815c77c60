"""Progress of a running experiment on the terminal: trials done, running, failed; best so far."""

from __future__ import annotations

import time
from collections.abc import Callable

from ray import tune


class Progress(tune.Callback):
    """Prints one line whenever a trial starts, finishes or fails (and at most every
    ``every`` seconds on results)."""

    def __init__(self, total: int, metric: str, mode: str = "max", echo: Callable[[str], None] = print,
                 every: float = 30.0):
        self.total, self.metric, self.mode, self.echo, self.every = total, metric, mode, echo, every
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
        self.running.discard(trial.trial_id)
        self.done += 1
        self._line(f"finished {self._name(trial)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._line(f"FAILED {self._name(trial)} (see the trials table's error column)")
