"""Variants ranked across datasets (and across experiments that share variants), from
leaderboard rows: per-dataset ranks, mean ranks, Friedman, Nemenyi's critical difference, and
Holm-corrected Wilcoxon tests against the baseline over datasets (see ``_ranks``)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dragsaw.platform.leaderboard._ranks import (
    Friedman,
    critical_difference,
    friedman,
    nemenyi_p,
    rank_rows,
    wilcoxon,
)
from dragsaw.platform.leaderboard._stats import holm


@dataclass
class Ranking:
    """rows: one dict per variant (``RANK_COLUMNS`` plus one ``rank <dataset>`` column per
    dataset), best mean rank first; blocks: the datasets ranked over ("dataset" or
    "experiment/dataset"); mean_ranks: variant -> mean rank; friedman: the test (None with
    fewer than 2 datasets or variants); cd: Nemenyi's critical difference at ``alpha``;
    baseline: the variant the Wilcoxon tests compare with (None: none); notes: what was left
    out and why."""

    rows: list[dict]
    blocks: list[str]
    mean_ranks: dict[str, float]
    friedman: Friedman | None
    cd: float
    alpha: float
    baseline: str | None
    metric: str
    notes: list[str] = field(default_factory=list)


def across_datasets(rows: Sequence[dict], baseline: str | None = None, alpha: float = 0.05) -> Ranking:
    """Rank the variants of ``leaderboard`` rows (one metric) across datasets.

    A dataset (a block) is an (experiment, dataset) pair at its largest data fraction; its
    score for a variant is the row's ``mean`` (over runs). Only variants with a score on
    every block are ranked, and only blocks where all of them have one (what is left out is
    said in ``notes``). baseline: the variant tested against (default: the most common
    ``baseline`` of the rows, i.e. the spec's); alpha: level of the critical difference.
    """
    metrics = {r["metric"] for r in rows}
    if len(metrics) > 1:
        raise ValueError(f"`rows` must hold one metric to rank across datasets, but got {sorted(metrics)}")
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must lie in (0, 1), but got {alpha}")
    several = len({r["experiment"] for r in rows}) > 1
    largest: dict[tuple, float] = {}
    for r in rows:
        key, f = (r["experiment"], r["dataset"]), r.get("fraction")
        largest[key] = max(largest.get(key, -math.inf), -math.inf if f is None else f)
    scores: dict[str, dict[str, float]] = {}
    for r in rows:
        key, f = (r["experiment"], r["dataset"]), r.get("fraction")
        if (-math.inf if f is None else f) != largest[key] or _missing(r["mean"]):
            continue
        block = f"{key[0]}/{key[1]}" if several else key[1]
        scores.setdefault(block, {})[r["variant"]] = float(r["mean"])
    blocks = sorted(scores)
    notes = []
    counts = Counter(v for b in blocks for v in scores[b])
    variants = sorted(v for v, c in counts.items() if c == len(blocks))
    dropped = sorted(set(counts) - set(variants))
    if dropped:
        notes.append(f"not ranked (no score on every dataset): {', '.join(dropped)}")
    if baseline is None:
        bases = Counter(r.get("baseline") for r in rows if r.get("baseline") and r.get("baseline") != r["variant"])
        baseline = bases.most_common(1)[0][0] if bases else None
    metric = next(iter(metrics)) if metrics else "dice"
    if len(variants) < 2 or len(blocks) < 2:
        notes.append(f"a ranking needs >= 2 datasets and >= 2 variants scored on all of them; "
                     f"got {len(blocks)} dataset(s), {len(variants)} variant(s)")
        return Ranking([], blocks, {}, None, math.nan, alpha, None, metric, notes)
    table = np.array([[scores[b][v] for v in variants] for b in blocks])
    ranks = rank_rows(table)
    mean = ranks.mean(axis=0)
    test = friedman(mean, len(blocks))
    k, n = len(variants), len(blocks)
    cd = critical_difference(k, n, alpha)
    if baseline not in variants:
        if baseline is not None:
            notes.append(f"baseline {baseline!r} is not ranked: no Wilcoxon tests")
        baseline = None
    out = []
    for j, v in enumerate(variants):
        row = {"variant": v, "mean_rank": float(mean[j]), "n_datasets": n, "friedman_p": test.p_value, "cd": cd,
               "baseline": baseline, "p_nemenyi": None, "p_wilcoxon": None, "p_holm": None, "wilcoxon": None}
        if baseline is not None and v != baseline:
            b = variants.index(baseline)
            w = wilcoxon(table[:, j], table[:, b])
            row.update(p_nemenyi=nemenyi_p(mean[j], mean[b], k, n), p_wilcoxon=w.p_value, wilcoxon=w.method)
        row.update({f"rank {block}": float(ranks[i, j]) for i, block in enumerate(blocks)})
        out.append(row)
    tested = [r for r in out if r["p_wilcoxon"] is not None]
    for r, p in zip(tested, holm([r["p_wilcoxon"] for r in tested])):
        r["p_holm"] = p
    out.sort(key=lambda r: (r["mean_rank"], r["variant"]))
    return Ranking(out, blocks, {v: float(m) for v, m in zip(variants, mean)}, test, cd, alpha, baseline, metric,
                   notes)


def cliques(mean_ranks: dict[str, float], cd: float) -> list[list[str]]:
    """Maximal groups of variants (in mean-rank order) whose mean ranks all lie within less
    than ``cd`` of each other: the bars of a critical-difference diagram."""
    order = sorted(mean_ranks, key=lambda v: (mean_ranks[v], v))
    out: list[list[str]] = []
    last_end = -1
    for i, v in enumerate(order):
        j = i
        while j + 1 < len(order) and mean_ranks[order[j + 1]] - mean_ranks[v] < cd:
            j += 1
        if j > i and j > last_end:
            out.append(order[i: j + 1])
            last_end = j
    return out


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


__all__ = ["Ranking", "across_datasets", "cliques"]
