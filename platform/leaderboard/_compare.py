"""Each variant of a board against its baseline: runs x cases matrices from the stored case
values, the two-level bootstrap (``_hierarchical``), and Holm's correction over the family
the spec defines (``_family``)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from dragsaw.platform.leaderboard._family import Family
from dragsaw.platform.leaderboard._hierarchical import Comparison, two_level_bootstrap
from dragsaw.platform.leaderboard._stats import holm

#: Keys a compared row gets (None on a baseline's own row and where no test ran).
COMPARISON_KEYS = ("delta", "ci_low", "ci_high", "p_boot", "p_value", "runs_agree", "run_effects",
                   "effect_size", "verdict")


def compare_group(rows: list[dict], by_variant: dict[str, list[int]], family: Family,
                  values: dict[int, tuple[np.ndarray, np.ndarray]], trials: pa.Table, alpha: float) -> None:
    """Fill the comparison keys of one board's rows in place.

    rows: the board's rows (one per variant); by_variant: variant -> trial indices with
    cases; values: trial index -> (case codes, case values); trials: the selected trials
    (fold and seed of each index)."""
    folds = trials.column("fold").to_pylist()
    seeds = trials.column("seed").to_pylist()
    compared: list[tuple[dict, Comparison]] = []
    for r in rows:
        base = family.baseline_of(r["variant"])
        r["baseline"] = base
        r.update(dict.fromkeys(COMPARISON_KEYS))
        if base is None or base == r["variant"]:
            continue
        if base not in by_variant:
            r["verdict"] = f"no test: baseline {base!r} has no completed trials here"
            continue
        x, b, case_fold, paired = matrices(by_variant[r["variant"]], by_variant[base], folds, seeds, values)
        result = two_level_bootstrap(x, b, case_fold, paired)
        r.update(n_runs=result.n_runs, n_cases=result.n_cases, delta=result.delta, ci_low=result.ci_low,
                 ci_high=result.ci_high, p_boot=result.p_value, runs_agree=result.runs_agree,
                 run_effects=[round(e, 6) for e in result.run_effects], effect_size=result.effect_size)
        if result.note is not None:
            r["verdict"] = result.note
        compared.append((r, result))
    # The family is the spec's: comparisons that did not run here still count (as p = 1).
    size = max(family.size(), len(compared))
    adjusted = holm([c.p_value for _, c in compared], family_size=size)
    for (r, c), p in zip(compared, adjusted):
        r["p_value"] = p
        if c.note is None and not math.isnan(p):
            r["verdict"] = ("better" if c.delta > 0 else "worse") if p < alpha else "not significant"


def matrices(variant: list[int], baseline: list[int], folds: list[str], seeds: list[int],
             values: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(x, b, case_fold, paired): x (Rx, C) and b (Rb, C) case values of the variant's and
    the baseline's runs over the C (fold, case) pairs either side has (NaN where a run lacks
    the case); case_fold (C,) the fold code of each column. Runs are paired, and put in the
    same (fold, seed) order, when both sides have exactly the same (fold, seed) runs, once each."""
    keys_x = [(folds[t], seeds[t]) for t in variant]
    keys_b = [(folds[t], seeds[t]) for t in baseline]
    paired = sorted(keys_x) == sorted(keys_b) and len(set(keys_x)) == len(keys_x)
    if paired:
        variant = [t for _, t in sorted(zip(keys_x, variant))]
        baseline = [t for _, t in sorted(zip(keys_b, baseline))]
    fold_codes = {f: i for i, f in enumerate(sorted({folds[t] for t in variant + baseline}))}
    empty = (np.array([], np.int64), np.array([], np.float64))
    width = 1 + max((int(values.get(t, empty)[0].max(initial=-1)) for t in variant + baseline), default=0)
    keys = {t: fold_codes[folds[t]] * width + values.get(t, empty)[0].astype(np.int64) for t in variant + baseline}
    # The (fold, case) pairs either side has, in key order, and each key's column: a bitmap over
    # the key range (linear in the cases, where sorting a million keys is not).
    present = np.zeros(len(fold_codes) * width, bool)
    for k in keys.values():
        present[k] = True
    columns = np.flatnonzero(present)
    position = np.cumsum(present) - 1

    def matrix(members: list[int]) -> np.ndarray:
        out = np.full((len(members), columns.size), np.nan)
        for row, t in enumerate(members):
            out[row, position[keys[t]]] = values.get(t, empty)[1]
        return out

    return matrix(variant), matrix(baseline), columns // max(width, 1), paired


__all__ = ["COMPARISON_KEYS", "compare_group", "matrices"]
