"""The define-by-run function OptunaSearch samples a spec's search space with, and the
keyword arguments that build OptunaSearch for one study.

    study = studies(spec)[0]                                  # dragsaw.platform.search.study
    storage = make_storage(spec.search.storage, spec.store, experiment=spec.name)
    searcher = OptunaSearch(**optuna_search_kwargs(study, storage))
    # and TuneConfig(metric=..., mode=...) with the same metric/mode (single objective)

Facts this relies on (STACK-NOTES.md): OptunaSearch takes a define-by-run function for
conditional spaces and an Optuna storage *object*; metric/mode go to OptunaSearch and to
TuneConfig; ``tune.grid_search`` cannot be mixed in (grids are expanded by the platform).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from dragsaw.platform.search.samplers import make_sampler
from dragsaw.platform.search.space import SearchSpace
from dragsaw.platform.search.study import StudySpec


class DefineByRun:
    """The function OptunaSearch calls with each new trial: it suggests the space's
    parameters (conditional ones only when their condition holds) and returns them decoded
    (subsets as lists of names, list choices as lists), under the same names Optuna records,
    so the Tune config holds the values a trial applies with ``SearchSpace.apply``.
    A class, not a closure: Tune pickles the searcher (and so this) into its experiment state."""

    __name__ = "dragsaw_define_by_run"

    def __init__(self, space: SearchSpace):
        self.space = space

    def __call__(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        return self.space.suggest(trial)


def define_by_run(space: SearchSpace) -> Callable[[optuna.trial.BaseTrial], dict[str, Any]]:
    """A picklable define-by-run function for ``space`` (see :class:`DefineByRun`)."""
    return DefineByRun(space)


def open_study(storage: optuna.storages.BaseStorage, study: StudySpec, sampler: optuna.samplers.BaseSampler | None = None
               ) -> optuna.Study:
    """Create or reopen ``study`` in ``storage`` (same name, same directions)."""
    return optuna.create_study(storage=storage, study_name=study.study_name, directions=study.directions,
                               sampler=sampler or make_sampler(study.search.sampler, study.search.seed),
                               load_if_exists=True)


def optuna_search_kwargs(study: StudySpec, storage: optuna.storages.BaseStorage) -> dict[str, Any]:
    """Keyword arguments for ``ray.tune.search.optuna.OptunaSearch`` for one study:
    space (define-by-run), metric and mode (lists for several objectives), sampler,
    study_name and storage."""
    single = len(study.metrics) == 1
    return {"space": define_by_run(study.space),
            "metric": study.metrics[0] if single else list(study.metrics),
            "mode": study.modes[0] if single else list(study.modes),
            "sampler": make_sampler(study.search.sampler, study.search.seed),
            "study_name": study.study_name, "storage": storage}


__all__ = ["DefineByRun", "define_by_run", "open_study", "optuna_search_kwargs"]
