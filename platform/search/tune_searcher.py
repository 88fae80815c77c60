"""A Ray Tune searcher that drives an Optuna study by ask and tell, so that the study holds
what Optuna users expect: every reported step as an intermediate value, samples stopped by
the scheduler (ASHA) as PRUNED, failed ones as FAIL, and only samples that reached their
budget as COMPLETE.

Ray's ``OptunaSearch`` cannot tell these apart (STACK-NOTES): when a scheduler stops a
trial, Tune skips ``on_trial_result`` for the result it stopped on and calls
``on_trial_complete`` with it exactly as for a normal finish. Here the trainable marks its
last report ``done_trial``; a trial that ends without it, with no error and while the run is
not being interrupted, was pruned, and its last step is reported before it is told.

The study is the only record a resume needs: samples still RUNNING in it (their driver was
killed) are run again first, under the same number and sample id, so their trials find their
checkpoints in the store and no sample is counted twice. Tune's own state is never read back.

One id per sample: ``sample_id(study_name, number)`` (``<study>-<number>``) is the Tune trial
name, the variant and trial id in the store, the leaderboard's variant and the Optuna trial's
user attribute ``dragsaw_sample``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, cast

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from dragsaw.platform.search.study import StudySpec

#: The Optuna user attribute that holds a trial's sample id.
SAMPLE_ATTR = "dragsaw_sample"
#: Reported by the trainable with its final result (progress.FAILED_KEY / trainable.FAILED_KEY).
FAILED_KEY = "trial_failed"
DONE_KEY = "done_trial"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def sample_id(study_name: str, number: int) -> str:
    """``<study>-<number>``, with characters a store path cannot hold replaced by ``-``."""
    clean = re.sub(r"[^A-Za-z0-9._+-]", "-", study_name).strip(".-") or "study"
    return f"{clean.replace('..', '.')}-{number}"


def finished_samples(study: optuna.Study) -> int:
    """Samples of ``study`` with an outcome (COMPLETE, PRUNED or FAIL)."""
    return sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))


class StudySearcher(Searcher):
    """Tune searcher over one Optuna study (single or multi-objective).

    study_spec: the study's spec (space, metrics, folds); study: the open Optuna study;
    budget: samples to start in this run (RUNNING samples resumed count among them);
    validate(params, sample): raises ValueError when a sample's configuration is invalid
    (it is then told FAIL at once and not run); stopping(): whether the run is being
    interrupted (an unfinished trial then stays RUNNING, to be resumed).

    Suggestions are ``{"sample": id, "number": n, "params": {...}}``."""

    def __init__(self, study_spec: StudySpec, study: optuna.Study, budget: int, *,
                 validate: Callable[[dict[str, Any], str], None] | None = None,
                 stopping: Callable[[], bool] = lambda: False):
        single = len(study_spec.metrics) == 1
        super().__init__(metric=study_spec.metrics[0] if single else None,
                         mode=study_spec.modes[0] if single else None)
        self.spec, self.study, self.budget = study_spec, study, budget
        self.validate, self.stopping = validate, stopping
        self.single = single
        self.resumable = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        self.live: dict[str, optuna.Trial] = {}
        self.steps: dict[str, set[int]] = {}
        #: outcomes in this run: sample id -> (state name, step it ended on or None)
        self.outcomes: dict[str, tuple[str, int | None]] = {}

    # -- Tune's Searcher interface ------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode come from the spec; the space is the study's

    def suggest(self, trial_id: str) -> dict | None:
        while self.budget > 0:
            self.budget -= 1
            if self.resumable:
                frozen = self.resumable.pop(0)
                trial = optuna.Trial(self.study, frozen._trial_id)
                params = dict(frozen.user_attrs.get("dragsaw_params") or frozen.params)
                steps = set(frozen.intermediate_values)
            else:
                trial = self.study.ask()
                params = self.spec.space.suggest(trial)
                trial.set_user_attr("dragsaw_params", params)
                steps = set()
            sid = sample_id(self.spec.study_name, trial.number)
            trial.set_user_attr(SAMPLE_ATTR, sid)
            if self.validate is not None:
                try:
                    self.validate(params, sid)
                except ValueError as err:  # cannot run: FAIL now, never run nor retried
                    trial.set_user_attr("fail_reason", str(err)[:2000])
                    self.study.tell(trial, state=TrialState.FAIL)
                    self.outcomes[sid] = ("FAIL", None)
                    continue
            self.live[trial_id] = trial
            self.steps[trial_id] = steps
            return {"sample": sid, "number": trial.number, "params": params}
        # Ray's contract: the string Searcher.FINISHED ends the search, though its annotation
        # says Optional[Dict]; the cast keeps the override compatible with the base class.
        return cast(dict, Searcher.FINISHED)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.live.get(trial_id)
        if trial is None:
            return
        sid = trial.user_attrs.get(SAMPLE_ATTR) or sample_id(self.spec.study_name, trial.number)
        result = result or {}
        step = result.get("epoch")
        if error or result.get(FAILED_KEY):
            trial.set_user_attr("fail_reason", "the trial raised (see the store's trials table)" if error
                                else "its configuration cannot run (see the store's trials table)")
            self.study.tell(trial, state=TrialState.FAIL)
            self.outcomes[sid] = ("FAIL", step)
        elif result.get(DONE_KEY):
            self._report(trial_id, result)
            values = [result.get(m) for m in self.spec.metrics]
            finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
            if len(finite) == len(values):
                self.study.tell(trial, finite)
                self.outcomes[sid] = ("COMPLETE", step)
            else:
                trial.set_user_attr("fail_reason", f"no finite value for {self.spec.metrics}: {values}")
                self.study.tell(trial, state=TrialState.FAIL)
                self.outcomes[sid] = ("FAIL", step)
        elif self.stopping():
            self.outcomes[sid] = ("RUNNING", step)  # interrupted: resumed from its checkpoint later
        elif result:
            self._report(trial_id, result)  # the step the scheduler stopped it on
            self.study.tell(trial, state=TrialState.PRUNED)
            self.outcomes[sid] = ("PRUNED", step)
        else:  # ended before any report, without an error: nothing to learn from
            self.study.tell(trial, state=TrialState.FAIL)
            self.outcomes[sid] = ("FAIL", None)
        self.live.pop(trial_id, None)
        self.steps.pop(trial_id, None)

    def _report(self, trial_id: str, result: dict) -> None:
        """Optuna intermediate value at step ``epoch`` (single objective only: Optuna keeps
        none for several objectives); each step once."""
        trial = self.live.get(trial_id)
        if trial is None or not self.single:
            return
        step, value = result.get("epoch"), result.get(self.spec.metrics[0])
        if not isinstance(step, int) or isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if step in self.steps[trial_id] or not math.isfinite(value):
            return
        trial.report(float(value), step)
        self.steps[trial_id].add(step)

    # Tune pickles searchers into its experiment state; a resume rebuilds from the study.
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        return None

    def save(self, checkpoint_path: str) -> None:
        return None

    def restore(self, checkpoint_path: str) -> None:
        return None


__all__ = ["StudySearcher", "sample_id", "finished_samples", "SAMPLE_ATTR"]
