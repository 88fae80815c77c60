"""The leaderboard's statistics against published worked examples and constructed cases with
known answers: Demsar (2006)'s 14 data sets x 4 C4.5 variants (mean ranks, Friedman chi2 and
F_F, Nemenyi's q and CD, the groups of Fig. 1, the Wilcoxon example of Sec. 3.1.3), Holm's
procedure, exact Wilcoxon p-values of small cases by enumeration, and the two-level bootstrap
(two runs that disagree, many that agree, one run, coverage on simulated data)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from dragsaw.platform.leaderboard import (
    critical_difference,
    friedman,
    holm,
    nemenyi_p,
    nemenyi_q,
    rank_rows,
    two_level_bootstrap,
    wilcoxon,
)
from dragsaw.platform.leaderboard._across import cliques
from dragsaw.platform.leaderboard._hierarchical import run_scale

# Demsar (2006), Table 6: AUC of C4.5, C4.5+m, C4.5+cf, C4.5+m+cf on 14 UCI data sets.
DEMSAR = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.975, 0.975], [0.957, 0.978, 0.946, 0.970],
])
# The mean ranks the paper prints (its ranks come from unrounded AUCs: on "voting" the printed
# 0.975 and 0.975 are ranked 2 and 3, where the rounded table can only tie them at 2.5 each).
DEMSAR_RANKS = [3.143, 2.000, 2.893, 1.964]


def test_demsar_mean_ranks_from_the_table():
    ranks = rank_rows(DEMSAR)
    assert ranks[9].tolist() == [2.5, 2.5, 2.5, 2.5]  # mushroom: a four-way tie shares the mean rank
    assert ranks[5].tolist() == [1.0, 2.5, 4.0, 2.5]  # iris: 0.931 twice
    # As printed for C4.5 and C4.5+m; the last two differ by the voting tie (2.893 + 0.5/14 ...).
    assert ranks.mean(axis=0) == pytest.approx([44 / 14, 28 / 14, 41 / 14, 27 / 14])
    assert ranks.mean(axis=0)[:2] == pytest.approx(DEMSAR_RANKS[:2], abs=5e-4)
    voting = rank_rows(DEMSAR[12:13] + np.array([[0, 0, 1e-4, 0]]))  # the paper's unrounded order
    assert voting.tolist() == [[4.0, 1.0, 2.0, 3.0]]


def test_demsar_friedman_and_iman_davenport():
    test = friedman(DEMSAR_RANKS, 14)
    assert test.chi2 == pytest.approx(9.28, abs=0.005)  # "chi2_F = 9.28"
    assert test.f == pytest.approx(3.69, abs=0.005)  # "F_F = 3.69"
    assert stats.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=0.005)  # "the critical value ... is 2.85"
    assert test.p_value < 0.05 and test.k == 4 and test.n_datasets == 14
    assert test.p_chi2 == pytest.approx(stats.chi2.sf(test.chi2, 3))
    assert friedman([2.0, 2.0, 2.0], 10).chi2 == 0.0 and friedman([2.0, 2.0, 2.0], 10).p_value == 1.0
    # Full agreement of every dataset: F_F infinite, exact p = P(N equal rankings) = (k!)^-(N-1).
    agree = friedman([1.0, 2.0], 2)
    assert agree.chi2 == 2.0 and agree.f == math.inf and agree.p_value == 0.5
    assert friedman([1.0, 2.0, 3.0], 3).p_value == pytest.approx(1 / 36)


@pytest.mark.parametrize("k, alpha, q", [(2, .05, 1.960), (3, .05, 2.343), (4, .05, 2.569), (5, .05, 2.728),
                                         (10, .05, 3.164), (2, .10, 1.645), (4, .10, 2.291), (10, .10, 2.920)])
def test_nemenyi_q_is_demsar_table_5a(k, alpha, q):
    assert nemenyi_q(k, alpha) == pytest.approx(q, abs=1e-3)


def test_demsar_critical_differences_and_groups():
    assert critical_difference(4, 14, 0.05) == pytest.approx(1.25, abs=0.005)  # "CD = 2.569 sqrt(4*5/(6*14)) = 1.25"
    assert critical_difference(4, 14, 0.10) == pytest.approx(1.12, abs=0.005)
    ranks = dict(zip(["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"], DEMSAR_RANKS))
    # alpha 0.05: "the data is not sufficient": best and worst are 1.179 apart, less than 1.25.
    assert cliques(ranks, critical_difference(4, 14, 0.05)) == [["C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"]]
    # alpha 0.10 (Fig. 1a): C4.5 worse than C4.5+m and C4.5+m+cf; C4.5+cf in both groups.
    assert cliques(ranks, critical_difference(4, 14, 0.10)) == [["C4.5+m+cf", "C4.5+m", "C4.5+cf"],
                                                                ["C4.5+cf", "C4.5"]]
    assert nemenyi_p(ranks["C4.5"], ranks["C4.5+m+cf"], 4, 14) < 0.10 < nemenyi_p(ranks["C4.5+cf"],
                                                                                   ranks["C4.5+m+cf"], 4, 14)


def test_demsar_wilcoxon_example():
    """Sec. 3.1.3: C4.5+m against C4.5, zeros split: R+ = 93, R- = 12, T = 12 < 21 (the
    critical value for N = 14 at 0.05)."""
    w = wilcoxon(DEMSAR[:, 1], DEMSAR[:, 0])
    assert w.statistic == 12.0 and w.n == 14
    assert w.method == "exact (all sign flips: ties or zeros)"
    d = np.round(DEMSAR[:, 1] - DEMSAR[:, 0], 12)
    method: Any = stats.PermutationMethod(n_resamples=np.inf)  # type: ignore[arg-type]
    reference: Any = stats.wilcoxon(d, zero_method="zsplit", method=method)
    assert w.p_value == pytest.approx(reference.pvalue) and w.p_value < 0.05


def _enumerated_p(d: list[float]) -> float:
    """Two-sided p of the signed-rank sum by listing every sign pattern (no ties, no zeros)."""
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[np.array(d) > 0].sum()
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(d))]
    return min(1.0, 2 * min(np.mean([s <= observed for s in sums]), np.mean([s >= observed for s in sums])))


@pytest.mark.parametrize("d, p", [([1, 2, 3, 4, 5], 2 / 32), ([1, 2, 3, -4, 5, 6], 14 / 64),
                                  ([-1, 2, 3, 4, 5, 6, 7], 4 / 128)])
def test_wilcoxon_exact_small_cases(d, p):
    w = wilcoxon(np.array(d, float), np.zeros(len(d)))
    assert w.method == "exact" and w.p_value == pytest.approx(p) and w.p_value == pytest.approx(_enumerated_p(d))


def test_wilcoxon_ties_zeros_and_large_n():
    tied = wilcoxon(np.array([1.0, 1.0, 2.0, -3.0, 4.0]), np.zeros(5))
    assert tied.method.startswith("exact (all sign flips")
    # By hand: ranks 1.5, 1.5, 3, 4, 5; R- = 4; sums of positive ranks over the 32 flips.
    ranks = [1.5, 1.5, 3, 4, 5]
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=5)]
    assert tied.p_value == pytest.approx(2 * np.mean([s >= 11 for s in sums]))
    assert wilcoxon(np.array([0.3, 0.3]), np.array([0.3, 0.3])).p_value == 1.0
    big = wilcoxon(np.arange(1, 81) % 7 + 0.5, np.zeros(80))  # ties and n > EXACT_MAX
    assert big.method == "normal approximation (tie-corrected)" and big.p_value < 1e-10
    # Float noise is not a difference: 0.968 - 0.954 and 0.868 - 0.854 tie.
    assert wilcoxon(np.array([0.968, 0.868, 0.5]), np.array([0.954, 0.854, 0.1])).method.startswith("exact (all")


def test_holm_textbook_and_fixed_family():
    # m = 4: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 -> max(0.06, 0.04).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # A family of 3 of which one comparison is shown: still multiplied by 3.
    assert holm([0.01], family_size=3) == pytest.approx([0.03])
    assert holm([0.01, float("nan")], family_size=2)[0] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="family_size"):
        holm([0.01, 0.02], family_size=1)


# --- the two-level bootstrap -----------------------------------------------------------------


def _paired(d: np.ndarray) -> dict:
    """A paired comparison whose differences are ``d`` (runs x cases, one fold)."""
    return dict(x=d, b=np.zeros_like(d), case_fold=np.zeros(d.shape[1], int), paired=True)


def test_two_runs_without_case_noise_give_the_runs_as_interval():
    """Known answer: with every case of a run equal, a replicate draws run 1 twice, both, or
    run 2 twice (p = 1/4, 1/2, 1/4): the mean -/+ half their distance, deviations rescaled
    for two runs by sqrt(2/1) x t_1 / z = 1.414 x 12.706 / 1.960 = 9.168, so the 95% interval
    is mid -/+ 9.17 x half the distance."""
    d = np.array([[0.005] * 16, [-0.049] * 16])
    c = two_level_bootstrap(**_paired(d))
    mid, half, scale = -0.022, 0.027, run_scale(2, 0.95)
    assert scale == pytest.approx(math.sqrt(2) * stats.t.ppf(0.975, 1) / stats.norm.ppf(0.975))
    assert scale == pytest.approx(9.168, abs=1e-3)
    assert c.ci_low == pytest.approx(mid - scale * half) and c.ci_high == pytest.approx(mid + scale * half)
    assert c.delta == pytest.approx(-0.022) and c.runs_agree == "1/2" and c.n_runs == 2 and c.n_cases == 16
    assert c.p_value > 0.3 and c.note is None


def test_one_bad_run_of_two_is_not_significant():
    """The quickstart's observation: better on 12 of 16 cases with seed 0 (+0.005), worse on
    all 16 with seed 1 (-0.049): the interval crosses 0."""
    rng = np.random.default_rng(0)
    seed0 = np.where(np.arange(16) < 12, 0.02, -0.04)
    seed1 = -0.049 + rng.uniform(-0.01, 0.01, 16)
    c = two_level_bootstrap(**_paired(np.stack([seed0, seed1])))
    assert c.ci_low < 0 < c.ci_high and c.p_value > 0.05 and c.runs_agree == "1/2"
    # A test over the 32 (seed, case) pairs as if independent calls it significant: the fault.
    pooled: Any = stats.wilcoxon(np.concatenate([seed0, seed1]))
    assert pooled.pvalue < 0.05


def test_many_consistent_runs_are_significant():
    rng = np.random.default_rng(1)
    d = 0.02 + rng.normal(0, 0.005, (8, 1)) + rng.normal(0, 0.03, (8, 20))
    c = two_level_bootstrap(**_paired(d))
    assert c.ci_low > 0 and c.p_value < 0.01 and c.runs_agree == "8/8"


def test_one_run_is_never_tested():
    c = two_level_bootstrap(**_paired(np.full((1, 30), 0.2)))
    assert c.note is not None and "too few" in c.note
    assert math.isnan(c.p_value) and math.isnan(c.ci_low) and c.delta == pytest.approx(0.2)
    unpaired = two_level_bootstrap(np.full((3, 5), 0.9), np.full((1, 5), 0.1), np.zeros(5, int), paired=False)
    assert math.isnan(unpaired.p_value) and unpaired.note is not None and "3 vs 1 run(s)" in unpaired.note


def test_no_difference_and_unpaired_runs():
    same = two_level_bootstrap(**_paired(np.zeros((3, 4))))
    assert same.p_value == 1.0 and same.ci_low == 0.0 == same.ci_high and same.runs_agree == "3/3"
    x, b = np.array([[0.8, 0.9], [0.7, 0.9]]), np.array([[0.5, 0.6], [0.6, 0.7], [0.5, np.nan]])
    c = two_level_bootstrap(x, b, np.zeros(2, int), paired=False)
    base = np.mean([0.55, 0.65, 0.5])
    assert c.delta == pytest.approx(np.mean([0.85, 0.8]) - base) and not c.paired
    assert c.run_effects == pytest.approx([0.85 - base, 0.8 - base])


def test_cases_are_drawn_within_folds():
    """Two folds with different cases: a run has values only on its fold's cases, and every
    replicate keeps each fold's case count, so fold means never mix."""
    x = np.array([[0.1, 0.1, np.nan, np.nan], [np.nan, np.nan, 0.3, 0.3]])
    c = two_level_bootstrap(x, np.zeros_like(x), np.array([0, 0, 1, 1]), paired=True)
    # Replicates 0.1, 0.2, 0.3 only (as two runs without case noise), deviations rescaled.
    scale = run_scale(2, 0.95)
    assert c.ci_low == pytest.approx(0.2 - scale * 0.1) and c.ci_high == pytest.approx(0.2 + scale * 0.1)
    assert c.n_cases == 4


