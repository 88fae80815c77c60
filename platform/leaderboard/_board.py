"""``leaderboard``: per (experiment, dataset, variant) mean, std and n over folds and seeds,
the rank, and paired tests against a baseline, recomputed from the stored counts."""

from __future__ import annotations

import difflib
import math
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dragsaw.platform.leaderboard._scores import (
    CONVENTIONS,
    METRICS,
    connect,
    paired_values,
    trial_scores,
)
from dragsaw.platform.leaderboard._stats import holm, paired_tests
from dragsaw.platform.store import ResultStore

_TRIAL_COLUMNS = ["experiment", "dataset", "trial_id", "attempt", "variant", "fold", "seed", "convention"]
_CASE_COLUMNS = ["experiment", "trial_id", "attempt", "case_id", "class_index", "tp", "fp", "fn", "tn", "empty"]
_COMPARISON_KEYS = ("p_value", "p_ttest", "p_wilcoxon", "p_wilcoxon_holm", "n_cases", "delta")


def leaderboard(store: ResultStore | str, experiment: str | None = None, dataset: str | None = None,
                metric: str = "dice", convention: str | None = None, baseline: str | None = None,
                variants: list[str] | None = None) -> list[dict]:
    """One row per (experiment, dataset, variant) over completed trials (latest completed
    attempt of each trial_id), recomputed from the ``cases`` counts.

    metric: "dice" | "jaccard" | "accuracy" (higher is better).
    convention: "paper2d" | "foreground"; None takes the convention stored with the trials
    of each (experiment, dataset) (paper2d for 2D datasets, foreground for 3D).
    baseline: a variant; every other variant gets paired tests over the same cases (see
    ``_scores.paired_values``: pairs on fold, seed and case_id; when the two variants' seed
    sets differ, each case is first averaged over its seeds), Holm-corrected across the
    variants of each (experiment, dataset).

    Row keys: experiment, dataset, rank (1 = best; ties share the lower rank; None when the
    mean is undefined), variant, metric, convention, empty (the stored empty-reference rule),
    n (trials = folds x seeds), mean, std (ddof=1; NaN when n = 1); with a baseline also
    baseline, delta (mean paired difference variant - baseline), n_cases, p_value (Holm-corrected
    paired t-test), p_ttest, p_wilcoxon, p_wilcoxon_holm (None on the baseline's own row).
    Rows are sorted by experiment, dataset, rank, variant.
    """
    _one_of("metric", metric, METRICS)
    if convention is not None:
        _one_of("convention", convention, CONVENTIONS)
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    trials = store.completed_trials(experiment, dataset, columns=_TRIAL_COLUMNS)
    if trials.num_rows == 0:
        _explain_empty(store, experiment)
        return []
    trials = _select_variants(trials, variants, baseline)
    groups = _groups(trials)
    conventions = {key: convention or _stored_convention(store, key, trials, idx) for key, idx in groups.items()}
    convention_of = {i: conventions[key] for key, idx in groups.items() for i in idx}
    cases = _case_codes(store.read("cases", experiment, dataset, columns=_CASE_COLUMNS))
    con = connect(trials, cases, metric, convention_of)
    try:
        scores, empty = trial_scores(con, trials.num_rows)
        variant_col = trials.column("variant").to_pylist()
        boards = []
        for key, idx in sorted(groups.items()):
            by_variant: dict[str, list[int]] = defaultdict(list)
            for i in idx:
                if empty[i] is not None:  # trials without case rows have nothing to score
                    by_variant[variant_col[i]].append(i)
            boards.append((key, by_variant, _group_rows(key, by_variant, scores, empty, metric, conventions[key])))
        if baseline is not None:
            _compare(con, trials, boards, baseline)
    finally:
        con.close()
    return [row for _, _, rows in boards
            for row in sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["variant"]))]


def _group_rows(key, by_variant: dict[str, list[int]], scores, empty, metric, convention) -> list[dict]:
    experiment, dataset = key
    rows = []
    for variant, members in by_variant.items():
        values = scores[members]
        rules = sorted({r for i in members for r in empty[i].split(",")})
        rows.append({"experiment": experiment, "dataset": dataset, "rank": None, "variant": variant,
                     "metric": metric, "convention": convention, "empty": ",".join(rules), "n": len(members),
                     "mean": float(np.mean(values)),
                     "std": float(np.std(values, ddof=1)) if len(members) > 1 else math.nan})
    _rank(rows)
    return rows


