"""``leaderboard``: per (experiment, dataset, data fraction, variant) mean, std and n over
training runs, the rank, and each variant against its baseline with both sources of noise
(runs and cases), recomputed from the stored counts."""

from __future__ import annotations

import difflib
import math
import sys
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from dragsaw.platform.leaderboard._compare import compare_group
from dragsaw.platform.leaderboard._family import (
    FROM_SPEC,
    Family,
    explicit_family,
    spec_axes,
    spec_family,
)
from dragsaw.platform.leaderboard._scores import CONVENTIONS, METRICS, Scores, score_trials
from dragsaw.platform.store import ResultStore
from dragsaw.platform.store._complete import IncompleteTrials, incomplete_trials

_TRIAL_COLUMNS = ["experiment", "dataset", "trial_id", "attempt", "variant", "fold", "seed", "convention",
                  "fraction"]
_CASE_COLUMNS = ["experiment", "trial_id", "attempt", "case_id", "class_index", "tp", "fp", "fn", "tn", "empty"]

#: (experiment, dataset, fraction): the rows of one board; fraction None when not recorded.
GroupKey = tuple[str, str, "float | None"]


def leaderboard(store: ResultStore | str, experiment: str | None = None, dataset: str | None = None,
                metric: str = "dice", convention: str | None = None,
                baseline: str | Mapping[str, str | None] | None = FROM_SPEC,
                variants: list[str] | None = None, alpha: float = 0.05,
                exclude_incomplete: bool = False) -> list[dict]:
    """One row per (experiment, dataset, data fraction, variant) over completed trials (the
    latest completed attempt of each trial_id), recomputed from the ``cases`` counts.

    metric: "dice" | "jaccard" | "accuracy" (higher is better).
    convention: "paper2d" | "foreground"; None takes the convention stored with the trials
    of each (experiment, dataset) (paper2d for 2D datasets, foreground for 3D).
    baseline: "spec" (default): each variant is compared with its baseline as the
    experiment's spec declares it (with axes, ``fcn+pdcr`` with ``fcn+baseline``), and Holm's
    correction runs over the spec's variants; no comparisons when the store keeps no spec
    or the spec names no baseline. A variant name: every variant against that one. A mapping
    variant -> its baseline (None: not compared): those comparisons, the mapping's keys being
    the family. None: no comparisons.
    variants: show only these (and their baselines); the numbers are those of the whole board.
    alpha: level of the ``verdict`` (on the Holm-adjusted p-value).
    exclude_incomplete: leave out completed trials whose cases file is missing or differs from
    what they recorded (naming them on stderr); by default they raise ``IncompleteTrials``.

    Row keys (see ``COLUMNS`` for each one's meaning): experiment, dataset, fraction, rank,
    variant, metric, convention, empty, n, mean, std, n_runs, n_cases; with a baseline also
    baseline, delta, ci_low, ci_high, p_boot, p_value, runs_agree, run_effects,
    effect_size, verdict (None on a baseline's own row). Rows are sorted by experiment,
    dataset, fraction, rank, variant.
    """
    _one_of("metric", metric, METRICS)
    if convention is not None:
        _one_of("convention", convention, CONVENTIONS)
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must lie in (0, 1), but got {alpha}")
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    cases = store.scan("cases", experiment, dataset, columns=_CASE_COLUMNS)  # lists while trials are read
    trials = store.completed_trials(experiment, dataset, columns=_TRIAL_COLUMNS + ["written_json"])
    if trials.num_rows == 0:
        _explain_empty(store, experiment)
        return []
    # Every argument is checked against what is stored before any case row is read.
    families, shown, groups, conventions = _plan(store, trials, baseline, variants, convention)
    convention_of = {i: conventions[key] for key, idx in groups.items() for i in idx}
    scores = score_trials(cases, trials, metric, convention_of)
    trials, scores, excluded = _complete_only(store, trials, cases.sources, scores, exclude_incomplete)
    trials = trials.drop_columns(["written_json"])
    if trials.num_rows == 0:
        return []
    if excluded:
        families, shown, groups, _ = _plan(store, trials, baseline, variants, convention)
    variant_col = trials.column("variant").to_pylist()
    folds = trials.column("fold").to_pylist()
    fold_code = {f: i for i, f in enumerate(sorted(set(folds)))}
    width = len(scores.case_ids)
    boards = []
    for key, idx in sorted(groups.items(), key=lambda kv: _sort_key(kv[0])):
        by_variant: dict[str, list[int]] = defaultdict(list)
        for i in idx:
            if scores.empty[i] is not None:  # trials without case rows have nothing to score
                by_variant[variant_col[i]].append(i)
        rows = _group_rows(key, by_variant, scores.score, scores.empty, metric, conventions[key])
        for r in rows:  # distinct (fold, case) pairs evaluated; a comparison narrows it to its pairs
            seen = np.zeros(len(fold_code) * width, bool)
            for i in by_variant[r["variant"]]:
                if i in scores.cases:
                    seen[fold_code[folds[i]] * width + scores.cases[i][0].astype(np.int64)] = True
            r["n_cases"] = int(seen.sum())
        boards.append((key, by_variant, rows))
    for key, by_variant, rows in boards:
        family = families.get(key[0])
        if family is not None:
            _check_baseline(key, by_variant, family, explicit=isinstance(baseline, str) and baseline != FROM_SPEC)
            values = {i: scores.defined(i) for members in by_variant.values() for i in members}
            compare_group(rows, by_variant, family, values, trials, alpha)
    _axis_columns([row for _, _, rows in boards for row in rows], store, families)
    return [row for _, _, rows in boards
            for row in sorted(rows, key=lambda r: (r["rank"] is None, r["rank"] or 0, r["variant"]))
            if shown is None or row["variant"] in shown]


