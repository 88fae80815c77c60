"""What every leaderboard column means: one text, shown as the legend under table and Markdown
output, in ``dragsaw leaderboard --help`` and in the README."""

from __future__ import annotations

from collections.abc import Iterable

#: Column -> meaning, for ``leaderboard`` rows.
COLUMNS: dict[str, str] = {
    "experiment": "the spec's name",
    "dataset": "the dataset key, as named in the spec",
    "fraction": "share of the training data used (a grid axis: rows never pool fractions); - when not recorded",
    "rank": "1 = best mean on this board (experiment, dataset, fraction); tied means share the better rank",
    "variant": "the variant (crossed axes joined by '+'; each axis of the spec also gets a column of its own, "
               "named by its key, e.g. model.name)",
    "metric": "the per-case score ranked and compared (dice, jaccard or accuracy)",
    "convention": "which classes are averaged: paper2d (all, background too) or foreground (nnU-Net)",
    "empty": "how a case with an empty reference and prediction was scored: nan (left out) or one (scored 1)",
    "n": "completed trials with a defined score (runs: folds x seeds), the n of mean and std",
    "mean": "mean over those runs of each run's score",
    "std": "standard deviation over runs (ddof=1); - with one run",
    "n_runs": "training runs (fold x seed) in the comparison with the baseline (matched pairs when both "
              "have the same folds and seeds)",
    "n_cases": "distinct test cases (fold x case) the variant was evaluated on; in a comparison, those "
               "defined on both sides",
    "baseline": "the variant compared with (the spec's `baseline`, or --baseline)",
    "delta": "variant - baseline: mean over runs of the mean paired difference over cases",
    "ci_low": "lower end of the 95% confidence interval of delta (two-level bootstrap: runs, then cases "
              "within folds; not adjusted for multiplicity)",
    "ci_high": "upper end of that interval",
    "p_boot": "two-sided bootstrap p-value of delta = 0 (same bootstrap), unadjusted",
    "p_value": "p_boot Holm-adjusted over the spec's family (all its variants against their baselines)",
    "runs_agree": "runs whose own difference has the sign of delta, e.g. 1/2",
    "run_effects": "each run's mean difference, in (fold, seed) order",
    "effect_size": "delta / standard deviation of the per-case differences",
    "verdict": "better / worse (p_value < alpha) / not significant, or why there is no test "
               "(e.g. too few runs: a single run per variant is never called significant)",
}

#: Column -> meaning, for ``across_datasets`` rows.
RANK_COLUMNS: dict[str, str] = {
    "variant": "the variant",
    "mean_rank": "mean over datasets of its rank there (1 = best; ties averaged, as in Demsar 2006)",
    "n_datasets": "datasets (experiment x dataset, the largest data fraction of each) where every ranked "
                  "variant has a score",
    "friedman_p": "Friedman test that all variants rank alike (Iman-Davenport F, no tie correction)",
    "cd": "Nemenyi critical difference at alpha: mean ranks further apart differ significantly",
    "p_nemenyi": "Nemenyi p-value of this variant against the baseline (all-pairs adjusted)",
    "p_wilcoxon": "Wilcoxon signed-rank test against the baseline over datasets (mean scores), unadjusted",
    "p_holm": "p_wilcoxon Holm-adjusted over the variants compared with the baseline",
    "wilcoxon": "how p_wilcoxon was computed: exact, exact over all sign flips (ties or zeros), or the normal "
                "approximation",
}


def legend(columns: Iterable[str], meanings: dict[str, str] | None = None) -> str:
    """One line per column that has a meaning: ``column: meaning``."""
    meanings = {**COLUMNS, **RANK_COLUMNS} if meanings is None else meanings
    shown = [c for c in dict.fromkeys(columns) if c in meanings]
    width = max((len(c) for c in shown), default=0)
    return "\n".join(f"{c.ljust(width)}  {meanings[c]}" for c in shown)


__all__ = ["COLUMNS", "RANK_COLUMNS", "legend"]
