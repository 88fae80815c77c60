"""Progress lines of a search: each sample by its one id (``<study>-<number>``), outcomes as
Optuna states (finished, pruned, failed), and the best *final* value of finished samples
(a pruned sample's value is cut short, so it is never called the best)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dragsaw.platform.launch.progress import FAILED_KEY, Progress

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class SearchProgress(Progress):
    """One line whenever a sample starts or ends (and at most every ``every`` seconds on
    results): ``[mm:ss] 3/14 done (2 finished, 1 pruned), 2 running, 0 failed; best final
    dice 0.8123 (exp.ds-4)  <- pruned exp.ds-7 at epoch 2``."""

    def __init__(self, total: int, metric: str, mode: str = "max", echo: Callable[[str], None] = print,
                 every: float = 30.0):
        super().__init__(total, metric, mode, echo, every)
        self.finished = 0
        self.pruned = 0

    def _name(self, trial) -> str:
        return str(trial.config.get("sample", trial.trial_id))

    def _line(self, event: str) -> None:
        best = ""
        if self.best is not None:
            best = f"; best final {self.metric} {self.best[0]:.4f} ({self.best[1]})"
        minutes, seconds = divmod(int(time.monotonic() - self.start), 60)
        self.echo(f"[{minutes:02d}:{seconds:02d}] {self.done}/{self.total} done ({self.finished} finished, "
                  f"{self.pruned} pruned), {len(self.running)} running, {self.failed} failed{best}  <- {event}")
        self.last = time.monotonic()

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        if time.monotonic() - self.last > self.every:
            self._line(f"epoch {result.get('epoch')} of {self._name(trial)}")

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        from dragsaw.platform.launch.interrupts import stopping

        self.running.discard(trial.trial_id)
        last = trial.last_result or {}
        if last.get(FAILED_KEY):
            self.failed += 1
            self._line(f"FAILED {self._name(trial)}: its configuration cannot run (FAIL in the study, not "
                       "retried; see the trials table's error column)")
            return
        if not last.get("done_trial"):
            if stopping():
                self._line(f"stopped {self._name(trial)} (resumed from its checkpoint by `dragsaw resume`)")
                return
            self.done += 1
            self.pruned += 1
            self._line(f"pruned {self._name(trial)} at epoch {last.get('epoch')}")
            return
        self.done += 1
        self.finished += 1
        value = last.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
            if better:
                self.best = (float(value), self._name(trial))
        self._line(f"finished {self._name(trial)}")


__all__ = ["SearchProgress"]
