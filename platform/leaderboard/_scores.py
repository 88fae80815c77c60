"""Per-trial and per-case scores recomputed from the stored confusion counts, in SQL.

The definitions are those of ``dragsaw.workloads.metrics`` (``summarize`` and the scores
module), reimplemented as DuckDB SQL over the Arrow tables so that a million case rows
take about a tenth of a second; tests check equality with ``summarize``:

- value of one case and class: dice = 2TP / (2TP+FP+FN), jaccard = TP / (TP+FP+FN),
  accuracy = (TP+TN) / (TP+FP+FN+TN); when the denominator is 0 the stored ``empty`` rule
  decides dice/jaccard ("nan": undefined -> SQL NULL, "one": 1.0); accuracy is then NULL.
- ``paper2d``: per case, mean over ALL classes ignoring undefined ones; per trial, the mean
  of those case values (undefined if any case is undefined, as ``np.mean`` of NaN).
- ``foreground``: class 0 (background) dropped; per class, mean over cases ignoring
  undefined ones; per trial, the mean of the class means (undefined if any class is).

For paired tests the unit is the case: its value is the paper2d case value, or for
``foreground`` the mean over its foreground classes ignoring undefined ones.
"""

from __future__ import annotations

from itertools import pairwise

import duckdb
import numpy as np
import pyarrow as pa

METRICS = ("dice", "jaccard", "accuracy")
CONVENTIONS = ("paper2d", "foreground")
BACKGROUND = 0

_VALUE = {
    "dice": ("2.0 * tp", "2 * tp + fp + fn", True),
    "jaccard": ("1.0 * tp", "tp + fp + fn", True),
    "accuracy": ("1.0 * (tp + tn)", "tp + fp + fn + tn", False),
}


# Mean of the non-NULL values (NULL if none) with compensated summation: plain avg() depends
# on row order in the last bits, and a compacted store or another backend reorders rows.
_MEAN = "CASE WHEN count({0}) > 0 THEN fsum({0}) / count({0}) END"


def _value_sql(metric: str) -> str:
    num, den, empty_rule = _VALUE[metric]
    when_empty = "CASE WHEN empty = 'one' THEN 1.0 ELSE NULL END" if empty_rule else "NULL"
    return f"CASE WHEN {den} > 0 THEN {num} / ({den}) ELSE {when_empty} END"


