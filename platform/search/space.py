"""A search space written in YAML: which parameter, which distribution, under which condition,
and how the sampled values become a trial config.

Parameter names say what they set (dotted, in the order they are suggested):

==============================  =====================================================================
``placement.<plug-in>``         ``type: subset`` of stage/module names: where pdcr, uafr, se or cbam
                                is attached (the empty set removes the plug-in). For pdcr, one
                                single-layer site per chosen layer; a base site on the same layer
                                lends its other fields.
``pdcr.<field>.{layer}``        a template: one parameter per layer of the placements' choices
                                (``pdcr.n.encoder.2`` ...), each setting that field of the PDCR site
                                on that layer (``n``, ``patch``, ``patch_sizes``, ``projection``);
                                needs a ``when`` that uses ``layer``, e.g. ``layer in placement.pdcr``.
``pdcr.n``                      N of every PDCR site that has no per-layer N.
``pdcr.p``                      P: keep the first P sizes of the patch series.
``pdcr.<option>``               a PDCRConfig option: ``tau``, ``patch_sizes``, ``sampling``, ``phi`` ...
``uafr.<option>`` (se, cbam)    a block option: ``num_maps``, ``kernel_size``, ``use_f`` ...
``train.<field>``               a TrainConfig field: ``lr``, ``pdcr_weight``, ``batch_size`` ...
``eval.<field>``, ``model.width``, ``model.name``, ``model.options.<name>``
==============================  =====================================================================

``suggest(trial)`` is define-by-run: it calls ``trial.suggest_*`` in declaration order
(templates in the order of the placements' choices) and only for parameters whose
condition holds. ``apply(base, params)`` turns the sampled values into a trial config.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from dragsaw.platform.experiment.configs import set_path
from dragsaw.platform.experiment.errors import Loc, as_problems
from dragsaw.platform.search.conditions import Condition, parse_condition
from dragsaw.platform.search.distributions import (
    DISTRIBUTIONS,
    CategoricalDist,
    Distribution,
    FloatDist,
    IntDist,
    SubsetDist,
)
from dragsaw.workloads._checks import closest
from dragsaw.workloads.pdcr.config import PDCRConfig, Site
from dragsaw.workloads.plugins import KINDS
from dragsaw.workloads.recipe import EvalConfig, TrainConfig

#: The plug-in kinds a search can place (``placement.<kind>``) and set options of (``<kind>.<option>``).
PLACEABLE = tuple(KINDS)
TEMPLATE = "{layer}"
_BLOCKS: dict[str, type[BaseModel]] = {name: kind.config for name, kind in KINDS.items()}
_HIDDEN = {name: kind.hidden for name, kind in KINDS.items()}
_SITE_FIELDS = [f for f in Site.model_fields if f != "layers"]
_NAMESPACES = ("placement", *KINDS, "train", "eval", "model")


class SpaceError(ValueError):
    """A search space that cannot be used; ``problems``: (loc under the space, message)."""

    def __init__(self, problems: list[tuple[Loc, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{'.'.join(map(str, loc)) or 'space'}: {msg}" for loc, msg in problems))


class Suggester(Protocol):
    """What :meth:`SearchSpace.suggest` draws from: an ``optuna.trial.BaseTrial`` or a stand-in."""

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One entry of the space. ``target``: ("placement", kind) | ("site", field) | ("pdcr_n",) |
    ("pdcr_p",) | ("plugin", kind, field) | ("config", "train.lr")."""

    name: str
    dist: FloatDist | IntDist | CategoricalDist | SubsetDist
    condition: Condition | None
    target: tuple

    @property
    def template(self) -> bool:
        return self.name.endswith("." + TEMPLATE)

    def instance(self, layer: str) -> str:
        return self.name[: -len(TEMPLATE)] + layer

    @property
    def layer_choices(self) -> list[str]:
        """The layers a ``placement.<plug-in>`` parameter picks from (its ``subset`` choices)."""
        if not isinstance(self.dist, SubsetDist):
            raise TypeError(f"{self.name} is not a placement parameter: its type is {self.dist.type!r}, not subset")
        return self.dist.choices

    @property
    def config_loc(self) -> Loc:
        """Where in a trial config this parameter lands (for attributing validation errors)."""
        kind = self.target[0]
        if kind == "placement":
            return ("plugins", self.target[1])
        if kind in ("site", "pdcr_n"):
            return ("plugins", "pdcr", "sites")
        if kind == "pdcr_p":
            return ("plugins", "pdcr", "patch_sizes")
        if kind == "plugin":
            return ("plugins", self.target[1], self.target[2])
        return tuple(self.target[1].split("."))


