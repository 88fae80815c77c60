"""Ranking variants across datasets (Demsar 2006, "Statistical comparisons of classifiers over
multiple data sets", JMLR 7): per-dataset ranks, mean ranks, the Friedman test with Iman and
Davenport's F, Nemenyi's critical difference, and Wilcoxon signed-rank tests of each variant
against a baseline over datasets, Holm-corrected (Benavoli et al. 2016 recommend these over
the mean-rank post-hoc tests when one method is compared with the others).

Ties: ranks within a dataset are averaged (two variants sharing places 2 and 3 both get 2.5),
as in Demsar's Table 6; the Friedman statistic is computed from the mean ranks without a tie
correction, as there. The Wilcoxon test splits the ranks of zero differences evenly between
the two sums (Demsar, Sec. 3.1.3) and says which p-value it gives: exact (no ties, no zeros),
exact by enumerating all sign flips (ties or zeros, up to ``EXACT_MAX`` datasets), or the
normal approximation with scipy's tie correction.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

#: Decimal places kept in score differences, so float noise never breaks a tie.
DECIMALS = 12
#: Datasets up to which a Wilcoxon test with ties or zeros enumerates all 2^n sign flips.
EXACT_MAX = 60


def rank_rows(scores: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Ranks within each row (a dataset), 1 = best, ties averaged.

    scores: (N datasets, k variants) float64, no NaN. Returns (N, k) float64.
    """
    scores = np.round(np.asarray(scores, np.float64), DECIMALS)
    if scores.ndim != 2 or np.isnan(scores).any():
        raise ValueError(f"`scores` must be a (datasets, variants) array without NaN, but got shape {scores.shape}")
    return stats.rankdata(-scores if higher_is_better else scores, axis=1, method="average")


@dataclass(frozen=True)
class Friedman:
    """chi2: Friedman's statistic; f: Iman-Davenport's F_F; p_value: from F_F with (k-1,
    (k-1)(N-1)) degrees of freedom (Demsar's recommendation), or, when every dataset ranks
    the variants alike (F_F infinite), the exact (k!)^-(N-1); p_chi2: from chi2 with k-1."""

    chi2: float
    f: float
    p_value: float
    p_chi2: float
    n_datasets: int
    k: int


def friedman(mean_ranks: Sequence[float] | np.ndarray, n_datasets: int) -> Friedman:
    """Friedman's test from the mean ranks R_j of k variants over N datasets:
    chi2 = 12N / (k(k+1)) * (sum_j R_j^2 - k(k+1)^2 / 4), F_F = (N-1) chi2 / (N(k-1) - chi2)."""
    r = np.asarray(mean_ranks, np.float64)
    k, n = r.size, int(n_datasets)
    if k < 2 or n < 2:
        raise ValueError(f"Friedman's test needs k >= 2 variants and N >= 2 datasets, but got k={k}, N={n}")
    chi2 = 12 * n / (k * (k + 1)) * (float(np.sum(r ** 2)) - k * (k + 1) ** 2 / 4)
    chi2 = max(chi2, 0.0)
    denominator = n * (k - 1) - chi2
    f = (n - 1) * chi2 / denominator if denominator > 1e-9 else math.inf
    # Every dataset ranks the variants alike: F_F is infinite; the exact p-value is that of N
    # identical rankings by chance, (k!)^-(N-1) (1/2 for two datasets and two variants).
    p = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1))) if math.isfinite(f) else math.factorial(k) ** -(n - 1)
    return Friedman(chi2=chi2, f=f, p_value=p, p_chi2=float(stats.chi2.sf(chi2, k - 1)), n_datasets=n, k=k)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value q_alpha of the Nemenyi test for k variants: the studentized range
    quantile (infinite degrees of freedom) divided by sqrt(2); 2.569 for k = 4, alpha = 0.05."""
    if k < 2 or not 0 < alpha < 1:
        raise ValueError(f"`k >= 2` and `0 < alpha < 1` must hold, but got k={k}, alpha={alpha}")
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def critical_difference(k: int, n_datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi's CD = q_alpha sqrt(k(k+1) / (6N)): two mean ranks that differ by more differ
    significantly at level alpha."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n_datasets))


def nemenyi_p(rank_a: float, rank_b: float, k: int, n_datasets: int) -> float:
    """Nemenyi's p-value for two mean ranks (already adjusted for all k(k-1)/2 pairs)."""
    z = abs(rank_a - rank_b) / math.sqrt(k * (k + 1) / (6 * n_datasets))
    return float(stats.studentized_range.sf(z * math.sqrt(2), k, np.inf))


