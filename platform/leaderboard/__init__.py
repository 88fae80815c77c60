"""Leaderboards recomputed from the stored per-case counts: mean, std and n over folds and
seeds, ranks, paired tests against a baseline (t-test and Wilcoxon, Holm-corrected), and the
paper's table shapes.

    rows = leaderboard("s3://bucket/dragsaw", experiment="table4", baseline="baseline")
    print(format_rows(rows, "markdown"))
    print(format_rows(cross_dataset_table(rows), "table"))
"""

from dragsaw.platform.leaderboard._board import leaderboard
from dragsaw.platform.leaderboard._format import FORMATS, cross_dataset_table, format_rows
from dragsaw.platform.leaderboard._scores import CONVENTIONS, METRICS
from dragsaw.platform.leaderboard._stats import holm, paired_tests

__all__ = [
    "CONVENTIONS",
    "FORMATS",
    "METRICS",
    "cross_dataset_table",
    "format_rows",
    "holm",
    "leaderboard",
    "paired_tests",
]