def _fields(model: type[BaseModel], hidden=()) -> list[str]:
    return [f for f in model.model_fields if f not in hidden]


def _target(name: str, dist) -> tuple:
    """Classify a parameter name (see the module docstring); ValueError says what is valid."""
    if name.endswith("." + TEMPLATE):
        top, _, field = name[: -len(TEMPLATE) - 1].partition(".")
        if top != "pdcr" or field not in _SITE_FIELDS:
            raise ValueError(f"a {TEMPLATE} template sets one field of the PDCR site on each placed layer: "
                             f"write pdcr.<field>.{TEMPLATE} with <field> one of {_SITE_FIELDS}")
        return ("site", field)
    if "{" in name or "}" in name:
        raise ValueError(f"braces are allowed only as the final `.{TEMPLATE}` of a template name, "
                         f"e.g. pdcr.n.{TEMPLATE}")
    top, _, rest = name.partition(".")
    if top == "placement":
        if rest not in PLACEABLE:
            raise ValueError(f"`placement.<plug-in>` takes a plug-in of {list(PLACEABLE)}, but got {rest!r}; "
                             f"{closest(rest, PLACEABLE)}")
        if not isinstance(dist, SubsetDist):
            raise ValueError(f"{name} is a set of layers: it needs `type: subset`, but got type {dist.type!r}")
        return ("placement", rest)
    if isinstance(dist, SubsetDist):
        raise ValueError("`type: subset` is for placement.<plug-in> parameters only")
    if top in _BLOCKS:
        valid = (["n", "p"] if top == "pdcr" else []) + _fields(_BLOCKS[top], _HIDDEN[top])
        if rest in ("n", "p") and top == "pdcr":
            return (f"pdcr_{rest}",)
        if rest not in valid:
            raise ValueError(f"{top} has no searchable option {rest!r}; {closest(rest, valid)} (valid: {valid})")
        return ("plugin", top, rest)
    if top in ("train", "eval"):
        valid = _fields(TrainConfig if top == "train" else EvalConfig)
        if rest not in valid:
            raise ValueError(f"{top} has no field {rest!r}; {closest(rest, valid)}")
        return ("config", name)
    if top == "model":
        if rest in ("name", "width") or (rest.startswith("options.") and len(rest) > len("options.")):
            return ("config", name)
        raise ValueError(f"model parameters are model.name, model.width and model.options.<option>, but got {name!r}")
    if top == "plugins":
        raise ValueError(f"write plug-in options without `plugins.` (e.g. `pdcr.tau`, `uafr.kernel_size`) and "
                         f"their layers as `placement.<plug-in>`, but got {name!r}")
    raise ValueError(f"unknown parameter {name!r}: names start with one of {list(_NAMESPACES)}; "
                     f"{closest(top, _NAMESPACES)}")


def parse_distribution(raw: Any) -> Distribution:
    """A distribution model from its YAML mapping (``type`` picks the kind)."""
    if isinstance(raw, (FloatDist, IntDist, CategoricalDist, SubsetDist)):
        return raw
    if not isinstance(raw, Mapping):
        raise ValueError(f"must be a mapping with a `type` ({', '.join(DISTRIBUTIONS)}), but got {raw!r}")
    kind = raw.get("type")
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"`type` must be one of {list(DISTRIBUTIONS)}, but got {kind!r}"
                         + (f"; {closest(str(kind), DISTRIBUTIONS)}" if isinstance(kind, str) else ""))
    return DISTRIBUTIONS[kind].model_validate(raw)


