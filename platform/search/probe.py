"""Checking a search space against the base config before anything runs: every
distribution at its low end, at its high end and in seeded random draws goes through
``SearchSpace.apply`` and the workload's config models, so a range that makes an invalid
config (``pdcr.tau`` from 0, an option of a plug-in that may not be placed) is reported
when the spec is loaded, attributed to the parameter.

Every choice of every categorical or subset parameter is also tried at both extremes of
the others, and each config is probed against the model itself (``preflight``): a PDCR
``n`` larger than the positions of the layer it lands on at the spec's image size (the
shipped ``n: 128`` on ``encoder.5`` at 128 px), or patches larger than the image.
``effective_space`` cuts such choices from the space before a study starts (a note each),
so they are never sampled; only a parameter left with no runnable choice, or a range
whose low end cannot run, refuses the spec."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dragsaw.platform.experiment.configs import part_problems
from dragsaw.platform.experiment.errors import Loc, format_loc
from dragsaw.platform.search.distributions import CategoricalDist, FloatDist, IntDist, SubsetDist
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


@dataclass(frozen=True)
class Cut:
    """A choice removed from the space before the study starts: ``param`` (a suggest name,
    ``pdcr.n.encoder.5``), ``choice`` (the choice's value; a layer name for ``subset``
    parameters) and ``reason`` (what the model or the config refuses)."""

    param: str
    choice: Any
    reason: str

    def note(self) -> str:
        return f"{format_loc(('search', 'space', self.param))}: choice {self.choice!r} cut: {self.reason}"


def probe_problems(space: SearchSpace, base: Mapping[str, Any], draws: int = 32) -> list[tuple[Loc, str]]:
    """Check that the space makes valid trial configs from ``base``: every distribution at its
    low end, at its high end and ``draws`` seeded random draws go through :meth:`apply` and the
    workload's config models. Problems are attributed to the parameter that caused them."""
    out: list[tuple[Loc, str]] = []
    seen: set[Loc] = set()
    for _, _, found in _probe(space, base, draws):
        for where, text, _ in found:
            if where not in seen:
                seen.add(where)
                out.append((where if where[:1] != ("",) else (), text))
    return out


_EFFECTIVE: dict[str, tuple[SearchSpace, list[Cut], list[tuple[Loc, str]]]] = {}


def effective_space(space: SearchSpace, base: Mapping[str, Any],
                    draws: int = 32) -> tuple[SearchSpace, list[Cut], list[tuple[Loc, str]]]:
    """(the runnable space, the cut choices, the problems left) of ``space`` over ``base``.

    A choice of a categorical parameter (each template instance on its own) is cut when every
    probe that drew it (the others at their low end, their high end and at random) failed
    because of it; a layer of a ``subset`` parameter when every probed subset holding it
    did. A parameter left without a runnable choice, and what fails for other reasons (a
    float range whose low end cannot run), are problems. Deterministic (seeded probes) and
    memoised per (space, base), so every command of the same spec cuts the same choices."""
    key = json.dumps([space.describe(), space.names(), base], sort_keys=True, default=str)
    if key in _EFFECTIVE:
        return _EFFECTIVE[key]
    probes = _probe(space, base, draws)
    pinned: dict[tuple[str, int], list[str | None]] = {}  # pin -> per probe that drew it: its reason or None
    for pin, params, found in probes:
        if pin is None or pin[0] not in params:
            continue
        own = [reason for where, _, reason in found if where == (pin[0],)]
        pinned.setdefault(pin, []).append(own[0] if own else None)
    failing = {pin: reasons[0] for pin, reasons in pinned.items() if reasons and all(r is not None for r in reasons)}
    cuts: list[Cut] = []
    dists: dict[str, Any] = {}
    problems: list[tuple[Loc, str]] = []
    for name in space.names():
        dist = space.dist(name)
        if not isinstance(dist, (CategoricalDist, SubsetDist)):
            continue
        if isinstance(dist, CategoricalDist):
            gone = [k for k in range(len(dist.choices)) if (name, k) in failing]
            if not gone:
                continue
            cuts += [Cut(name, dist.choices[k], str(failing[(name, k)])) for k in gone]
            kept = [c for k, c in enumerate(dist.choices) if k not in gone]
            if not kept:
                problems.append(((name,), "no runnable choice left: " + "; ".join(
                    f"{c!r}: {failing[(name, k)]}" for k, c in enumerate(dist.choices))))
                continue
            dists[name] = dist.model_copy(update={"choices": kept})
            continue
        subsets = dist.encoded_choices()
        bad_layers = []
        for layer in dist.choices:
            holding = [k for k, enc in enumerate(subsets) if layer in enc.split(",")]
            if holding and all((name, k) in failing for k in holding):
                bad_layers.append(layer)
                cuts.append(Cut(name, layer, str(failing[(name, holding[0])])))
        if bad_layers:
            kept_layers = [c for c in dist.choices if c not in bad_layers]
            try:
                dists[name] = SubsetDist.model_validate(
                    {**dist.model_dump(), "choices": kept_layers,
                     "max_size": min(dist.upper, len(kept_layers))})
            except ValueError:
                problems.append(((name,), (f"no runnable choice left: layers {bad_layers} cannot run, and "
                                           f"{kept_layers} cannot make a set of min_size={dist.min_size}")))
    if problems:
        result = (space, cuts, problems)
    elif cuts:
        cut_space = space.with_dists(dists)
        result = (cut_space, cuts, probe_problems(cut_space, base, draws))
    else:
        result = (space, [], probe_problems(space, base, draws))
    _EFFECTIVE[key] = result
    return result


