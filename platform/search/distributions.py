"""The distributions of a search space, as written in YAML (one mapping per parameter):

    train.lr:        {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    train.batch_size: {type: int, low: 4, high: 16, step: 4}
    pdcr.patch_sizes: {type: categorical, choices: [[5], [5, 7], [5, 7, 9]]}
    placement.pdcr:  {type: subset, choices: [encoder.2, encoder.3, encoder.4], min_size: 1}

Every distribution takes an optional ``when`` condition (see ``conditions``).
``subset`` draws a set of the choices with ``min_size <= size <= max_size``; Optuna sees
it as one categorical over the allowed subsets, each written as the chosen names joined
by ``,`` in choice order (``""`` for the empty set), so a random sampler draws every
allowed subset with the same probability.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: At most this many allowed subsets per ``subset`` parameter (Optuna enumerates them).
MAX_SUBSETS = 4096


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: str | None = None


class FloatDist(_Dist):
    """A float in [low, high]; ``log`` samples in log space; ``step`` discretises."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _invariants(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"`low` and `high` must be finite, but got (low={self.low}, high={self.high})")
        if self.low > self.high:
            raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"`low > 0` must hold for log=true, but got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("`step` and `log=true` cannot be used together")
        return self


class IntDist(_Dist):
    """An int in [low, high] (both included); ``log`` samples in log space; ``step`` >= 1."""

    type: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _invariants(self):
        if self.low > self.high:
            raise ValueError(f"`low <= high` must hold, but got (low={self.low}, high={self.high})")
        if self.log and self.low < 1:
            raise ValueError(f"`low >= 1` must hold for log=true, but got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError(f"`step` must be 1 with log=true, but got step={self.step}")
        return self


def _encode(value: Any) -> Any:
    """A choice as Optuna can store it: scalars as they are, lists/mappings as JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


class CategoricalDist(_Dist):
    """One of ``choices`` (any YAML values: numbers, strings, lists such as patch series)."""

    type: Literal["categorical"] = "categorical"
    choices: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self):
        encoded = [_encode(c) for c in self.choices]
        repeated = sorted({json.dumps(e) for e in encoded if encoded.count(e) > 1})
        if repeated:
            raise ValueError(f"`choices` must be distinct, but {', '.join(repeated)} repeat")
        return self

    def encoded_choices(self) -> list:
        return [_encode(c) for c in self.choices]

    def decode(self, encoded: Any) -> Any:
        return self.choices[self.encoded_choices().index(encoded)]


class SubsetDist(_Dist):
    """A subset of ``choices`` (layer names) with ``min_size <= size <= max_size``
    (``max_size`` defaults to all of them)."""

    type: Literal["subset"] = "subset"
    choices: list[str] = Field(min_length=1)
    min_size: int = Field(default=1, ge=0)
    max_size: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _invariants(self):
        repeated = sorted({c for c in self.choices if self.choices.count(c) > 1})
        if repeated:
            raise ValueError(f"`choices` must be distinct, but {repeated} repeat")
        bad = [c for c in self.choices if "," in c or not c]
        if bad:
            raise ValueError(f"`choices` must be non-empty names without ',', but got {bad}")
        top = self.upper
        if not self.min_size <= top <= len(self.choices):
            raise ValueError(f"`min_size <= max_size <= len(choices)` must hold, but got "
                             f"(min_size={self.min_size}, max_size={top}, len(choices)={len(self.choices)})")
        count = sum(math.comb(len(self.choices), k) for k in range(self.min_size, top + 1))
        if count > MAX_SUBSETS:
            raise ValueError(f"{count} allowed subsets exceed the limit of {MAX_SUBSETS}; lower `max_size` "
                             "or split the choices")
        return self

    @property
    def upper(self) -> int:
        return len(self.choices) if self.max_size is None else self.max_size

    def subsets(self) -> list[tuple[str, ...]]:
        """Allowed subsets, smallest first, each in choice order."""
        return [combo for k in range(self.min_size, self.upper + 1)
                for combo in itertools.combinations(self.choices, k)]

    def encoded_choices(self) -> list[str]:
        return [",".join(s) for s in self.subsets()]

    def decode(self, encoded: str) -> list[str]:
        return [part for part in encoded.split(",") if part]

    def encode(self, layers: Iterable[str]) -> str:
        chosen = set(layers)
        return ",".join(c for c in self.choices if c in chosen)


Distribution = FloatDist | IntDist | CategoricalDist | SubsetDist
DISTRIBUTIONS: dict[str, type[FloatDist] | type[IntDist] | type[CategoricalDist] | type[SubsetDist]] = {
    "float": FloatDist, "int": IntDist, "categorical": CategoricalDist, "subset": SubsetDist}

__all__ = ["DISTRIBUTIONS", "Distribution", "FloatDist", "IntDist", "CategoricalDist", "SubsetDist", "MAX_SUBSETS"]
