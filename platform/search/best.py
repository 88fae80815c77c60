"""The best samples of a stored search, and the grid spec that confirms them.

``best_samples`` reads the experiment's saved spec and its studies (wherever they live: the
journal in the store or ``search.storage``) and ranks each study's samples the way Optuna
does: finished samples by their final value (several objectives: the Pareto front first),
then pruned ones by the last value they reported, then failed ones. ``confirmation_grid``
turns the top configurations into a grid spec: the search's datasets on their test
protocol, a baseline (the base model without plug-ins), each configuration as a variant
named by its sample id, three seeds."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from dragsaw.platform.search.tune_searcher import SAMPLE_ATTR, sample_id

if TYPE_CHECKING:
    from dragsaw.platform.experiment.schema import ExperimentSpec

_RANK = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.RUNNING: 2, TrialState.WAITING: 3,
         TrialState.FAIL: 4}


@dataclass
class Sample:
    """One sample of a study: ``trial_id`` is its one id (``<study>-<number>``), ``number``
    Optuna's; ``state`` Optuna's (COMPLETE, PRUNED, FAIL, RUNNING); ``value``: the final value
    (COMPLETE), the last reported one (PRUNED) or None; ``values``: every objective's value;
    ``params``: the sampled parameters as the spec's space names them."""

    trial_id: str
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    study: str = ""
    dataset: str = ""
    values: list[float] | None = None
    pareto: bool = field(default=False)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _value(trial: optuna.trial.FrozenTrial) -> float | None:
    if trial.values:
        return float(trial.values[0])
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return None


def rank_samples(study: optuna.Study, dataset: str = "") -> list[Sample]:
    """Every sample of ``study``, best first (see the module docstring)."""
    trials = study.get_trials(deepcopy=False)
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()

    def key(t: optuna.trial.FrozenTrial) -> tuple:
        value = _value(t)
        score = -sign * float(value) if value is not None and math.isfinite(value) else None
        return (0 if t.number in front else 1, _RANK.get(t.state, 5), score is None,
                0.0 if score is None else score, t.number)

    out = []
    for t in sorted(trials, key=key):
        out.append(Sample(trial_id=t.user_attrs.get(SAMPLE_ATTR) or sample_id(study.study_name, t.number),
                          number=t.number, state=t.state.name, value=_value(t),
                          params=dict(t.user_attrs.get("dragsaw_params") or t.params), study=study.study_name,
                          dataset=dataset, values=list(t.values) if t.values else None, pareto=t.number in front))
    return out


def load_search(store_url: str, name: str) -> tuple[Any, list]:
    """(spec, StudySpecs) of the search experiment ``name`` saved in the store, without its
    data (datasets are outlined where their roots are absent). LaunchError when the store has
    no such experiment or it is a grid."""
    from dragsaw.platform.experiment.datasets import preview_datasets
    from dragsaw.platform.experiment.loading import validate_spec
    from dragsaw.platform.launch.run import LaunchError, load_record
    from dragsaw.platform.search.study import studies

    record = load_record(store_url, name)
    spec = validate_spec(record["spec"], f"{store_url}/_experiments/{name}/spec.json")
    if spec.search is None:
        raise LaunchError(f"experiment {name!r} in {store_url} is a grid, not a search: see "
                          f"`dragsaw leaderboard --experiment {name}`")
    return spec, studies(spec, preview_datasets(spec)[0])


def best_samples(store_url: str, name: str, top: int | None = None) -> tuple[Any, list, list[Sample]]:
    """(spec, StudySpecs, samples): the best ``top`` samples of each study of the search
    ``name`` (all when None), best first per study, studies in the spec's dataset order."""
    from dragsaw.platform.launch.run import LaunchError
    from dragsaw.platform.search.storage import study_storage

    spec, specs = load_search(store_url, name)
    try:
        storage, where = study_storage(spec.search.storage, store_url, spec.name)
    except ValueError as err:
        raise LaunchError(str(err)) from None
    out: list[Sample] = []
    for s in specs:
        try:
            study = optuna.load_study(study_name=s.study_name, storage=storage)
        except KeyError:
            continue  # not started yet
        ranked = rank_samples(study, s.dataset)
        out += ranked if top is None else ranked[:top]
    return spec, specs, out


def _changes(base: Any, new: Any) -> Any:
    """The override that turns ``base`` into ``new`` under ``deep_merge`` (mappings key by
    key, a removed key as None; anything else whole); {} when they are equal."""
    if isinstance(base, dict) and isinstance(new, dict):
        out = {k: _changes(base.get(k), v) if k in base else v for k, v in new.items() if base.get(k) != v}
        out.update({k: None for k in base if k not in new})
        return out
    return {} if base == new else new


def confirmation_grid(spec: ExperimentSpec, specs: list, samples: list[Sample], seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """A grid spec (JSON types) confirming ``samples`` (their COMPLETE ones): the search's
    datasets with ``folds: [test]``, the base model, train and eval without plug-ins as
    variant ``baseline``, and each sample as a variant named by its id whose model, plug-ins,
    train and eval are the searched placement and values applied to the base config."""
    from dragsaw.platform.launch.run import portable_spec

    data = portable_spec(spec)
    by_study = {s.study_name: s for s in specs}
    variants: dict[str, Any] = {"baseline": {}}
    for sample in samples:
        if sample.state != "COMPLETE" or sample.study not in by_study:
            continue
        study = by_study[sample.study]
        applied = study.space.apply(study.base_config, sample.params)
        override = {k: _changes(study.base_config.get(k), applied.get(k)) for k in ("model", "train", "eval")}
        override = {k: v for k, v in override.items() if v not in (None, {})}
        plugins = applied.get("plugins")  # whole: the grid's base has none (its baseline)
        if plugins:
            override["plugins"] = {k: v for k, v in plugins.items() if v is not None}
        variants[sample.trial_id] = override
    for d in data["datasets"]:
        d["folds"] = ["test"]
    data.update(name=f"{spec.name}-confirm", plugins=None, search=None, axes=None, variants=variants,
                baseline="baseline", seeds=list(seeds),
                description=f"confirmation of the best samples of the search {spec.name!r} "
                            f"({', '.join(v for v in variants if v != 'baseline')}) against a baseline",
                smoke={k: v for k, v in (data.get("smoke") or {}).items() if not str(k).startswith("search")})
    return data


__all__ = ["Sample", "rank_samples", "best_samples", "load_search", "confirmation_grid"]
