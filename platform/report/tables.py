"""The experiment's numbers laid out like the paper's tables.

Scores come from ``platform.leaderboard`` (recomputed from the stored per-case counts, mean
and std over folds and seeds, each variant against its own baseline by a two-level bootstrap
over runs and cases: ``fcn+pdcr`` against ``fcn+baseline``, ``unet+pdcr`` against
``unet+baseline``). The report asks it once per dataset, data fraction and metric; Holm's
correction runs over all the experiment's comparisons (the spec's family), whatever the table
shows.

Scores are shown in percent like the paper's: ``mean ± std (n)``; the best mean of each
column within a group of variants that share a baseline is bold.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from dragsaw.platform.leaderboard import leaderboard
from dragsaw.platform.report import paper_numbers
from dragsaw.platform.report.collect import Experiment, TrialRow
from dragsaw.platform.report.document import Cell, Table
from dragsaw.platform.store import ResultStore

#: (leaderboard metric, the paper's column name), in the paper's column order (Tables IV-X).
METRICS = (("jaccard", "JA"), ("dice", "DI"), ("accuracy", "AC"))
DASH = "—"


@dataclass
class Board:
    """Leaderboard rows of one dataset (and data fraction, when trials differ by it)."""

    dataset: str
    fraction: float | None
    variants: list[str]
    trials: dict[str, list[TrialRow]]
    rows: dict[str, dict[str, dict]] = field(default_factory=dict)  # metric -> variant -> row
    groups: list[tuple[str | None, list[str]]] = field(default_factory=list)  # (baseline, variants)
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.dataset if self.fraction is None else f"{self.dataset}, {_fraction(self.fraction)} of the training data"

    def row(self, metric: str, variant: str) -> dict | None:
        return self.rows.get(metric, {}).get(variant)


class _Subset(ResultStore):
    """The store seen through a set of trial ids: the leaderboard of one data fraction, so
    that a Board holds one row per variant (the leaderboard returns one per fraction)."""

    def __init__(self, store: ResultStore, trial_ids):
        self.__dict__.update(store.__dict__)
        self._trial_ids = frozenset(trial_ids)

    def completed_trials(self, experiment=None, dataset=None, columns=None) -> pa.Table:
        rows = super().completed_trials(experiment, dataset)
        rows = rows.filter(pa.array([t in self._trial_ids for t in rows.column("trial_id").to_pylist()],
                                    pa.bool_()))
        return rows if columns is None else rows.select(list(columns))


def scoreboards(exp: Experiment) -> list[Board]:
    """One Board per dataset, or per (dataset, data fraction) when its trials differ by fraction."""
    boards = []
    for dataset in exp.datasets():
        trials = [t for t in exp.trials if t.dataset == dataset]
        fractions = sorted({t.fraction for t in trials})
        for fraction in fractions:
            members = [t for t in trials if t.fraction == fraction]
            by_variant: dict[str, list[TrialRow]] = defaultdict(list)
            for t in members:
                by_variant[t.variant].append(t)
            board = Board(dataset, fraction if len(fractions) > 1 else None, exp.ordered(by_variant), dict(by_variant))
            store = exp.store if len(fractions) == 1 else _Subset(exp.store, [t.trial_id for t in members])
            _fill(exp, board, store)
            boards.append(board)
    return boards


def _fill(exp: Experiment, board: Board, store: ResultStore) -> None:
    groups: dict[str | None, list[str]] = {}
    for v in board.variants:
        b = exp.baseline_of(v)
        groups.setdefault(b if b in board.trials else None, []).append(v)
    board.groups = list(groups.items())
    # One leaderboard per metric over every variant: each compared with its own baseline, Holm's
    # family being the experiment's variants (the spec's when it has one), not a group's.
    family = {v: exp.baseline_of(v) for v in exp.ordered(set(exp.variant_order) | set(board.variants))}
    for metric, _ in METRICS:
        board.rows[metric] = {r["variant"]: r for r in _rows(exp, board, store, metric, family)}


def _rows(exp, board, store, metric, family) -> list[dict]:
    args = {"experiment": exp.name, "dataset": board.dataset, "metric": metric}
    try:
        return leaderboard(store, baseline=family if family and any(family.values()) else None, **args)
    except ValueError as err:
        if family is None:
            board.notes.append(f"{metric}: no scores: {err}")
            return []
        board.notes.append(f"{metric}: no comparisons with the baseline: {err}")
        return _rows(exp, board, store, metric, None)


# --- tables ---------------------------------------------------------------------------------


def results_table(exp: Experiment, board: Board) -> Table:
    """Rows = variants; JA / DI / AC as mean ± std (n) in percent; the paper's numbers beside
    them where dataset and protocol are the paper's; the Holm-corrected paired t-test of DI."""
    columns = ["Variant"] + [f"{abbr} (%)" for _, abbr in METRICS] + [f"Paper {abbr}" for _, abbr in METRICS]
    columns += ["Paper source", "p DI vs baseline (bootstrap, Holm)"]
    rows, notes = [], list(board.notes)
    paper, withheld = _paper_rows(exp, board)
    by_reasons: dict[tuple, list[str]] = defaultdict(list)
    for variant, reasons in withheld.items():
        by_reasons[tuple(reasons)].append(variant)
    notes += [f"paper numbers not shown for {', '.join(vs)}: " + "; ".join(r) for r, vs in by_reasons.items()]
    for baseline, variants in board.groups:
        best = {m: _best([_mean(board.row(m, v)) for v in variants]) for m, _ in METRICS}
        best_paper = {m: _best([paper[v].score(m) if v in paper else None for v in variants]) for m, _ in METRICS}
        for v in variants:
            cells = [Cell(v)]
            for m, _ in METRICS:
                r = board.row(m, v)
                cells.append(Cell(mean_std_n(r), bold=_is(best[m], _mean(r))))
            for m, _ in METRICS:
                value = paper[v].score(m) if v in paper else None
                cells.append(Cell(DASH if value is None else f"{value:.2f}", bold=_is(best_paper[m], value)))
            cells.append(Cell(_source(paper[v]) if v in paper else DASH))
            r = board.row("dice", v)
            cells.append(Cell(p_text(r.get("p_value")) if r and r.get("baseline") and v != baseline else DASH))
            rows.append(cells)
    caption = f"Results on {board.title}"
    if any(b for b, _ in board.groups):
        caption += " (best mean of each column per baseline group in bold)"
    return Table(columns, rows, caption, notes)


