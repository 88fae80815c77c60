"""Dataset-level numbers from per-case counts, and per-case rows for the result store.

Averaging conventions (the names are result-table columns):

- ``paper2d``: the paper's 2D numbers. Per case, the metric averaged over ALL classes,
  background included; then the plain mean of those per-case values over cases. Classes
  whose score is undefined in a case (``empty="nan"``, absent from prediction and
  reference) are left out of that case's class mean; every case has at least one class
  present in its reference, so its mean is defined.
- ``foreground``: nnU-Net's. Per class, background (index ``background``) excluded, the
  mean over cases, ignoring NaN (undefined, ``empty="nan"``) cases; then, unless
  ``per_class``, the plain mean of those class means (NaN if some class was undefined
  in every case, as in nnU-Net's "foreground_mean").

With ``empty="one"`` nothing is undefined, and both conventions average every value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike

from dragsaw.workloads._checks import one_of
from dragsaw.workloads.metrics.scores import (
    EMPTY_RULES,
    accuracy,
    check_counts,
    dice,
    jaccard,
    metric_function,
)

#: Names of the averaging conventions (see the module doc).
CONVENTIONS = ("paper2d", "foreground")


@overload
def summarize(per_case_counts: ArrayLike, convention: str, metric: str, empty: str = ..., *,
              background: int | None = ..., per_class: Literal[False] = ...) -> float: ...
@overload
def summarize(per_case_counts: ArrayLike, convention: str, metric: str, empty: str = ..., *,
              background: int | None = ..., per_class: Literal[True]) -> np.ndarray: ...
@overload
def summarize(per_case_counts: ArrayLike, convention: str, metric: str, empty: str = ..., *,
              background: int | None = ..., per_class: bool) -> float | np.ndarray: ...
def summarize(per_case_counts: ArrayLike, convention: str, metric: str, empty: str = "nan", *,
              background: int | None = 0, per_class: bool = False) -> float | np.ndarray:
    """One dataset-level number (or one per class) from per-case counts.

    per_case_counts: (B, M, 4) int counts of B cases (``batch_confusion`` or stacked
    ``confusion``); all rows of a case must sum to the same pixel count.
    convention: one of ``CONVENTIONS``; metric: one of ``METRICS``; empty: one of
    ``EMPTY_RULES``.
    background: the class index ``foreground`` leaves out; None keeps every row (region
    counts such as BraTS WT/TC/ET have no background row). ``paper2d`` ignores it.
    per_class: False -> a float. True -> float64 per-class means over cases (NaN-ignoring):
    (M,) for ``paper2d`` (background included; their mean differs from the scalar when
    values are NaN), (M - 1,) or (M,) for ``foreground``.
    """
    one_of("convention", convention, CONVENTIONS)
    score = metric_function(metric)
    one_of("empty", empty, EMPTY_RULES)
    counts = check_counts("per_case_counts", per_case_counts, ndim=3, shape_hint="(B, M, 4)")
    cases, classes = counts.shape[:2]
    if cases == 0 or classes == 0:
        raise ValueError(f"`per_case_counts` must hold at least one case and one class, but got shape "
                         f"{counts.shape}")
    totals = counts.sum(axis=-1)
    uneven = np.flatnonzero((totals != totals[:, :1]).any(axis=1))
    if uneven.size:
        raise ValueError(f"every row of a case in `per_case_counts` must sum to its pixel count, but "
                         f"case {uneven[0]} has row sums {totals[uneven[0]].tolist()}")
    values = score(counts, empty=empty)  # (B, M)
    if convention == "paper2d":
        if per_class:
            return _nanmean(values, axis=0)
        return float(np.mean(_nanmean(values, axis=1)))
    if background is not None:
        if isinstance(background, bool) or not isinstance(background, (int, np.integer)) \
                or not 0 <= background < classes:
            raise ValueError(f"`background` must be None or a class index in [0, {classes - 1}], "
                             f"but got {background!r}")
        if classes < 2:
            raise ValueError("`per_case_counts` must have a foreground class besides "
                             f"background={background} for convention 'foreground', but got shape "
                             f"{counts.shape}")
        values = np.delete(values, background, axis=1)
    class_means = _nanmean(values, axis=0)
    return class_means if per_class else float(np.mean(class_means))


def case_rows(case_id: str, counts: ArrayLike, class_names: Sequence[str], empty: str = "nan") -> list[dict]:
    """One plain dict per class (or region) of one case, for the ``cases`` table.

    counts: (M, 4) int counts of the case (``confusion`` or ``region_confusion``);
    class_names: M names, in row order. Each row has case_id, class_index, class_name,
    tp, fp, fn, tn (int), dice, jaccard, accuracy (float, NaN when undefined under
    ``empty``) and empty (the rule used), so any convention can be recomputed.
    """
    counts = check_counts("counts", counts, ndim=2, shape_hint="(M, 4)")
    names = list(class_names) if not isinstance(class_names, str) else None
    if names is None or len(names) != counts.shape[0] or not all(isinstance(n, str) for n in names):
        raise ValueError(f"`class_names` must be {counts.shape[0]} str names (one per row of `counts`), "
                         f"but got {class_names!r}")
    scores = {"dice": dice(counts, empty), "jaccard": jaccard(counts, empty),
              "accuracy": accuracy(counts, empty)}
    rows = []
    for index, name in enumerate(names):
        tp, fp, fn, tn = (int(v) for v in counts[index])
        row = {"case_id": case_id, "class_index": index, "class_name": name,
               "tp": tp, "fp": fp, "fn": fn, "tn": tn}
        row.update({metric: float(values[index]) for metric, values in scores.items()})
        row["empty"] = empty
        rows.append(row)
    return rows


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (without numpy's warning) where every value is NaN."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0.0).sum(axis=axis)
    n = valid.sum(axis=axis)
    out = np.full(total.shape, np.nan)
    np.divide(total, n, out=out, where=n > 0)
    return out
