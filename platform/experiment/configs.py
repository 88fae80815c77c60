"""Plain-dict helpers for trial configs: dotted keys, deep merges, and checking the
parts of a trial config (model / plugins / train / eval) before a dataset is known."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from dragsaw.platform.experiment.errors import Loc, as_problems
from dragsaw.workloads.plugins import KINDS, REWEIGHTING, PluginsConfig
from dragsaw.workloads.recipe import EvalConfig, ModelConfig, TrainConfig

#: The parts of a trial config that variants, axes and search parameters may change.
OVERRIDABLE = ("model", "plugins", "train", "eval")
_PART_MODELS = {"model": ModelConfig, "train": TrainConfig, "eval": EvalConfig}


def unflatten(mapping: Mapping[str, Any]) -> dict:
    """``{"plugins.pdcr.tau": 0.5, "train": {"lr": 1e-3}}`` -> nested dicts (dotted keys
    split; a dotted key and a nested one for the same place are deep-merged, in order)."""
    out: dict = {}
    for key, value in mapping.items():
        parts = str(key).split(".")
        nested: Any = value
        for part in reversed(parts[1:]):
            nested = {part: nested}
        out = deep_merge(out, {parts[0]: nested})
    return out


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` over ``base``: mappings merge key by key (recursively); anything else
    (lists, scalars, null) replaces. Neither argument is modified."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in override.items():
            out[key] = deep_merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> dotted keys down to the leaves (lists and empty dicts are leaves)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = copy.deepcopy(value)
    return out


def set_path(config: dict, dotted: str, value: Any) -> None:
    """Set ``config[a][b][c] = value`` for ``"a.b.c"``, creating (or replacing null with) dicts."""
    parts = dotted.split(".")
    node = config
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def part_problems(config: Mapping[str, Any], parts: Iterable[str] = OVERRIDABLE) -> list[tuple[Loc, str]]:
    """(loc, message) for what is wrong in the ``parts`` of a trial-config dict, by the
    workload's own models (ModelConfig, PluginsConfig, TrainConfig, EvalConfig). Sizes the
    dataset fills (``pdcr.num_classes``, ``uafr.num_maps``) may be absent."""
    problems: list[tuple[Loc, str]] = []
    for part in parts:
        value = config.get(part)
        if part == "plugins":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                problems.append(((part,), (f"must be a mapping of plug-ins ({', '.join(KINDS)}) or null, "
                                          f"but got {value!r}")))
                continue
            try:
                PluginsConfig.model_validate(value)
            except ValidationError as exc:
                problems += as_problems(exc, PluginsConfig, (part,))
        else:
            try:
                _PART_MODELS[part].model_validate(value if value is not None else {})
            except ValidationError as exc:
                problems += as_problems(exc, _PART_MODELS[part], (part,))
    return problems


def plugin_layers(plugins: Mapping | None) -> list[tuple[Loc, str]]:
    """Every layer name a (dict) plug-in config refers to, with its loc under ``plugins``."""
    out: list[tuple[Loc, str]] = []
    if not isinstance(plugins, Mapping):
        return out
    pdcr = plugins.get("pdcr")
    if isinstance(pdcr, Mapping):
        for i, site in enumerate(pdcr.get("sites") or ()):
            for j, name in enumerate((site or {}).get("layers") or ()):
                out.append((("pdcr", "sites", i, "layers", j), name))
    for kind in REWEIGHTING:
        block = plugins.get(kind)
        if isinstance(block, Mapping):
            for j, name in enumerate(block.get("layers") or ()):
                out.append(((kind, "layers", j), name))
    return out


__all__ = ["OVERRIDABLE", "unflatten", "deep_merge", "flatten", "set_path", "part_problems",
           "plugin_layers"]
