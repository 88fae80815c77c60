"""Holm's step-down correction for a family of comparisons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(p_values: Sequence[float], family_size: int | None = None) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    With the m p-values of the family sorted ascending p_(1) <= ... <= p_(m), the adjusted
    value of p_(i) is max over j <= i of min(1, (m - j + 1) p_(j)) (Holm 1979).
    family_size: m, the comparisons the family holds (default: the defined p-values given).
    Comparisons of the family without a p-value here (NaN entries, or members not given at
    all when ``family_size`` is larger) count as p = 1: they are in the family whether or
    not they could be tested, so the correction never depends on what happens to be shown.
    NaN entries stay NaN.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"`p_values` must be a flat sequence of floats, but got shape {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"`p_values` must lie in [0, 1] (or be NaN), but got {p.tolist()}")
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size if family_size is None else int(family_size)
    if m < defined.size:
        raise ValueError(f"`family_size` must be >= the {defined.size} p-values given, but got {family_size}")
    order = defined[np.argsort(p[defined], kind="stable")]
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))
        out[index] = running
    return out.tolist()


__all__ = ["holm"]