def _probe(space: SearchSpace, base: Mapping[str, Any],
           draws: int) -> list[tuple[tuple[str, int] | None, dict[str, Any], list[tuple[Loc, str, str]]]]:
    """Every probe: (its pin or None, the parameters it drew, its problems as (where, text,
    bare message)); ``where`` is a parameter name, or ``("", *config path)`` when no
    parameter caused it."""
    rng = random.Random(0)
    trials = [_ProbeTrial(mode, rng) for mode in ["low", "high"] + ["random"] * draws]
    trials += [_ProbeTrial(mode, rng, pin) for pin in _pins(space) for mode in ("low", "high")]
    out = []
    for trial in trials:
        params = space.suggest(trial)
        found: list[tuple[Loc, str, str]] = []
        out.append((trial.pinned, params, found))
        try:
            config = space.apply(base, params)
        except SpaceError as exc:
            found += [(where, f"{msg} (with parameters {params})", msg) for where, msg in exc.problems]
            continue
        for loc, msg in part_problems(config) + _model_problems(config, params):
            owners = [(len(space.param(n).config_loc), n) for n in params
                      if tuple(loc[: len(space.param(n).config_loc)]) == space.param(n).config_loc]
            if len(loc) == 1 and loc[0] in params:  # keyed to its parameter by _model_problems
                found.append((loc, f"{msg} (at {loc[0]}={params[loc[0]]!r})", msg))
                continue
            if owners:
                name = max(owners)[1]
                dist = space.dist(name)
                bound = (f"; the range's low end cannot run: raise `low` (low={dist.low})"
                         if isinstance(dist, (FloatDist, IntDist)) and params[name] == dist.low else "")
                found.append(((name,), f"{msg} (at {name}={params[name]!r}, config path "
                                       f"{'.'.join(map(str, loc))}){bound}", msg))
            else:
                found.append((("",) + tuple(loc), f"{'.'.join(map(str, loc))}: {msg} (with parameters {params})",
                              msg))
    return out


def _pins(space: SearchSpace) -> list[tuple[str, int]]:
    """(suggest name, choice index) for every choice of every categorical / subset parameter
    (template parameters once per layer of the placements' domain)."""
    out = []
    for p in space.params:
        names = [p.instance(layer) for layer in space.layer_domain] if p.template else [p.name]
        for name in names:
            dist = space.dist(name)
            if isinstance(dist, (CategoricalDist, SubsetDist)):
                out += [(name, k) for k in range(len(dist.encoded_choices()))]
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


__all__ = ["probe_problems", "effective_space", "Cut"]
