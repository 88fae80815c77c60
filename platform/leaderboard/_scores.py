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

For comparisons with a baseline the unit is the case of one run: its value is the paper2d
case value, or for ``foreground`` the mean over its foreground classes ignoring undefined ones.
"""

from __future__ import annotations

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
    case_id, value, e0, e1): per case, the mean over those classes (the unit of comparisons).

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