def _plan(store: ResultStore, trials: pa.Table, baseline, variants, convention):
    """(families, shown variants, groups, convention per group) of the selected trials; raises
    ValueError naming a bad baseline, variant or convention."""
    present = sorted(set(trials.column("variant").to_pylist()))
    families = _families(store, trials, baseline, present)
    shown = _shown_variants(variants, present, families)
    groups = _groups(trials)
    conventions = {key: convention or _stored_convention(store, key, trials, idx) for key, idx in groups.items()}
    return families, shown, groups, conventions


def _complete_only(store: ResultStore, trials: pa.Table, found, scores: Scores, exclude: bool
                   ) -> tuple[pa.Table, Scores, bool]:
    """``trials`` and their ``scores`` after checking each one's cases file (``found``: what the
    scan read) against what it recorded: IncompleteTrials names those that do not match, or
    with ``exclude`` they are left out (named on stderr). Also returns whether any was."""
    bad = incomplete_trials(trials, {"cases": found})
    if not bad:
        return trials, scores, False
    if not exclude:
        raise IncompleteTrials(store.url, bad, hint="; `dragsaw resume` re-runs them, --exclude-incomplete "
                                                    "leaves them out")
    for t in bad:
        print(f"excluded incomplete trial {t['experiment']}/{t['trial_id']} (attempt {t['attempt']}): "
              f"{'; '.join(t['problems'])}", file=sys.stderr)
    drop = {(t["experiment"], t["trial_id"]) for t in bad}
    keep = [i for i, key in enumerate(zip(trials.column("experiment").to_pylist(),
                                          trials.column("trial_id").to_pylist())) if key not in drop]
    return trials.take(pa.array(keep, pa.int64())), scores.take(keep), True


def _families(store, trials: pa.Table, baseline, present: list[str]) -> dict[str, Family | None]:
    """experiment -> the family of comparisons (None: no comparisons there)."""
    experiments = sorted(set(trials.column("experiment").to_pylist()))
    if baseline is None:
        return dict.fromkeys(experiments)
    if isinstance(baseline, Mapping):
        bad = {k: v for k, v in baseline.items() if not isinstance(k, str) or not (v is None or isinstance(v, str))}
        if bad:
            raise ValueError(f"`baseline` as a mapping must map variant names to variant names or None, but got {bad}")
        family = Family({k: v for k, v in baseline.items() if v is not None}, tuple(baseline), "mapping")
        return dict.fromkeys(experiments, family)
    if baseline == FROM_SPEC:
        return {e: spec_family(store, e) for e in experiments}
    if baseline not in present:
        raise ValueError(f"`baseline` {baseline!r} has no completed trials here; {_hint(baseline, present)} "
                         f"(or `spec` for the spec's, `none` for no comparisons)")
    out = {}
    for e in experiments:
        spec = spec_family(store, e)
        names = list(spec.members) if spec is not None else present
        out[e] = explicit_family(baseline, names)
    return out


