"""Warm start: the best configurations of earlier experiments in the same store become the
first samples of a new study (``search.warm_start: {experiments: [...], top: K}``).

Each earlier experiment's completed trials (a search's PRUNED or FAILED samples never are)
are grouped by variant and ranked by the mean of the new study's metric over their rows
(folds, seeds, datasets): grid variants and search samples alike. The best ``top`` of each
are expressed in the new space: a search sample's parameters when the space has every one
of them, otherwise read back from the trial's config (placements from the plug-ins' layers,
per-layer N from the PDCR sites, options and train fields by path). One the space cannot
express (a parameter outside it, a choice not in it, a value outside a range, a cross-layer
site) is skipped with a note; the others are enqueued (``study.enqueue_trial``) once."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dragsaw.platform.search.distributions import CategoricalDist, SubsetDist
from dragsaw.platform.search.space import PLACEABLE, SearchSpace

if TYPE_CHECKING:
    import optuna

    from dragsaw.platform.store import ResultStore

#: First parts of the space language's names (a grid variant's overrides start with plugins. etc.)
_NAMESPACES = ("placement", *PLACEABLE, "train", "eval", "model")
#: The study's user attribute set once its warm start was enqueued (a resume does not repeat it).
DONE_ATTR = "dragsaw_warm_started"
#: The enqueued trial's user attribute naming its source (``<experiment>/<variant>``).
SOURCE_ATTR = "dragsaw_warm_start"


@dataclass(frozen=True)
class Candidate:
    """One earlier configuration: its experiment, variant, mean metric over ``rows`` trials,
    the parameters it was run with (``params_json``) and the config of its first trial."""

    experiment: str
    variant: str
    value: float
    rows: int
    params: dict
    config: dict

    @property
    def source(self) -> str:
        return f"{self.experiment}/{self.variant}"


class Unexpressible(ValueError):
    """A configuration the space cannot express; the message says which parameter and why."""


def best_configurations(store: ResultStore, experiment: str, metric: str, mode: str, top: int) -> list[Candidate]:
    """The best ``top`` variants of ``experiment`` by the mean of ``metric`` over their
    completed trials (``mode``: "max" or "min"), best first; variants without a finite value
    are left out."""
    rows = store.completed_trials(experiment, columns=["variant", "params_json", "config_json", "metrics_json"])
    groups: dict[str, list[dict]] = {}
    for row in rows.to_pylist():
        groups.setdefault(row["variant"], []).append(row)
    out = []
    for variant, members in groups.items():
        values = [json.loads(r["metrics_json"]).get(metric) for r in members]
        finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        if not finite:
            continue
        out.append(Candidate(experiment, variant, sum(finite) / len(finite), len(finite),
                             json.loads(members[0]["params_json"]), json.loads(members[0]["config_json"])))
    out.sort(key=lambda c: (-c.value if mode == "max" else c.value, c.variant))
    return out[:top]


def express(space: SearchSpace, candidate: Candidate) -> dict[str, Any]:
    """``candidate`` as parameters of ``space`` (as ``SearchSpace.suggest`` returns them);
    raises :class:`Unexpressible`. Values come from the trial's config; a search sample's own
    parameters (names in the space language) take precedence, and one the space lacks makes
    the sample unexpressible (it would run as a different configuration)."""
    names = set(space.names())
    values = config_values(space, candidate.config) if candidate.config else {}
    params = candidate.params or {}
    if params and all(n.split(".", 1)[0] in _NAMESPACES for n in params):
        outside = sorted(n for n in params if n not in names)
        if outside:
            raise Unexpressible(f"parameters {outside} are outside the space")
        values.update(params)
    return space.suggest(_Replay(space, values))


def config_values(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    """What each parameter of ``space`` is in a trial ``config`` (absent ones left out)."""
    plugins = config.get("plugins") or {}
    pdcr = plugins.get("pdcr") if isinstance(plugins, Mapping) else None
    sites = list((pdcr or {}).get("sites") or ())
    out: dict[str, Any] = {}
    for name in space.names():
        p = space.param(name)
        kind = p.target[0]
        if kind == "placement":
            block = plugins.get(p.target[1])
            if p.target[1] == "pdcr":
                cross = [s["layers"] for s in sites if len(s.get("layers", ())) != 1]
                if cross:
                    raise Unexpressible(f"{name}: cross-layer PDCR sites {cross} are not a set of layers")
                out[name] = [s["layers"][0] for s in sites]
            else:
                out[name] = list((block or {}).get("layers") or ())
        elif kind == "site":
            layer = name[len(p.name) - len("{layer}"):]
            site = next((s for s in sites if list(s.get("layers", ())) == [layer]), None)
            if site is not None and p.target[1] in site:
                out[name] = site[p.target[1]]
        elif kind == "pdcr_n":
            ns = {s.get("n") for s in sites}
            if len(ns) == 1:
                out[name] = ns.pop()
        elif kind == "pdcr_p":
            series = (pdcr or {}).get("patch_sizes")
            if series:
                out[name] = len(series)
        elif kind == "plugin":
            block = plugins.get(p.target[1])
            if isinstance(block, Mapping) and p.target[2] in block:
                out[name] = block[p.target[2]]
        else:
            node: Any = config
            for part in p.target[1].split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is not None:
                out[name] = node
    if "pdcr.p" in out and "pdcr.patch_sizes" in space.names() and "pdcr.patch_sizes" in out:
        # P keeps a prefix of the series: find the searched series that the run's series begins
        dist = space.dist("pdcr.patch_sizes")
        run = list(out["pdcr.patch_sizes"])
        longer = [c for c in getattr(dist, "choices", []) if list(c)[: len(run)] == run]
        if longer:
            out["pdcr.patch_sizes"] = longer[0]
    return out


class _Replay:
    """Answers ``SearchSpace.suggest`` with given values, checking each against its distribution."""

    def __init__(self, space: SearchSpace, values: Mapping[str, Any]):
        self.space, self.values = space, values

    def _value(self, name: str) -> Any:
        if name not in self.values:
            raise Unexpressible(f"{name}: the configuration has no value for it")
        return self.values[name]

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        v = self._value(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise Unexpressible(f"{name}={v!r} is outside the range [{low}, {high}]")
        return float(v)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        v = self._value(name)
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high or (v - low) % step:
            raise Unexpressible(f"{name}={v!r} is not an int in [{low}, {high}] (step {step})")
        return v

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        v = self._value(name)
        dist = self.space.dist(name)
        if isinstance(dist, SubsetDist):
            layers = list(v) if isinstance(v, (list, tuple)) else None
            if layers is None or any(x not in dist.choices for x in layers):
                raise Unexpressible(f"{name}={v!r}: layers not in the space's choices {dist.choices}")
            encoded = dist.encode(layers)
        elif isinstance(dist, CategoricalDist):
            if v not in dist.choices:
                raise Unexpressible(f"{name}={v!r}: not one of the space's choices {dist.choices}")
            encoded = dist.encoded_choices()[dist.choices.index(v)]
        else:  # pragma: no cover - suggest_categorical is only called for these
            raise Unexpressible(f"{name}: unexpected distribution {type(dist).__name__}")
        if encoded not in choices:
            raise Unexpressible(f"{name}={v!r}: not an allowed choice (size limits) of {dist.type}")
        return encoded


def warm_start(study: optuna.Study, space: SearchSpace, store: ResultStore, experiments: Sequence[str], top: int,
               metric: str, mode: str, echo: Callable[[str], None], self_name: str = "") -> int:
    """Enqueue the best ``top`` configurations of each of ``experiments`` (see the module
    docstring) as the first samples of ``study``, once (the study records it); ``echo`` gets a
    line per enqueued or skipped configuration. Returns how many were enqueued."""
    if study.user_attrs.get(DONE_ATTR):
        return 0
    done, seen = 0, []
    known = set(store.experiments())
    for experiment in experiments:
        if experiment == self_name:
            echo(f"warm start: {experiment} skipped: it is this experiment")
            continue
        if experiment not in known:
            echo(f"warm start: {experiment} skipped: no such experiment in the store")
            continue
        found = best_configurations(store, experiment, metric, mode, top)
        if not found:
            echo(f"warm start: {experiment} skipped: no completed trial with a {metric} value")
        for cand in found:
            try:
                params = express(space, cand)
            except Unexpressible as err:
                echo(f"warm start: {cand.source} ({metric} {cand.value:.4g}) skipped: {err}")
                continue
            if params in seen:
                echo(f"warm start: {cand.source} skipped: same parameters as an earlier one")
                continue
            seen.append(params)
            study.enqueue_trial(space.to_optuna(params), user_attrs={SOURCE_ATTR: cand.source})
            done += 1
            echo(f"warm start: {cand.source} ({metric} {cand.value:.4g} over {cand.rows} trials) enqueued")
    study.set_user_attr(DONE_ATTR, done)
    return done


__all__ = ["Candidate", "Unexpressible", "best_configurations", "config_values", "express", "warm_start",
           "DONE_ATTR", "SOURCE_ATTR"]