@dataclass(frozen=True)
class Wilcoxon:
    """statistic: min(R+, R-) with zero differences' ranks split evenly; p_value: two-sided;
    method: "exact" | "exact (all sign flips: ties or zeros)" | "normal approximation
    (tie-corrected)"; n: differences counted (zeros included)."""

    statistic: float
    p_value: float
    method: str
    n: int


def wilcoxon(x: np.ndarray, b: np.ndarray) -> Wilcoxon:
    """Wilcoxon signed-rank test of x against b (paired, e.g. one mean score per dataset).

    Differences are rounded to ``DECIMALS`` places (0.968 - 0.954 and 0.868 - 0.854 are one
    tie). Zeros are kept and their ranks split (``zero_method="zsplit"``). The p-value is
    exact from scipy's table when there are no ties and no zeros, exact by enumerating all
    2^n sign flips when there are (n <= ``EXACT_MAX``), and the tie-corrected normal
    approximation otherwise; ``method`` says which. All differences zero: p = 1.
    """
    d = np.round(np.asarray(x, np.float64) - np.asarray(b, np.float64), DECIMALS)
    d = d[~np.isnan(d)]
    n = int(d.size)
    if n == 0:
        return Wilcoxon(math.nan, math.nan, "none (no pairs)", 0)
    if not np.any(d):
        return Wilcoxon(0.0, 1.0, "exact (every difference is zero)", n)
    magnitudes = np.abs(d)
    ties = np.unique(magnitudes).size < n
    zeros = bool(np.any(d == 0))
    ranks = stats.rankdata(magnitudes)
    plus = float(ranks[d > 0].sum() + ranks[d == 0].sum() / 2)
    statistic = min(plus, float(ranks.sum()) - plus)
    if not ties and not zeros:
        method, p = "exact", _scipy_p(d, "exact")
    elif n <= EXACT_MAX:
        observed = plus - ranks[d == 0].sum() / 2  # the zeros' half ranks are in every flip alike
        method, p = "exact (all sign flips: ties or zeros)", _sign_flip_p(ranks[d != 0], observed)
    else:
        method, p = "normal approximation (tie-corrected)", _scipy_p(d, "asymptotic")
    return Wilcoxon(statistic, float(min(1.0, p)), method, n)


def _scipy_p(d: np.ndarray, method: str) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on ties and small samples: handled by the caller
        result: Any = stats.wilcoxon(d, zero_method="zsplit", method=method)
        return float(result.pvalue)


def _sign_flip_p(ranks: np.ndarray, observed: float) -> float:
    """Two-sided p of the sum of positive ranks ``observed`` over all 2^n sign flips of the
    non-zero differences (zeros' half ranks are the same in every flip and left out), by
    counting subset sums of the doubled (integer) mid-ranks."""
    doubled = np.rint(2 * ranks).astype(np.int64)
    counts = np.zeros(int(doubled.sum()) + 1)
    counts[0] = 1.0
    for r in doubled:  # counts[s] = number of sign patterns whose positive ranks sum to s / 2
        counts[r:] = counts[r:] + counts[: counts.size - r].copy()
    probs = counts / counts.sum()
    at = int(round(2 * observed))
    lower, upper = probs[: at + 1].sum(), probs[at:].sum()
    return 2 * min(lower, upper)


__all__ = ["DECIMALS", "EXACT_MAX", "Friedman", "Wilcoxon", "critical_difference", "friedman", "nemenyi_p",
           "nemenyi_q", "rank_rows", "wilcoxon"]