def connect(trials: pa.Table, cases: pa.Table, metric: str, convention_of: dict[int, str]
            ) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the view ``class_values`` (trial index ``t``, fg, case_id,
    class_index, empty, value): the metric of every case and class the trial's convention
    averages (background dropped for ``foreground``), and the table ``case_values`` (t, fg,
    case_id, value, e0, e1): per case, the mean over those classes (the unit of paired tests).

    trials: one row per selected trial (experiment, trial_id, attempt ...), its row number is
    ``t``; only case rows written by that attempt count.
    cases: experiment, trial_id, attempt, case_id, class_index, tp, fp, fn, tn, empty.
    convention_of: trial index -> convention of that trial.
    """
    con = duckdb.connect()
    keys = pa.table({"t": pa.array(np.arange(trials.num_rows), pa.int64()),
                     "experiment": trials.column("experiment"), "trial_id": trials.column("trial_id"),
                     "attempt": trials.column("attempt"),
                     "fg": pa.array([convention_of[i] == "foreground" for i in range(trials.num_rows)])})
    con.register("keys", keys)
    con.register("cases", cases)
    # class_values is a view (materialising a million rows costs more than scanning them
    # twice); case_values, half as long, serves both the paper2d scores and the paired tests.
    con.execute(f"""
        CREATE VIEW class_values AS
        SELECT k.t, k.fg, c.case_id, c.class_index, c.empty, {_value_sql(metric)} AS value
        FROM cases c JOIN keys k
          ON c.experiment = k.experiment AND c.trial_id = k.trial_id AND c.attempt = k.attempt
        WHERE NOT (k.fg AND c.class_index = {BACKGROUND})
    """)
    con.execute(f"""
        CREATE TEMP TABLE case_values AS
        SELECT t, fg, case_id, {_MEAN.format('value')} AS value, min(empty) AS e0, max(empty) AS e1
        FROM class_values GROUP BY t, fg, case_id
    """)
    return con


def trial_scores(con: duckdb.DuckDBPyConnection, n_trials: int) -> tuple[np.ndarray, list[str | None]]:
    """Each trial's score under its convention, (n_trials,) float64 (NaN: undefined or no
    cases), and its empty-reference rule as stored ("nan", "one", "nan,one" if mixed; None:
    no cases)."""
    rows = con.execute(f"""
        WITH units AS (
            SELECT t, {_MEAN.format('value')} AS value, min(empty) AS e0, max(empty) AS e1
            FROM class_values WHERE fg GROUP BY t, class_index
            UNION ALL
            SELECT t, value, e0, e1 FROM case_values WHERE NOT fg
        )
        SELECT t, CASE WHEN count(value) = count(*) THEN {_MEAN.format('value')} ELSE 'NaN'::DOUBLE END AS score,
               min(e0) AS e0, max(e1) AS e1
        FROM units GROUP BY t
    """).fetchnumpy()
    index = np.asarray(rows["t"], dtype=np.int64)
    out = np.full(n_trials, np.nan)
    out[index] = np.asarray(rows["score"], dtype=np.float64)
    empty: list[str | None] = [None] * n_trials
    for t, e0, e1 in zip(index.tolist(), rows["e0"].tolist(), rows["e1"].tolist()):
        empty[t] = e0 if e0 == e1 else f"{e0},{e1}"
    return out, empty


def paired_values(con: duckdb.DuckDBPyConnection, trials: pa.Table,
                  comparisons: list[tuple[list[int], list[int], bool]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Paired per-case values for each comparison (baseline trials, other trials, by_seed), all
    in one query: pairs on (fold, seed, case_id), or, with ``by_seed=False``, on (fold, case_id)
    after averaging each case over seeds; cases undefined on either side are dropped.
    Returns one (other, baseline) pair of float64 arrays per comparison, in a fixed order."""
    cols: dict[str, list] = {"c": [], "t": [], "side": [], "by_seed": []}
    for c, (base, other, by_seed) in enumerate(comparisons):
        for side, members in ((0, base), (1, other)):
            cols["c"] += [c] * len(members)
            cols["t"] += list(members)
            cols["side"] += [side] * len(members)
            cols["by_seed"] += [by_seed] * len(members)
    con.register("sides", pa.table({"c": pa.array(cols["c"], pa.int64()), "t": pa.array(cols["t"], pa.int64()),
                                    "side": pa.array(cols["side"], pa.int8()),
                                    "by_seed": pa.array(cols["by_seed"], pa.bool_())}))
    con.register("meta", pa.table({"t": pa.array(np.arange(trials.num_rows), pa.int64()),
                                   "fold": trials.column("fold"), "seed": trials.column("seed")}))
    rows = con.execute(f"""
        WITH v AS (
            SELECT s.c, s.side, m.fold, CASE WHEN s.by_seed THEN m.seed ELSE 0 END AS seed, v.case_id,
                   {_MEAN.format('v.value')} AS value
            FROM case_values v JOIN sides s USING (t) JOIN meta m USING (t)
            WHERE v.value IS NOT NULL
            GROUP BY ALL
        )
        SELECT x.c, x.value AS x, b.value AS b
        FROM v x JOIN v b ON x.c = b.c AND x.fold = b.fold AND x.seed = b.seed AND x.case_id = b.case_id
        WHERE x.side = 1 AND b.side = 0
        ORDER BY x.c, x.fold, x.seed, x.case_id
    """).fetchnumpy()
    c = np.asarray(rows["c"], dtype=np.int64)
    x, b = np.asarray(rows["x"], dtype=np.float64), np.asarray(rows["b"], dtype=np.float64)
    bounds = np.searchsorted(c, np.arange(len(comparisons) + 1))
    return [(x[lo:hi], b[lo:hi]) for lo, hi in pairwise(bounds.tolist())]
