"""Dice, Jaccard and pixel accuracy from confusion counts, per case and class.

counts: (..., 4) integer array, last axis (tp, fp, fn, tn) (``COUNT_FIELDS``);
every function returns (...) float64, one score per row.

- dice     = 2 TP / (2 TP + FP + FN)
- jaccard  = TP / (TP + FP + FN)
- accuracy = (TP + TN) / (TP + FP + FN + TN), the one-vs-rest pixel accuracy of the
  class. With two classes both rows equal the overall pixel accuracy; with M > 2 the
  mean over classes is not sum(TP) / N.

The empty-reference rule (``empty``) decides Dice and Jaccard when a class is absent
from both prediction and reference (TP + FP + FN = 0), where they are 0 / 0:

- ``"nan"``: undefined, NaN; left out of means (nnU-Net's rule);
- ``"one"``: scored as perfect, 1.0.

A class absent from the reference but predicted (TP = 0, FP > 0), or present in the
reference but not predicted (TP = 0, FN > 0), scores 0 under both rules. Accuracy is
never 0 / 0 for a case with pixels, so ``empty`` does not apply to it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from numpy.typing import ArrayLike

from dragsaw.workloads._checks import one_of

#: Values of ``empty``: how Dice/Jaccard score a class absent from prediction and reference.
EMPTY_RULES = ("nan", "one")

#: Metric names as they appear in configs, Parquet columns and leaderboards.
METRICS = ("dice", "jaccard", "accuracy")


def dice(counts: ArrayLike, empty: str = "nan") -> np.ndarray:
    """2 TP / (2 TP + FP + FN): (..., 4) counts -> (...) float64; ``empty`` as in the module doc."""
    tp, fp, fn, _ = _fields(counts)
    return _ratio(2 * tp, 2 * tp + fp + fn, _empty_value(empty))


def jaccard(counts: ArrayLike, empty: str = "nan") -> np.ndarray:
    """TP / (TP + FP + FN): (..., 4) counts -> (...) float64; ``empty`` as in the module doc."""
    tp, fp, fn, _ = _fields(counts)
    return _ratio(tp, tp + fp + fn, _empty_value(empty))


def accuracy(counts: ArrayLike, empty: str = "nan") -> np.ndarray:
    """(TP + TN) / (TP + FP + FN + TN): (..., 4) counts -> (...) float64.

    ``empty`` is checked but has no effect (accuracy is defined whenever the case has
    pixels); it is accepted so that all metrics share one signature. Rows with no
    pixels at all give NaN."""
    _empty_value(empty)
    tp, fp, fn, tn = _fields(counts)
    return _ratio(tp + tn, tp + fp + fn + tn, np.nan)


_BY_NAME = {"dice": dice, "jaccard": jaccard, "accuracy": accuracy}


class Metric(Protocol):
    """The signature of ``dice``, ``jaccard`` and ``accuracy``."""

    def __call__(self, counts: ArrayLike, empty: str = "nan") -> np.ndarray: ...


def metric_function(metric: str) -> Metric:
    """The function for a metric name in ``METRICS``; fails with the valid names otherwise."""
    one_of("metric", metric, METRICS)
    return _BY_NAME[metric]


def check_counts(name: str, counts: ArrayLike, ndim: int | None = None, shape_hint: str = "(..., 4)"
                 ) -> np.ndarray:
    """``counts`` as an int64 numpy array after checking its kind, shape and signs."""
    array = np.asarray(counts.detach().cpu() if isinstance(counts, torch.Tensor) else counts)
    if not (np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"`{name}` must hold integer counts {shape_hint} (tp, fp, fn, tn), "
                        f"but got dtype {array.dtype}")
    if array.ndim < 1 or array.shape[-1] != 4 or (ndim is not None and array.ndim != ndim):
        raise ValueError(f"`{name}` must have shape {shape_hint} with last axis (tp, fp, fn, tn), "
                         f"but got shape {array.shape}")
    if array.size and array.min() < 0:
        raise ValueError(f"`{name}` must hold counts >= 0, but got minimum {array.min()}")
    return array.astype(np.int64, copy=False)


def _fields(counts: ArrayLike) -> tuple[np.ndarray, ...]:
    array = check_counts("counts", counts)
    return tuple(array[..., k] for k in range(4))


def _empty_value(empty: str) -> float:
    one_of("empty", empty, EMPTY_RULES)
    return np.nan if empty == "nan" else 1.0


def _ratio(numerator: np.ndarray, denominator: np.ndarray, when_zero: float) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, when_zero, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