class SearchSpace:
    """A validated search space; see the module docstring for the language.

    space: parameter name -> distribution (a mapping as in YAML, or a distribution model).
    Raises :class:`SpaceError` listing every problem.
    """

    def __init__(self, space: Mapping[str, Any]):
        problems: list[tuple[Loc, str]] = []
        self.params: list[Param] = []
        declared: list[str] = []
        if not space:
            raise SpaceError([((), "a search space needs at least one parameter")])
        for name, raw in space.items():
            name = str(name)
            try:
                dist = parse_distribution(raw)
            except ValidationError as exc:
                problems += as_problems(exc, DISTRIBUTIONS.get(raw.get("type")), (name,))
                continue
            except ValueError as exc:
                problems.append(((name,), str(exc)))
                continue
            try:
                target = _target(name, dist)
            except ValueError as exc:
                problems.append(((name,), str(exc)))
                continue
            condition = None
            if dist.when is not None:
                try:
                    condition = parse_condition(dist.when)
                except ValueError as exc:
                    problems.append(((name, "when"), str(exc)))
                    continue
                late = [n for n in condition.names if n not in declared]
                if late:
                    problems.append(((name, "when"), (f"reads {late}, which must be parameters declared before "
                                                     f"{name} (declared so far: {declared or 'none'})")))
            param = Param(name, dist, condition, target)
            if param.template and (condition is None or not condition.uses_layer):
                problems.append(((name,), (f"a {TEMPLATE} template needs a `when` that uses `layer`, e.g. "
                                          "when: \"layer in placement.pdcr\"")))
            elif not param.template and condition is not None and condition.uses_layer:
                problems.append(((name, "when"), f"`layer` is defined only inside a {TEMPLATE} template"))
            if not param.template:
                declared.append(name)
            self.params.append(param)
        self.layer_domain: list[str] = []
        for p in self.params:
            if p.target[0] == "placement":
                self.layer_domain += [c for c in p.layer_choices if c not in self.layer_domain]
        if any(p.template for p in self.params) and not self.layer_domain:
            problems.append(((), (f"a {TEMPLATE} template draws its layers from placement.<plug-in> parameters, "
                                 "but the space has none")))
        if problems:
            raise SpaceError(problems)
        self._by_name = {p.name: p for p in self.params}
        self._instances = {p.instance(layer): (p, layer) for p in self.params if p.template
                           for layer in self.layer_domain}
        #: suggest name -> a narrower distribution than its entry's (choices cut by the probe)
        self._dists: dict[str, Distribution] = {}

    def with_dists(self, dists: Mapping[str, Distribution]) -> SearchSpace:
        """A copy in which the parameters (or template instances, ``pdcr.n.encoder.5``) named in
        ``dists`` draw from those distributions instead (the probe's cut choices removed)."""
        out = copy.copy(self)
        out._dists = {**self._dists, **{self.param(n).name if n in self._by_name else n: d for n, d in dists.items()}}
        return out

    def dist(self, name: str) -> Distribution:
        """The distribution parameter ``name`` (a template instance too) is drawn from."""
        return self._dists.get(name) or self.param(name).dist

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every suggest name -> its effective distribution as plain data (no ``when``), in
        suggestion order: what a study records to tell a changed space on resume."""
        return {n: self.dist(n).model_dump(mode="json", exclude={"when"}) for n in self.names()}

    # -- names ------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every parameter name a trial may hold (templates expanded), in suggestion order."""
        out = []
        for p in self.params:
            out += [p.instance(layer) for layer in self.layer_domain] if p.template else [p.name]
        return out

    def param(self, name: str) -> Param:
        """The entry that defines parameter ``name`` (a template for a per-layer name)."""
        if name in self._by_name:
            return self._by_name[name]
        if name in self._instances:
            return self._instances[name][0]
        raise KeyError(f"{name!r} is not a parameter of this space; {closest(name, self.names())}")

    # -- sampling ---------------------------------------------------------------------
    def suggest(self, trial: Suggester) -> dict[str, Any]:
        """Define-by-run: sample every parameter whose condition holds from ``trial`` (an
        ``optuna.trial.BaseTrial``, or anything with suggest_float/int/categorical), in order.
        Returns param name -> value (subsets as lists of names, categorical values decoded)."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.template:
                if p.condition is None:  # __init__ rejects such a space
                    raise SpaceError([((p.name,), f"a {TEMPLATE} template needs a `when` that uses `layer`")])
                for layer in self.layer_domain:
                    if p.condition(values, layer):
                        values[p.instance(layer)] = _suggest(trial, p.instance(layer), self.dist(p.instance(layer)))
            elif p.condition is None or p.condition(values):
                values[p.name] = _suggest(trial, p.name, self.dist(p.name))
        return values

    def to_optuna(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` as Optuna stores them (subsets and list choices encoded), e.g. for
        ``optuna.trial.FixedTrial`` or ``study.enqueue_trial``."""
        out = {}
        for name, value in params.items():
            dist = self.dist(name)
            if isinstance(dist, SubsetDist):
                out[name] = dist.encode(value)
            elif isinstance(dist, CategoricalDist):
                out[name] = dist.encoded_choices()[dist.choices.index(value)]
            else:
                out[name] = value
        return out

    # -- params -> trial config -------------------------------------------------------
    def apply(self, base: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial-config dict: ``base`` (model/plugins/train/eval/... as plain dicts) with
        ``params`` (as returned by :meth:`suggest`) applied. Raises ``SpaceError`` when the
        parameters do not make a config (e.g. an option of a plug-in that is not placed)."""
        unknown: list[tuple[Loc, str]] = [((name,), f"not a parameter of this space; {closest(name, self.names())}")
                   for name in params if name not in self._by_name and name not in self._instances]
        if unknown:
            raise SpaceError(unknown)
        config = copy.deepcopy(dict(base))
        plugins = copy.deepcopy(config.get("plugins")) or {}
        problems: list[tuple[Loc, str]] = []
        for kind in PLACEABLE:  # 1. placements
            layers = params.get(f"placement.{kind}")
            if layers is None:
                continue
            if kind == "pdcr":
                plugins["pdcr"] = _place_pdcr(plugins.get("pdcr"), list(layers))
            else:
                plugins[kind] = {**(plugins.get(kind) or {}), "layers": list(layers)} if layers else None
        per_layer_n = set()
        for name, value in params.items():  # 2. per-layer site fields
            if name not in self._instances:
                continue
            p, layer = self._instances[name]
            site = _site(plugins.get("pdcr"), layer)
            if site is None:
                problems.append(((p.name,), (f"{name} is set, but PDCR has no site on {layer!r}; give {p.name} the "
                                            "condition \"layer in placement.pdcr\"")))
                continue
            site[p.target[1]] = copy.deepcopy(value)
            if p.target[1] == "n":
                per_layer_n.add(layer)
        for name, value in params.items():  # 3. options of the plug-ins, then the rest of the config
            if name in self._instances or name.startswith("placement."):
                continue
            p = self._by_name[name]
            kind = p.target[0]
            if kind in ("pdcr_n", "pdcr_p", "plugin"):
                block_kind = "pdcr" if kind != "plugin" else p.target[1]
                block = plugins.get(block_kind)
                if not isinstance(block, dict):
                    problems.append(((name,), (f"{name} is set, but no {block_kind} is placed (neither the base config "
                                              f"nor placement.{block_kind} puts one anywhere); give it a condition "
                                              f"such as \"len(placement.{block_kind}) > 0\"")))
                    continue
                if kind == "pdcr_n":
                    for site in block.get("sites") or ():
                        if len(site.get("layers", ())) != 1 or site["layers"][0] not in per_layer_n:
                            site["n"] = value
                elif kind == "plugin":
                    block[p.target[2]] = copy.deepcopy(value)
            elif kind == "config":
                set_path(config, p.target[1], copy.deepcopy(value))
        if "pdcr.p" in params and isinstance(plugins.get("pdcr"), dict):  # 4. P after the series is known
            series = list(plugins["pdcr"].get("patch_sizes") or PDCRConfig.model_fields["patch_sizes"].default)
            p_value = params["pdcr.p"]
            if not isinstance(p_value, int) or not 1 <= p_value <= len(series):
                problems.append((("pdcr.p",), (f"`1 <= pdcr.p <= len(patch_sizes)` must hold, but got "
                                              f"(pdcr.p={p_value!r}, patch_sizes={series})")))
            else:
                plugins["pdcr"]["patch_sizes"] = series[:p_value]
        if isinstance(plugins.get("pdcr"), dict):
            missing = [s["layers"] for s in plugins["pdcr"].get("sites") or () if "n" not in s]
            if missing:
                problems.append(((), (f"PDCR sites {missing} have no N: add pdcr.n.{TEMPLATE} or pdcr.n to the space, "
                                     "or give the base plugins a site on those layers")))
        if problems:
            raise SpaceError(problems)
        config["plugins"] = plugins if any(v is not None for v in plugins.values()) else None
        return config


def _suggest(trial: Suggester, name: str, dist: Distribution) -> Any:
    if isinstance(dist, FloatDist):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, IntDist):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return copy.deepcopy(dist.decode(trial.suggest_categorical(name, dist.encoded_choices())))


def _place_pdcr(base: Mapping | None, layers: list[str]) -> dict | None:
    """PDCR with one single-layer site per layer; a base site on that layer lends its fields."""
    if not layers:
        return None
    block = copy.deepcopy(dict(base or {}))
    own = {tuple(s.get("layers", ())): s for s in block.get("sites") or ()}
    block["sites"] = [copy.deepcopy(dict(own.get((layer,), {}))) | {"layers": [layer]} for layer in layers]
    return block


def _site(pdcr: Any, layer: str) -> dict | None:
    if not isinstance(pdcr, dict):
        return None
    return next((s for s in pdcr.get("sites") or () if list(s.get("layers", ())) == [layer]), None)


__all__ = ["SearchSpace", "SpaceError", "Param", "parse_distribution", "PLACEABLE", "TEMPLATE"]
