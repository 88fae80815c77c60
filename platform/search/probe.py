"""Checking a search space against the base config before anything runs: every
distribution at its low end, at its high end and in seeded random draws goes through
``SearchSpace.apply`` and the workload's config models, so a range that makes an invalid
config (``pdcr.tau`` from 0, an option of a plug-in that may not be placed) is reported
when the spec is loaded, attributed to the parameter.

Every choice of every categorical or subset parameter is also tried at both extremes of
the others, and each config is probed against the model itself (``preflight``): a PDCR
``n`` larger than the positions of the layer it lands on at the spec's image size (the
shipped ``n: 128`` on ``encoder.5`` at 128 px), or patches larger than the image."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from dragsaw.platform.experiment.configs import part_problems
from dragsaw.platform.experiment.errors import Loc
from dragsaw.platform.search.distributions import CategoricalDist, SubsetDist
from dragsaw.platform.search.space import SearchSpace, SpaceError
from dragsaw.workloads.recipe.preflight import config_problems


class _ProbeTrial:
    """Stands in for an Optuna trial when a space is checked: every distribution at its low
    end, its high end, or drawn at random (seeded)."""

    def __init__(self, mode: str, rng: random.Random, pinned: tuple[str, int] | None = None):
        self.mode, self.rng, self.pinned = mode, rng, pinned

    def suggest_float(self, name, low, high, *, step=None, log=False):
        if self.mode != "random":
            value = low if self.mode == "low" else high
            return low + math.floor((high - low) / step) * step if step and self.mode == "high" else value
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        if step:
            return low + self.rng.randint(0, int(math.floor((high - low) / step))) * step
        return self.rng.uniform(low, high)

    def suggest_int(self, name, low, high, *, step=1, log=False):
        top = low + (high - low) // step * step
        if self.mode != "random":
            return low if self.mode == "low" else top
        return low + self.rng.randint(0, (high - low) // step) * step

    def suggest_categorical(self, name, choices):
        if self.pinned is not None and self.pinned[0] == name:
            return choices[self.pinned[1]]
        if self.mode != "random":
            return choices[0] if self.mode == "low" else choices[-1]
        return self.rng.choice(list(choices))


def probe_problems(space: SearchSpace, base: Mapping[str, Any], draws: int = 32) -> list[tuple[Loc, str]]:
    """Check that the space makes valid trial configs from ``base``: every distribution at its
    low end, at its high end and ``draws`` seeded random draws go through :meth:`apply` and the
    workload's config models. Problems are attributed to the parameter that caused them."""
    rng = random.Random(0)
    out: list[tuple[Loc, str]] = []
    seen: set[Loc] = set()
    trials = [_ProbeTrial(mode, rng) for mode in ["low", "high"] + ["random"] * draws]
    trials += [_ProbeTrial(mode, rng, pin) for pin in _pins(space) for mode in ("low", "high")]
    for trial in trials:
        params = space.suggest(trial)
        try:
            config = space.apply(base, params)
        except SpaceError as exc:
            for where, msg in exc.problems:
                if where not in seen:
                    seen.add(where)
                    out.append((where, f"{msg} (with parameters {params})"))
            continue
        for loc, msg in part_problems(config) + _model_problems(config, params):
            owners = [(len(space.param(n).config_loc), n) for n in params
                      if tuple(loc[: len(space.param(n).config_loc)]) == space.param(n).config_loc]
            if len(loc) == 1 and loc[0] in params:  # keyed to its parameter by _model_problems
                where, text = loc, f"{msg} (at {loc[0]}={params[loc[0]]!r})"
            elif owners:
                name = max(owners)[1]
                where = (name,)
                text = f"{msg} (at {name}={params[name]!r}, config path {'.'.join(map(str, loc))})"
            else:
                where = ("",) + tuple(loc)  # not a parameter's doing: keyed by the config path
                text = f"{'.'.join(map(str, loc))}: {msg} (with parameters {params})"
            if where not in seen:
                seen.add(where)
                out.append((where if where[:1] != ("",) else (), text))
    return out


def _pins(space: SearchSpace) -> list[tuple[str, int]]:
    """(suggest name, choice index) for every choice of every categorical / subset parameter
    (template parameters once per layer of the placements' domain)."""
    out = []
    for p in space.params:
        if not isinstance(p.dist, (CategoricalDist, SubsetDist)):
            continue
        names = [p.instance(layer) for layer in space.layer_domain] if p.template else [p.name]
        out += [(name, k) for name in names for k in range(len(p.dist.encoded_choices()))]
    return out


def _model_problems(config: Mapping[str, Any], params: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """``preflight`` problems of one probed config; an ``n`` too large for its layer is keyed
    to the template instance ``pdcr.n.<layer>`` when the space sets it (so that the message
    names the parameter)."""
    out: list[tuple[Loc, str]] = []
    plugins: Any = config.get("plugins") or {}
    pdcr: Any = plugins.get("pdcr") if isinstance(plugins, Mapping) else None
    sites: Any = (pdcr.get("sites") if isinstance(pdcr, Mapping) else None) or ()
    for loc, msg in config_problems(config):
        if loc[-1:] == ("n",) and len(loc) == 5 and loc[3] < len(sites):
            layer = (sites[loc[3]].get("layers") or [""])[0]
            if f"pdcr.n.{layer}" in params:
                out.append(((f"pdcr.n.{layer}",), msg))
                continue
        out.append((loc, msg))
    return out


__all__ = ["probe_problems"]