@pytest.mark.parametrize("runs, cases, sd_run, sd_case", [(8, 20, 0.02, 0.03), (3, 30, 0.02, 0.01)])
def test_coverage_close_to_95_percent(runs, cases, sd_run, sd_case):
    """Runs and cases crossed, with both sources of variance (run effect, case effect shared
    by all runs, noise): the 95% interval holds the true difference in about 95% of 300
    simulated experiments (measured: 0.953 for 8 x 20, 0.96 for 3 x 30; without the run
    rescaling 3 runs gave 0.84, without case resampling 8 x 20 gave far less)."""
    rng = np.random.default_rng(2)
    hits = 0
    for s in range(300):
        d = (0.01 + rng.normal(0, sd_run, (runs, 1)) + rng.normal(0, sd_case, (1, cases))
             + rng.normal(0, 0.02, (runs, cases)))
        c = two_level_bootstrap(**_paired(d), n_boot=1000, seed=s)
        hits += c.ci_low <= 0.01 <= c.ci_high
    assert 0.92 <= hits / 300 <= 0.99


def test_bad_shapes():
    with pytest.raises(ValueError, match="paired design"):
        two_level_bootstrap(np.zeros((2, 3)), np.zeros((3, 3)), np.zeros(3, int), paired=True)
    with pytest.raises(ValueError, match="same cases"):
        two_level_bootstrap(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(3, int), paired=False)


def test_comparisons_over_the_same_cases_share_one_case_draw(monkeypatch):
    """The board's comparisons (every variant against the baseline, over the same folds'
    cases) draw the cases once; kept or drawn again, the numbers are the same."""
    import dragsaw.platform.leaderboard._hierarchical as h

    rng = np.random.default_rng(3)
    fold = np.repeat([0, 1], 40)
    base = rng.uniform(0.5, 0.9, (4, 80))
    variants = [base + rng.normal(shift, 0.05, (4, 80)) for shift in (0.0, 0.02, 0.05)]
    h._kept_case_counts.cache_clear()
    first = [two_level_bootstrap(v, base, fold, paired=True) for v in variants]
    info = h._kept_case_counts.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    h._kept_case_counts.cache_clear()
    assert two_level_bootstrap(variants[2], base, fold, paired=True) == first[2]  # order-independent
    monkeypatch.setattr(h, "_KEEP_CELLS", 0)  # too many cells to keep: drawn each time
    assert [two_level_bootstrap(v, base, fold, paired=True) for v in variants] == first
    assert first[0].p_value > 0.05 and first[2].p_value < 0.01
