"""Checking a search space against the base config before anything runs: every
distribution at its low end, at its high end and in seeded random draws goes through
``SearchSpace.apply`` and the workload's config models, so a range that makes an invalid
config (``pdcr.tau`` from 0, an option of a plug-in that may not be placed) is reported
when the spec is loaded, attributed to the parameter."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from dragsaw.platform.experiment.configs import part_problems
from dragsaw.platform.experiment.errors import Loc
from dragsaw.platform.search.space import SearchSpace, SpaceError


class _ProbeTrial:
    """Stands in for an Optuna trial when a space is checked: every distribution at its low
    end, its high end, or drawn at random (seeded)."""

    def __init__(self, mode: str, rng: random.Random):
        self.mode, self.rng = mode, rng

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
    for mode in ["low", "high"] + ["random"] * draws:
        params = space.suggest(_ProbeTrial(mode, rng))
        try:
            config = space.apply(base, params)
        except SpaceError as exc:
            for where, msg in exc.problems:
                if where not in seen:
                    seen.add(where)
                    out.append((where, f"{msg} (with parameters {params})"))
            continue
        for loc, msg in part_problems(config):
            owners = [(len(space.param(n).config_loc), n) for n in params
                      if tuple(loc[: len(space.param(n).config_loc)]) == space.param(n).config_loc]
            if owners:
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


__all__ = ["probe_problems"]
