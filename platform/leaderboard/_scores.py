"""Per-trial and per-case scores recomputed from the stored confusion counts, in SQL.

The definitions are those of ``dragsaw.workloads.metrics`` (``summarize`` and the scores
module), reimplemented as DuckDB SQL over chunks of whole trials' case rows (streamed by
``ResultStore.scan``, so memory holds one chunk and one value per trial and case, never every
class row: 50M rows take 16 s and 1.5 GiB); tests check equality with ``summarize``:

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

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


@dataclass
class Scores:
    """What a board needs of each selected trial (index ``t`` of the trials table):

    score: (n_trials,) float64, the trial's score under its convention (NaN: undefined or no
    cases); empty: its empty-reference rule as stored ("nan", "one", "nan,one" if mixed; None:
    no cases); cases: t -> (codes, values), the trial's cases (int32 codes into ``case_ids``,
    which are sorted, so code order is case_id order) and its case values (float64, the unit of
    comparisons: the paper2d case value, or for ``foreground`` the mean over foreground
    classes; NaN where undefined)."""

    score: np.ndarray
    empty: list[str | None]
    cases: dict[int, tuple[np.ndarray, np.ndarray]]
    case_ids: list[str]

    def defined(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(codes, values) of trial ``t``'s cases with a defined value (empty arrays: none)."""
        codes, values = self.cases.get(t, (_NO_CODES, _NO_VALUES))
        keep = ~np.isnan(values)
        return (codes, values) if keep.all() else (codes[keep], values[keep])

    def take(self, keep: list[int]) -> Scores:
        """The scores of trials ``keep`` (old indices), renumbered 0..len(keep)-1 in that order."""
        return Scores(self.score[keep], [self.empty[i] for i in keep],
                      {new: self.cases[old] for new, old in enumerate(keep) if old in self.cases}, self.case_ids)


_NO_CODES = np.array([], np.int32)
_NO_VALUES = np.array([], np.float64)


def score_trials(chunks: Iterable[pa.Table], trials: pa.Table, metric: str, convention_of: dict[int, str]) -> Scores:
    """Scores of the selected ``trials`` from their case rows, streamed: each chunk (a pyarrow
    Table of whole trials' rows: experiment, trial_id, attempt, case_id, class_index, tp, fp,
    fn, tn, empty) is reduced in DuckDB to its trials' scores and per-case values and then
    dropped, so memory holds one chunk and one value per (trial, case), never every class row.

    trials: one row per selected trial (experiment, trial_id, attempt); its row number is
    ``t``; only case rows written by that attempt count. convention_of: t -> convention.
    A trial's rows must all be in one chunk (``ResultStore.scan`` never splits a file).
    """
    n = trials.num_rows
    score = np.full(n, np.nan)
    empty: list[str | None] = [None] * n
    codes = _CaseCodes()
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    seen = np.zeros(n, bool)
    con = duckdb.connect()
    try:
        keys = pa.table({"t": pa.array(np.arange(n), pa.int64()), "experiment": trials.column("experiment"),
                         "trial_id": trials.column("trial_id"), "attempt": trials.column("attempt"),
                         "fg": pa.array([convention_of[i] == "foreground" for i in range(n)], pa.bool_())})
        con.register("keys", keys)
        for chunk in chunks:
            if not chunk.num_rows:
                continue
            chunk = chunk.set_column(chunk.schema.get_field_index("case_id"), "case_id",
                                     codes.encode(chunk.column("case_id")))
            con.register("cases", chunk)
            _reduce(con, metric)
            rows = con.execute(_TRIAL_SCORES).fetchnumpy()
            t = np.asarray(rows["t"], np.int64)
            if seen[t].any():
                raise RuntimeError(f"trial rows split across chunks (trial index {int(t[seen[t]][0])}): "
                                   f"a scan must yield whole files")
            seen[t] = True
            score[t] = np.asarray(rows["score"], np.float64)
            for i, e0, e1 in zip(t.tolist(), rows["e0"].tolist(), rows["e1"].tolist()):
                empty[i] = e0 if e0 == e1 else f"{e0},{e1}"
            rows = con.execute("SELECT t, case_id, coalesce(value, 'NaN'::DOUBLE) AS value FROM case_values"
                               ).fetchnumpy()
            found.append((np.asarray(rows["t"], np.int64), np.asarray(rows["case_id"], np.int32),
                          np.asarray(rows["value"], np.float64)))
            con.unregister("cases")
            del chunk, rows
    finally:
        con.close()
    case_ids, rank = codes.sorted()
    cases: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for t, code, value in found:
        order = np.argsort(t, kind="stable")
        t, code, value = t[order], rank[code[order]], value[order]
        bounds = np.flatnonzero(np.diff(t)) + 1
        for a, b in zip(np.concatenate([[0], bounds]).tolist(), np.append(bounds, t.size).tolist()):
            cases[int(t[a])] = (code[a:b], value[a:b])
    return Scores(score, empty, cases, case_ids)