def _rank(rows: list[dict]) -> None:
    """Competition ranking by mean, higher is better: 1, 2, 2, 4; undefined means get None."""
    means = [r["mean"] for r in rows if not math.isnan(r["mean"])]
    for r in rows:
        if not math.isnan(r["mean"]):
            r["rank"] = 1 + sum(m > r["mean"] for m in means)


def _compare(con, trials: pa.Table, boards: list, baseline: str) -> None:
    """Paired tests of every variant against ``baseline`` within each (experiment, dataset),
    Holm-corrected there; fills the comparison keys of the rows in place."""
    seeds = trials.column("seed").to_pylist()
    comparisons, targets = [], []
    for key, by_variant, rows in boards:
        if baseline not in by_variant:
            raise ValueError(f"`baseline` {baseline!r} has no completed trials with cases in "
                             f"experiment={key[0]!r}, dataset={key[1]!r}; variants there: {sorted(by_variant)} "
                             f"(choose one, or filter with experiment=/dataset=)")
        base = by_variant[baseline]
        for r in rows:
            r["baseline"] = baseline
            r.update(dict.fromkeys(_COMPARISON_KEYS))
            if r["variant"] != baseline:
                members = by_variant[r["variant"]]
                by_seed = {seeds[i] for i in members} == {seeds[i] for i in base}
                comparisons.append((base, members, by_seed))
                targets.append(r)
    for r, (x, b) in zip(targets, paired_values(con, trials, comparisons)):
        r.update(paired_tests(x, b))
    for _, _, rows in boards:
        others = [r for r in rows if r["variant"] != baseline]
        for column, corrected in (("p_ttest", "p_value"), ("p_wilcoxon", "p_wilcoxon_holm")):
            for r, p in zip(others, holm([r[column] for r in others])):
                r[corrected] = p


def _case_codes(cases: pa.Table) -> pa.Table:
    """case_id strings -> int32 codes in sorted string order: SQL groups and joins on a million
    ints are faster than on strings, and sorting by code is sorting by case_id (deterministic)."""
    column = cases.column("case_id")
    unique = pc.unique(column)
    unique = unique.take(pc.sort_indices(unique))
    return cases.set_column(cases.schema.get_field_index("case_id"), "case_id",
                            pc.index_in(column, value_set=unique))


def _groups(trials: pa.Table) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(trials.column("experiment").to_pylist(), trials.column("dataset").to_pylist())):
        groups[key].append(i)
    return dict(groups)


def _select_variants(trials: pa.Table, variants, baseline) -> pa.Table:
    present = sorted(set(trials.column("variant").to_pylist()))
    wanted = list(variants) if variants is not None else None
    for name in (wanted or []) + ([baseline] if baseline is not None else []):
        if name not in present:
            raise ValueError(f"variant {name!r} has no completed trials here; {_hint(name, present)}")
    if wanted is None:
        return trials
    keep = set(wanted) | ({baseline} if baseline is not None else set())
    mask = pa.array([v in keep for v in trials.column("variant").to_pylist()])
    return trials.filter(mask)


def _stored_convention(store, key, trials: pa.Table, idx: list[int]) -> str:
    stored = trials.column("convention").to_pylist()
    found = sorted({stored[i] for i in idx if stored[i] is not None})
    if len(found) == 1:
        return found[0]
    where = f"experiment={key[0]!r}, dataset={key[1]!r} in {store.url}"
    if not found:
        raise ValueError(f"the trials of {where} store no convention; pass convention= one of {list(CONVENTIONS)}")
    raise ValueError(f"the trials of {where} were scored under several conventions {found}; pass convention= "
                     f"one of them")


def _explain_empty(store: ResultStore, experiment: str | None) -> None:
    if experiment is None:
        return
    known = store.experiments()
    if experiment not in known:
        raise ValueError(f"experiment {experiment!r} is not in {store.url}; {_hint(experiment, known)}")


def _one_of(name: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"`{name}` must be one of {list(valid)}, but got {value!r}")


def _hint(name: str, valid: list[str]) -> str:
    if not valid:
        return "there are none"
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    if close:
        return "did you mean " + ", ".join(repr(c) for c in close) + "?"
    return "valid: " + ", ".join(repr(v) for v in valid[:10]) + (", ..." if len(valid) > 10 else "")