def paired_table(board: Board) -> Table | None:
    """Each variant against its baseline, per metric, over training runs and held-out cases:
    the mean difference in percentage points with its 95% interval (two-level bootstrap over
    runs and cases) and the Holm-adjusted p-value; for DI also how many runs agree in sign and
    the verdict (one run per variant is never tested)."""
    columns = ["Variant", "vs", "runs", "cases"]
    for _, abbr in METRICS:
        columns += [f"Δ{abbr} (pp) [95% CI]", f"p {abbr}"]
    columns += ["DI: runs agree", "DI: verdict"]
    rows = []
    for baseline, variants in board.groups:
        for v in variants:
            if baseline is None or v == baseline or not board.row("dice", v):
                continue
            d = board.row("dice", v) or {}
            cells = [Cell(v), Cell(baseline), Cell(_count(d.get("n_runs"))), Cell(_count(d.get("n_cases")))]
            for m, _ in METRICS:
                r = board.row(m, v) or {}
                cells += [Cell(delta_ci(r)), Cell(p_text(r.get("p_value")))]
            cells += [Cell(d.get("runs_agree") or DASH), Cell(d.get("verdict") or DASH)]
            rows.append(cells)
    if not rows:
        return None
    note = ("Δ: variant − baseline, the mean over training runs (fold × seed) of the mean difference over the same "
            "held-out cases, in percentage points; [95% CI]: two-level bootstrap (runs, then cases within each "
            "fold, the same cases for every run), widened for few runs (t with runs − 1 degrees of freedom); "
            "p: the bootstrap's two-sided p-value, Holm-adjusted over all the experiment's comparisons with a "
            "baseline; runs agree: runs whose own difference has the sign of Δ; verdict at p < 0.05")
    return Table(columns, rows, f"Paired tests against the baseline on {board.title}", [note])


def delta_ci(row: dict | None) -> str:
    """``+1.23 [-0.40, +2.86]`` in percentage points; without an interval just the difference."""
    if not row or _missing(row.get("delta")):
        return DASH
    text = f"{100 * row['delta']:+.2f}"
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None or _missing(low) or _missing(high):
        return text
    return f"{text} [{100 * low:+.2f}, {100 * high:+.2f}]"


def _count(value) -> str:
    return DASH if value is None else str(value)


