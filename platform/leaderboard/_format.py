"""Leaderboard rows as text: an aligned table, Markdown, CSV or JSON; and the paper's
Table II shape (variants x datasets, "mean ± std")."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence

from dragsaw.platform.leaderboard._columns import legend as legend_text

FORMATS = ("table", "markdown", "csv", "json")

#: Columns shown as p-values (3 significant digits) rather than scores (4 decimals).
_P_COLUMNS = {"p_value", "p_boot", "p_holm", "p_wilcoxon", "p_nemenyi", "friedman_p"}


def format_rows(rows: Sequence[dict], fmt: str = "table", legend: bool = False) -> str:
    """``rows`` (dicts, e.g. from ``leaderboard``) as "table" (aligned plain text), "markdown",
    "csv" or "json" (a list of the dicts, NaN -> null, also inside lists). Columns are the union
    of the rows' keys in first-seen order; a missing or undefined value shows as "-" (empty in
    CSV); lists (run_effects) as space-separated values. legend: under a table or Markdown,
    what each known column means (``COLUMNS``)."""
    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {list(FORMATS)}, but got {fmt!r}")
    rows = [dict(r) for r in rows]
    if fmt == "json":
        return json.dumps([{k: _json_value(v) for k, v in r.items()} for r in rows], indent=2, allow_nan=False)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    text = _text(rows, columns, fmt)
    if legend and fmt in ("table", "markdown") and rows:
        lines = legend_text(columns).splitlines()
        if fmt == "markdown":
            text += "\n\n" + "\n".join(f"- `{line.split(maxsplit=1)[0]}`: {line.split(maxsplit=1)[1]}"
                                          for line in lines)
        else:
            text += "\n\nColumns:\n" + "\n".join("  " + line for line in lines)
    return text


def _text(rows: list[dict], columns: list[str], fmt: str) -> str:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if _missing(r.get(c)) else _list_text(r.get(c)) for c in columns])
        return out.getvalue()
    cells = [[_cell(c, r.get(c)) for c in columns] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines) if columns else ""
    if not rows:
        return "(no rows)"
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(columns)]
    numeric = [all(_is_number(r.get(c)) or _missing(r.get(c)) for r in rows) for c in columns]
    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells])


def cross_dataset_table(rows: Sequence[dict], digits: int = 4) -> list[dict]:
    """Table II of the paper: one row per variant, one column per dataset, cells
    "mean ± std" (just "mean" when n = 1, "-" when the variant did not run there).

    rows: ``leaderboard`` rows of one metric. Variants keep their first-seen order (the
    best of the first dataset first); when the rows span several experiments each row is
    an (experiment, variant) pair and carries an "experiment" column. Returns dicts that
    ``format_rows`` prints.
    """
    metrics = {r["metric"] for r in rows}
    if len(metrics) > 1:
        raise ValueError(f"`rows` must hold one metric for a cross-dataset table, but got {sorted(metrics)}")
    experiments = list(dict.fromkeys(r["experiment"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    table: dict[tuple, dict] = {}
    for r in rows:
        key = (r["experiment"], r["variant"]) if len(experiments) > 1 else (r["variant"],)
        out = table.setdefault(key, {**({"experiment": r["experiment"]} if len(experiments) > 1 else {}),
                                     "variant": r["variant"], **dict.fromkeys(datasets, "-")})
        out[r["dataset"]] = _mean_std(r["mean"], r["std"], digits)
    return list(table.values())


def _mean_std(mean, std, digits: int) -> str:
    if _missing(mean):
        return "-"
    if _missing(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _list_text(value):
    if isinstance(value, (list, tuple)):
        return " ".join("-" if _missing(v) else (f"{v:+.4f}" if isinstance(v, float) else str(v)) for v in value)
    return value


#: Entries of a list (run_effects) shown in a table or Markdown cell; JSON and CSV keep all.
_LIST_SHOWN = 6


def _cell(column: str, value) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, (list, tuple)):
        if len(value) > _LIST_SHOWN:
            return f"{_list_text(value[:_LIST_SHOWN])} ... ({len(value)})"
        return _list_text(value)
    if isinstance(value, float):
        if column in _P_COLUMNS:
            return "<0.0001" if value < 1e-4 else f"{value:.3g}"
        if column == "fraction" or column.startswith("rank "):
            return f"{value:g}"
        return f"{value:.3f}" if column in ("mean_rank", "cd") else f"{value:.4f}"
    return str(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value
