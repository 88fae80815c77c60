"""Per-case confusion counts -> Dice, Jaccard, pixel accuracy, under named conventions.

The stored truth of an evaluation is the counts (TP, FP, FN, TN per case and class,
``confusion``/``batch_confusion``, or per region, ``region_confusion``); metrics
(``dice``, ``jaccard``, ``accuracy``) and dataset numbers (``summarize`` under a
convention of ``CONVENTIONS`` and an empty-reference rule of ``EMPTY_RULES``) are
recomputed from them. ``case_rows`` turns one case's counts into rows for the
``cases`` table.
"""

from dragsaw.workloads.metrics.confusion import (
    BRATS_REGIONS,
    COUNT_FIELDS,
    batch_confusion,
    batch_region_confusion,
    confusion,
    region_confusion,
)
from dragsaw.workloads.metrics.scores import (
    EMPTY_RULES,
    METRICS,
    accuracy,
    dice,
    jaccard,
    metric_function,
)
from dragsaw.workloads.metrics.summary import CONVENTIONS, case_rows, summarize

__all__ = [
    "BRATS_REGIONS",
    "CONVENTIONS",
    "COUNT_FIELDS",
    "EMPTY_RULES",
    "METRICS",
    "accuracy",
    "batch_confusion",
    "batch_region_confusion",
    "case_rows",
    "confusion",
    "dice",
    "jaccard",
    "metric_function",
    "region_confusion",
    "summarize",
]