def cross_dataset_table(exp: Experiment, boards: list[Board]) -> Table | None:
    """The shape of Table II: rows = variants, columns = datasets x (DI, JA, AC), cells
    mean ± std in percent; the paper's Table II rows (its baseline architecture and "Ours")
    below ours where the protocol is the paper's. None with fewer than two datasets."""
    by_dataset: dict[str, Board] = {}
    for b in boards:  # the largest data fraction of each dataset
        if b.dataset not in by_dataset or (b.fraction or 1) >= (by_dataset[b.dataset].fraction or 1):
            by_dataset[b.dataset] = b
    if len(by_dataset) < 2:
        return None
    order = [("dice", "DI"), ("jaccard", "JA"), ("accuracy", "AC")]  # Table II's order
    columns = ["Variant"] + [f"{d} {abbr}" for d in by_dataset for _, abbr in order]
    variants = exp.ordered({v for b in by_dataset.values() for v in b.variants})
    best = {(d, m): _best([_mean(b.row(m, v)) for v in variants]) for d, b in by_dataset.items() for m, _ in order}
    rows = []
    for v in variants:
        cells = [Cell(v)]
        for d, b in by_dataset.items():
            for m, _ in order:
                r = b.row(m, v)
                cells.append(Cell(mean_std(r), bold=_is(best[(d, m)], _mean(r))))
        rows.append(cells)
    notes = []
    for which, label in ((0, "paper: baseline architecture (Table II)"), (1, "paper: ours (Table II)")):
        cells, any_value = [Cell(label)], False
        for d, b in by_dataset.items():
            name = b.trials[b.variants[0]][0].data_name if b.variants else d
            problems = paper_numbers.protocol_problems([t.config for ts in b.trials.values() for t in ts],
                                                       exp.synthetic(d))
            row = paper_numbers.baseline_and_ours(name)[which]
            for m, _ in order:
                value = None if problems or row is None else row.score(m)
                any_value |= value is not None
                cells.append(Cell(DASH if value is None else f"{value:.2f}"))
            if problems and which == 0 and any(paper_numbers.baseline_and_ours(name)):
                notes.append(f"paper numbers not shown for {d}: " + "; ".join(problems))
        rows.append(cells)
    return Table(columns, rows, "Across datasets (the shape of Table II; ours: best mean per column in bold)", notes)


# --- the paper's rows ------------------------------------------------------------------------


def _paper_rows(exp: Experiment, board: Board) -> tuple[dict, dict]:
    """variant -> PaperRow where the paper has the row and the protocol is the paper's;
    variant -> reasons where it has the row but our protocol differs."""
    shown, withheld = {}, {}
    synthetic = exp.synthetic(board.dataset)
    for v in board.variants:
        members = board.trials[v]
        row = paper_numbers.lookup(members[0].data_name, v, members[0].model)
        if row is None:
            continue
        problems = paper_numbers.protocol_problems([t.config for t in members], synthetic)
        if problems:
            withheld[v] = problems
        else:
            shown[v] = row
    return shown, withheld


def _source(row: paper_numbers.PaperRow) -> str:
    extra = ", ".join(f"{k} {v:.2f}" for k, v in row.per_class.items())
    return row.source + (f" ({extra})" if extra else "")


# --- formatting ------------------------------------------------------------------------------


def mean_std_n(row: dict | None) -> str:
    """``88.94 ± 0.31 (5)`` in percent; ``88.94 (1)`` for one trial; "—" when undefined."""
    if not row or _missing(row.get("mean")):
        return DASH
    return f"{mean_std(row)} ({row['n']})"


def mean_std(row: dict | None) -> str:
    if not row or _missing(row.get("mean")):
        return DASH
    text = f"{100 * row['mean']:.2f}"
    return text if _missing(row.get("std")) else f"{text} ± {100 * row['std']:.2f}"


def p_text(p: float | None) -> str:
    if p is None or _missing(p):
        return DASH
    return "<0.0001" if p < 1e-4 else f"{p:.3g}"


def _fraction(f: float) -> str:
    return f"{100 * f:g}%"


def _mean(row: dict | None) -> float | None:
    return None if not row or _missing(row.get("mean")) else row["mean"]


def _best(values) -> float | None:
    defined = [v for v in values if v is not None]
    return max(defined) if len(defined) > 1 else None  # nothing to pick out of one value


def _is(best: float | None, value: float | None) -> bool:
    return best is not None and value is not None and value == best


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


__all__ = [
    "METRICS",
    "Board",
    "cross_dataset_table",
    "delta_ci",
    "mean_std",
    "mean_std_n",
    "p_text",
    "paired_table",
    "results_table",
    "scoreboards",
]