def _reduce(con: duckdb.DuckDBPyConnection, metric: str) -> None:
    """(Re)create the view ``class_values`` (t, fg, case_id, class_index, empty, value) over the
    registered ``cases``: the metric of every case and class its trial's convention averages
    (background dropped for ``foreground``); and the table ``case_values`` (t, fg, case_id,
    value, e0, e1): per case, the mean over those classes (the unit of comparisons)."""
    # class_values is a view (materialising the class rows costs more than scanning them twice);
    # case_values, half as long, serves both the paper2d scores and the paired tests.
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW class_values AS
        SELECT k.t, k.fg, c.case_id, c.class_index, c.empty, {_value_sql(metric)} AS value
        FROM cases c JOIN keys k
          ON c.experiment = k.experiment AND c.trial_id = k.trial_id AND c.attempt = k.attempt
        WHERE NOT (k.fg AND c.class_index = {BACKGROUND})
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE case_values AS
        SELECT t, fg, case_id, {_MEAN.format('value')} AS value, min(empty) AS e0, max(empty) AS e1
        FROM class_values GROUP BY t, fg, case_id
    """)


# Each trial's score under its convention (NaN if any unit is undefined), and its rules.
_TRIAL_SCORES = f"""
    WITH units AS (
        SELECT t, {_MEAN.format('value')} AS value, min(empty) AS e0, max(empty) AS e1
        FROM class_values WHERE fg GROUP BY t, class_index
        UNION ALL
        SELECT t, value, e0, e1 FROM case_values WHERE NOT fg
    )
    SELECT t, CASE WHEN count(value) = count(*) THEN {_MEAN.format('value')} ELSE 'NaN'::DOUBLE END AS score,
           min(e0) AS e0, max(e1) AS e1
    FROM units GROUP BY t
"""


class _CaseCodes:
    """case_id strings -> int32 codes in order of first sight, across chunks; ``sorted`` gives
    the ids in sorted order and each code's rank among them (so that the codes a board uses
    follow case_id order, whatever order the files were read in)."""

    def __init__(self):
        self._known = pa.array([], pa.string())

    def encode(self, column: pa.ChunkedArray) -> pa.Array:
        column = column.combine_chunks().cast(pa.string())
        unique = pc.call_function("unique", [column])
        index = pc.call_function("index_in", [unique], pc.SetLookupOptions(value_set=self._known))
        new = unique.filter(index.is_null())
        if len(new):
            self._known = pa.concat_arrays([self._known, new])
        return pc.call_function("index_in", [column], pc.SetLookupOptions(value_set=self._known)).cast(pa.int32())

    def sorted(self) -> tuple[list[str], np.ndarray]:
        order = np.asarray(pc.call_function("array_sort_indices", [self._known]), np.int64)
        rank = np.empty(order.size, np.int32)
        rank[order] = np.arange(order.size, dtype=np.int32)
        return self._known.take(pa.array(order)).to_pylist(), rank
