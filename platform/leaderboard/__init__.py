"""Leaderboards recomputed from the stored per-case counts: mean, std and n over training
runs (folds x seeds) per experiment, dataset and data fraction; ranks; each variant against
the baseline its spec declares, with a two-level bootstrap over runs and cases (confidence
interval, p-value Holm-adjusted over the spec's family, how many runs agree); rankings across
datasets (mean ranks, Friedman, Nemenyi, Holm-Wilcoxon, critical-difference diagrams); and
the paper's table shapes.

    rows = leaderboard("s3://bucket/dragsaw", experiment="table4")      # the spec's baseline
    print(format_rows(rows, "markdown", legend=True))
    ranking = across_datasets(leaderboard(store))
    print(format_rows(ranking.rows, "table")); draw_cd_diagram(ranking, "cd.svg")
"""

from dragsaw.platform.leaderboard._across import Ranking, across_datasets
from dragsaw.platform.leaderboard._board import leaderboard, rank
from dragsaw.platform.leaderboard._cd_diagram import draw_cd_diagram
from dragsaw.platform.leaderboard._columns import COLUMNS, RANK_COLUMNS, legend
from dragsaw.platform.leaderboard._family import FROM_SPEC
from dragsaw.platform.leaderboard._format import FORMATS, cross_dataset_table, format_rows
from dragsaw.platform.leaderboard._hierarchical import Comparison, two_level_bootstrap
from dragsaw.platform.leaderboard._ranks import (
    critical_difference,
    friedman,
    nemenyi_p,
    nemenyi_q,
    rank_rows,
    wilcoxon,
)
from dragsaw.platform.leaderboard._scores import CONVENTIONS, METRICS
from dragsaw.platform.leaderboard._stats import holm

__all__ = [
    "COLUMNS",
    "CONVENTIONS",
    "Comparison",
    "FORMATS",
    "FROM_SPEC",
    "METRICS",
    "RANK_COLUMNS",
    "Ranking",
    "across_datasets",
    "critical_difference",
    "cross_dataset_table",
    "draw_cd_diagram",
    "format_rows",
    "friedman",
    "holm",
    "leaderboard",
    "legend",
    "nemenyi_p",
    "nemenyi_q",
    "rank",
    "rank_rows",
    "two_level_bootstrap",
    "wilcoxon",
]