def _axis_columns(rows: list[dict], store, families: dict[str, Family | None]) -> None:
    """One column per crossed axis of the experiment's spec, after ``variant``, holding the
    variant's label on that axis (``unet+pdcr`` -> ``model.name`` = ``unet``): every grid axis
    is a column of the board, as the variant name joins them."""
    axes_of: dict[str, tuple[str, ...]] = {}
    for e in {r["experiment"] for r in rows}:
        family = families.get(e)
        axes_of[e] = family.axes if family is not None and family.axes else spec_axes(store, e)
    for r in rows:
        axes = axes_of[r["experiment"]]
        if not axes:
            continue
        labels = r["variant"].split("+")
        extra = {(a if a not in r else f"axis {a}"): (labels[k] if k < len(labels) else None)
                 for k, a in enumerate(axes)}
        items = list(r.items())
        at = [k for k, _ in items].index("variant") + 1
        r.clear()
        r.update(items[:at] + list(extra.items()) + items[at:])


def _check_baseline(key, by_variant: dict[str, list[int]], family: Family, explicit: bool) -> None:
    needed = {b for v in by_variant if (b := family.baseline_of(v)) is not None}
    missing = sorted(b for b in needed if b not in by_variant)
    if missing and explicit:
        raise ValueError(f"`baseline` {missing[0]!r} has no completed trials with cases in experiment={key[0]!r}, "
                         f"dataset={key[1]!r}, fraction={key[2]!r}; variants there: {sorted(by_variant)} "
                         f"(choose one, or filter with experiment=/dataset=)")


def _group_rows(key: GroupKey, by_variant: dict[str, list[int]], scores, empty, metric, convention) -> list[dict]:
    experiment, dataset, fraction = key
    rows = []
    for variant, members in by_variant.items():
        values = scores[members]
        rules = sorted({r for i in members for r in empty[i].split(",")})
        rows.append({"experiment": experiment, "dataset": dataset, "fraction": fraction, "rank": None,
                     "variant": variant, "metric": metric, "convention": convention, "empty": ",".join(rules),
                     "n": len(members), "mean": float(np.mean(values)),
                     "std": float(np.std(values, ddof=1)) if len(members) > 1 else math.nan,
                     "n_runs": len(members), "n_cases": None})
    rank(rows)
    return rows


def rank(rows: list[dict]) -> None:
    """Competition ranking by ``mean``, higher is better: tied means share the better rank
    (1, 2, 2, 4); undefined means get None. Fills ``rank`` in place."""
    means = [r["mean"] for r in rows if not math.isnan(r["mean"])]
    for r in rows:
        if not math.isnan(r["mean"]):
            r["rank"] = 1 + sum(m > r["mean"] for m in means)


def _groups(trials: pa.Table) -> dict[GroupKey, list[int]]:
    groups: dict[GroupKey, list[int]] = defaultdict(list)
    keys = zip(trials.column("experiment").to_pylist(), trials.column("dataset").to_pylist(),
               trials.column("fraction").to_pylist())
    for i, key in enumerate(keys):
        groups[key].append(i)
    return dict(groups)


def _sort_key(key: GroupKey) -> tuple:
    return (key[0], key[1], key[2] is None, key[2] or 0.0)


def _shown_variants(variants, present: list[str], families) -> set[str] | None:
    """The variants to show (None: all): those asked for and their baselines. Every variant is
    still compared and corrected for, so that a row's numbers never depend on the filter."""
    if variants is None:
        return None
    for name in variants:
        if name not in present:
            raise ValueError(f"variant {name!r} has no completed trials here; {_hint(name, present)}")
    keep = set(variants)
    for family in families.values():  # each shown variant keeps its baseline
        if family is not None:
            keep |= {family.baseline_of(v) for v in variants} - {None}
    return keep


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
