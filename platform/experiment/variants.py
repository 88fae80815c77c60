"""Named variants and axes, and how they cross into the variants of a grid.

    variants:                       # named overrides of the base (dotted keys allowed)
      baseline: {}
      pdcr: {plugins: {pdcr: {...}}}
    axes:
      model.name: [unet, fcn]        # a list axis: values of one dotted key
      uafr:                          # a mapping axis: named overrides
        off: {}
        on: {plugins.uafr: {layers: [encoder.4]}}

Crossed, the axes come first in the order written, then the variants; a variant's name joins
the labels with ``+`` (``unet+off+pdcr``). A list axis labels its values by the value
(``unet``) when the key ends in ``name``, else ``<leaf>=<value>`` (``lr=0.001``,
``patch_sizes=5-7-9``). Later components win where overrides touch the same key.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from dragsaw.platform.experiment.configs import OVERRIDABLE, deep_merge, unflatten
from dragsaw.platform.experiment.errors import Loc

LABEL = re.compile(r"^[A-Za-z0-9_.=-]+$")
_LABEL_RULE = "letters, digits, '_', '.', '=', '-' (no '+', which joins labels)"
BASE = "base"  # the one variant of a spec without variants or axes


def label_problems(labels: Iterable[Any]) -> list[tuple[Loc, str]]:
    """A problem for every label that is not a usable variant label."""
    return [((label,), f"variant labels use {_LABEL_RULE}, but got {label!r}")
            for label in labels if not LABEL.match(str(label))]


def _render(axis: str, value: Any) -> str:
    if isinstance(value, bool):
        text = str(value).lower()
    elif value is None:
        text = "none"
    elif isinstance(value, (int, float, str)):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        text = "-".join(map(str, value))
    else:
        raise ValueError(f"value {value!r} cannot be labelled; write this axis as a mapping of named overrides, "
                         f"e.g. {{my_label: {{{axis}: ...}}}}")
    leaf = axis.split(".")[-1]
    label = text if leaf == "name" else f"{leaf}={text}"
    if not LABEL.match(label):
        raise ValueError(f"value {value!r} makes the label {label!r}, but labels use {_LABEL_RULE}; write this axis "
                         "as a mapping of named overrides")
    return label


def axis_entries(axis: str, values: Any) -> list[tuple[Loc, str, dict]]:
    """(loc under the axis, label, overrides) for each value of one axis; ValueError when the
    axis itself is malformed."""
    if isinstance(values, list):
        top = axis.split(".")[0]
        if top not in OVERRIDABLE:
            raise ValueError(f"a list axis names a dotted key under {list(OVERRIDABLE)} (e.g. model.name), "
                             f"but got {axis!r}")
        if not values:
            raise ValueError("an axis needs at least one value")
        entries: list[tuple[Loc, str, dict]] = [((i,), _render(axis, v), {axis: v}) for i, v in enumerate(values)]
        labels = [label for _, label, _ in entries]
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ValueError(f"values must be distinct, but {repeated} repeat")
        return entries
    if isinstance(values, Mapping):
        if not values:
            raise ValueError("an axis needs at least one value")
        bad = label_problems(values)
        if bad:
            raise ValueError(bad[0][1])
        return [((label,), str(label), overrides or {}) for label, overrides in values.items()]
    raise ValueError("an axis is a list of values of a dotted key (`model.name: [unet, fcn]`) or a mapping of "
                     "named overrides (`uafr: {off: {}, on: {...}}`)")


def components(variants: Mapping | None, axes: Mapping | None) -> list[list[tuple[str, dict]]]:
    """The crossed components in order (each axis, then the variants): [(label, nested overrides)]."""
    out = [[(label, unflatten(o)) for _, label, o in axis_entries(axis, values)]
           for axis, values in (axes or {}).items()]
    if variants is not None:
        out.append([(name, unflatten(o or {})) for name, o in variants.items()])
    return out


def combine(variants: Mapping | None, axes: Mapping | None) -> list[tuple[str, dict]]:
    """Every variant of the grid: (name, nested overrides of the base), in crossing order."""
    parts = components(variants, axes)
    if not parts:
        return [(BASE, {})]
    out = []
    for combo in itertools.product(*parts):
        overrides: dict = {}
        for _label, o in combo:
            overrides = deep_merge(overrides, o)
        out.append(("+".join(label for label, _ in combo), overrides))
    return out


__all__ = ["LABEL", "BASE", "label_problems", "axis_entries", "components", "combine"]
