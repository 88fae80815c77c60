"""The three result tables: fixed pyarrow schemas, and the checks that turn what a
trial hands back (a trial dict, per-epoch metric dicts, per-case rows) into them.

Every file of every table carries its schema version twice: in the
``schema_version`` column and in the Parquet key-value metadata
(``dragsaw.schema_version``), so a reader refuses a newer file before it casts a
single column.

Names that become path segments (experiment, dataset, trial_id) are restricted to
``NAME_PATTERN``: partition directories then need no escaping, and a name can never
climb out of its partition ("../") or hide its file (a leading "." or "_" marks files
that readers skip).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from dragsaw.platform.store._location import redact

#: Version of the table layout written by this code; readers refuse newer files.
SCHEMA_VERSION = 1

#: Parquet key-value metadata keys written into every file.
VERSION_KEY = b"dragsaw.schema_version"
TABLE_KEY = b"dragsaw.table"

#: Names that become path segments: experiment, dataset, trial_id.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")

#: stopped: pruned by a scheduler (ASHA) or cancelled; running: the attempt has started and written
#: no outcome yet (it stays so when its worker or node dies); lost: such an attempt, once noticed;
#: pruned: a search sample its scheduler (ASHA) stopped early (PRUNED in its Optuna study).
STATUSES = ("completed", "failed", "stopped", "running", "lost", "pruned")

_TS = pa.timestamp("us", tz="UTC")

# Identity columns shared by every table, first in each.
_IDS = [
    pa.field("schema_version", pa.int64(), nullable=False),
    pa.field("experiment", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("trial_id", pa.string(), nullable=False),
    pa.field("attempt", pa.int64(), nullable=False),
    pa.field("variant", pa.string(), nullable=False),
    pa.field("fold", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
]

TRIALS = pa.schema(_IDS + [
    pa.field("status", pa.string(), nullable=False),
    # The averaging convention of the headline numbers (paper2d | foreground); null when unknown.
    pa.field("convention", pa.string()),
    # The grid's data fraction (the config's data.fraction): a grouping key of leaderboards; null when unknown.
    pa.field("fraction", pa.float64()),
    pa.field("dice", pa.float64()),
    pa.field("jaccard", pa.float64()),
    pa.field("accuracy", pa.float64()),
    pa.field("metrics_json", pa.string(), nullable=False),
    pa.field("params_json", pa.string(), nullable=False),
    pa.field("config_json", pa.string(), nullable=False),
    pa.field("spec_hash", pa.string(), nullable=False),
    pa.field("git_commit", pa.string(), nullable=False),
    pa.field("versions_json", pa.string(), nullable=False),
    pa.field("hardware", pa.string(), nullable=False),
    pa.field("node", pa.string(), nullable=False),
    pa.field("started_at", _TS, nullable=False),
    pa.field("ended_at", _TS, nullable=False),
    pa.field("duration_s", pa.float64(), nullable=False),
    pa.field("error", pa.string()),
    # What this attempt wrote, so readers can tell missing or replaced data from none:
    # {"epochs": {"rows": n, "bytes": b, "sha256": hex}, "cases": {...}} (rows 0: no file);
    # null in rows written before it existed (not verifiable).
    pa.field("written_json", pa.string()),
])

EPOCHS = pa.schema(_IDS + [
    pa.field("epoch", pa.int64(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("value", pa.float64()),
])

CASES = pa.schema(_IDS + [
    pa.field("case_id", pa.string(), nullable=False),
    pa.field("class_index", pa.int64(), nullable=False),
    pa.field("class_name", pa.string(), nullable=False),
    pa.field("tp", pa.int64(), nullable=False),
    pa.field("fp", pa.int64(), nullable=False),
    pa.field("fn", pa.int64(), nullable=False),
    pa.field("tn", pa.int64(), nullable=False),
    pa.field("dice", pa.float64()),
    pa.field("jaccard", pa.float64()),
    pa.field("accuracy", pa.float64()),
    # The empty-reference rule the stored dice/jaccard used ("nan" | "one").
    pa.field("empty", pa.string(), nullable=False),
])

#: Table name -> schema, in write order (a trials row implies its epochs and cases are there).
SCHEMAS: dict[str, pa.Schema] = {"epochs": EPOCHS, "cases": CASES, "trials": TRIALS}
TABLES = tuple(SCHEMAS)

TRIAL_KEYS = ("experiment", "trial_id", "attempt", "status", "variant", "dataset", "fold", "seed",
              "params", "config", "metrics", "spec_hash", "git_commit", "versions", "hardware", "node",
              "started_at", "ended_at", "error")
CASE_KEYS = ("case_id", "class_index", "class_name", "tp", "fp", "fn", "tn", "dice", "jaccard",
             "accuracy", "empty")
EMPTY_RULES = ("nan", "one")
CONVENTIONS = ("paper2d", "foreground")


def trial_table(trial: Mapping[str, Any], written: Mapping[str, Any] | None = None) -> pa.Table:
    """One trials row from the launcher's trial dict (keys ``TRIAL_KEYS``); ValueError names
    every missing or unknown key, or the field whose value is wrong. ``written``: what the
    attempt wrote ({table: {"rows", "bytes", "sha256"}}), stored as ``written_json``."""
    if not isinstance(trial, Mapping):
        raise TypeError(f"`trial` must be a dict with keys {list(TRIAL_KEYS)}, but got {type(trial).__name__}")
    missing = [k for k in TRIAL_KEYS if k not in trial]
    unknown = sorted(set(trial) - set(TRIAL_KEYS), key=str)
    if missing or unknown:
        raise ValueError(f"`trial` must have exactly the keys {list(TRIAL_KEYS)}, but "
                         + "; ".join(p for p in (f"missing {missing}" if missing else "",
                                                 f"unknown {unknown}" if unknown else "") if p))
    ids = identity(trial)
    status = trial["status"]
    if status not in STATUSES:
        raise ValueError(f"trial `status` must be one of {list(STATUSES)}, but got {status!r}")
    metrics = _mapping("metrics", trial["metrics"])
    convention = metrics.get("convention")
    if convention is not None and convention not in CONVENTIONS:
        raise ValueError(f"trial `metrics['convention']` must be one of {list(CONVENTIONS)} or absent, "
                         f"but got {convention!r}")
    started, ended = _utc("started_at", trial["started_at"]), _utc("ended_at", trial["ended_at"])
    if ended < started:
        raise ValueError(f"trial `ended_at` must not be before `started_at`, but got {ended} < {started}")
    for m in ("dice", "jaccard", "accuracy"):
        _unit(f"metrics['{m}']", _headline(metrics, m))
    error = trial["error"]
    if error is not None and not isinstance(error, str):
        raise ValueError(f"trial `error` must be a str or None, but got {type(error).__name__}")
    # Free text is scrubbed of credentials (secret environment values, user:password@ in URLs):
    # a config or a traceback must never carry them into the results.
    data = trial["config"].get("data") if isinstance(trial["config"], Mapping) else None
    fraction = _headline(data, "fraction") if isinstance(data, Mapping) else None
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"trial `config['data']['fraction']` must be in (0, 1], but got {fraction}")
    row = dict(ids, status=status, convention=convention, fraction=fraction,
               **{m: _headline(metrics, m) for m in ("dice", "jaccard", "accuracy")},
               metrics_json=to_json("metrics", metrics),
               params_json=to_json("params", _mapping("params", trial["params"])),
               config_json=to_json("config", _mapping("config", trial["config"])),
               versions_json=to_json("versions", _mapping("versions", trial["versions"])),
               **{k: redact(_text(k, trial[k])) for k in ("spec_hash", "git_commit", "hardware", "node")},
               started_at=started, ended_at=ended, duration_s=(ended - started).total_seconds(),
               error=None if error is None else redact(error),
               written_json=None if written is None else json.dumps(written, sort_keys=True))
    return pa.Table.from_pylist([row], schema=TRIALS)


def identity(trial: Mapping[str, Any]) -> dict[str, Any]:
    """The identity columns (``_IDS``) of a trial, checked."""
    ids: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for key in ("experiment", "dataset", "trial_id"):
        value = trial[key]
        if not isinstance(value, str) or not NAME_PATTERN.match(value) or ".." in value:
            raise ValueError(f"trial `{key}` must be a name matching {NAME_PATTERN.pattern} (letters, digits, "
                             f"'.', '_', '+', '-'; it becomes a path segment), but got {value!r}")
        ids[key] = value
    ids["attempt"] = _int("attempt", trial["attempt"], low=1)
    ids["variant"] = _text("variant", trial["variant"], nonempty=True)
    ids["fold"] = _text("fold", trial["fold"], nonempty=True)
    ids["seed"] = _int("seed", trial["seed"])
    return ids


def epochs_table(ids: Mapping[str, Any], epochs: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Long rows (epoch, name, value) from per-epoch metric dicts; each dict must have an int
    "epoch"; numeric values become rows, anything else (e.g. "convention": "paper2d") is skipped."""
    if isinstance(epochs, (str, bytes, Mapping)) or not isinstance(epochs, Sequence):
        raise TypeError(f"`epochs` must be a list of per-epoch metric dicts, but got {type(epochs).__name__}")
    cols: dict[str, list] = {"epoch": [], "name": [], "value": []}
    for i, entry in enumerate(epochs):
        if not isinstance(entry, Mapping) or "epoch" not in entry:
            raise ValueError(f"`epochs[{i}]` must be a dict with an int 'epoch', but got {entry!r:.200}")
        epoch = _int(f"epochs[{i}]['epoch']", entry["epoch"])
        for name, value in entry.items():
            if name == "epoch" or isinstance(value, bool) or not isinstance(value, numbers.Real):
                continue
            if not isinstance(name, str) or not name:
                raise ValueError(f"`epochs[{i}]` keys must be non-empty str metric names, but got {name!r}")
            cols["epoch"].append(epoch)
            cols["name"].append(name)
            cols["value"].append(float(value))
    return _with_ids(EPOCHS, ids, cols)


def cases_table(ids: Mapping[str, Any], cases: Sequence[Mapping[str, Any]] | pa.Table) -> pa.Table:
    """Per-case, per-class rows (keys ``CASE_KEYS``, as ``workloads.metrics.case_rows`` makes
    them), or a pyarrow Table with those columns (checked column-wise: large evaluations);
    ValueError names the first bad row and field."""
    if isinstance(cases, pa.Table):
        return _cases_from_arrow(ids, cases)
    if isinstance(cases, (str, bytes, Mapping)) or not isinstance(cases, Sequence):
        raise TypeError(f"`cases` must be a list of per-case rows, but got {type(cases).__name__}")
    cols: dict[str, list] = {k: [] for k in CASE_KEYS}
    for i, row in enumerate(cases):
        if not isinstance(row, Mapping):
            raise ValueError(f"`cases[{i}]` must be a dict with keys {list(CASE_KEYS)}, but got {row!r:.200}")
        missing = [k for k in CASE_KEYS if k not in row]
        if missing:
            raise ValueError(f"`cases[{i}]` must have the keys {list(CASE_KEYS)}, but misses {missing}")
        cols["case_id"].append(_text(f"cases[{i}]['case_id']", row["case_id"], nonempty=True))
        cols["class_name"].append(_text(f"cases[{i}]['class_name']", row["class_name"]))
        cols["class_index"].append(_int(f"cases[{i}]['class_index']", row["class_index"], low=0))
        counts = [_int(f"cases[{i}]['{k}']", row[k], low=0) for k in ("tp", "fp", "fn", "tn")]
        if sum(counts) == 0:
            raise ValueError(f"`cases[{i}]` counts tp+fp+fn+tn must cover at least one pixel, but all are 0")
        for k, n in zip(("tp", "fp", "fn", "tn"), counts):
            cols[k].append(n)
        for k in ("dice", "jaccard", "accuracy"):
            cols[k].append(_unit(f"cases[{i}]['{k}']", _float(f"cases[{i}]['{k}']", row[k])))
        if row["empty"] not in EMPTY_RULES:
            raise ValueError(f"`cases[{i}]['empty']` must be one of {list(EMPTY_RULES)}, but got {row['empty']!r}")
        cols["empty"].append(row["empty"])
    return _with_ids(CASES, ids, cols)


def _cases_from_arrow(ids: Mapping[str, Any], cases: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    missing = [k for k in CASE_KEYS if k not in cases.column_names]
    if missing:
        raise ValueError(f"`cases` must have the columns {list(CASE_KEYS)}, but misses {missing}")
    types = {f.name: f.type for f in CASES}
    try:
        cols = {k: cases.column(k).cast(types[k]) for k in CASE_KEYS}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise ValueError(f"`cases` columns must have the types of the cases schema: {err}") from None

    def call(name: str, *args: Any, options: Any = None) -> Any:
        # pc.call_function: pyarrow.compute's named wrappers (pc.less...) are generated at
        # import, invisible to type checkers.
        return pc.call_function(name, list(args), options)

    def first(mask, what: str) -> None:
        bad = call("indices_nonzero", pc.fill_null(mask, True))
        if len(bad):
            raise ValueError(f"`cases[{bad[0].as_py()}]` {what}")

    for k in ("case_id", "class_name", "class_index", "tp", "fp", "fn", "tn", "empty"):
        first(call("is_null", cols[k]), f"['{k}'] must not be null")
    first(call("equal", call("utf8_length", cols["case_id"]), 0), "['case_id'] must be a non-empty str")
    for k in ("class_index", "tp", "fp", "fn", "tn"):
        first(call("less", cols[k], 0), f"['{k}'] must be >= 0")
    total = call("add", call("add", cols["tp"], cols["fp"]), call("add", cols["fn"], cols["tn"]))
    first(call("equal", total, 0), "counts tp+fp+fn+tn must cover at least one pixel, but all are 0")
    for k in ("dice", "jaccard", "accuracy"):
        v = cols[k]
        outside = call("or", call("less", v, 0), call("greater", v, 1))
        first(call("and_kleene", call("invert", call("is_nan", v)), outside), f"['{k}'] must be in [0, 1] (or NaN)")
    in_rules = call("is_in", cols["empty"], options=pc.SetLookupOptions(value_set=pa.array(EMPTY_RULES)))
    first(call("invert", in_rules), f"['empty'] must be one of {list(EMPTY_RULES)}")
    n = cases.num_rows
    arrays = [pa.array([ids[f.name]] * n, f.type) if f.name in ids else cols[f.name] for f in CASES]
    return pa.Table.from_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays],
                                schema=CASES)


def to_json(field: str, value: Any) -> str:
    """Canonical JSON (sorted keys); numpy scalars/arrays become numbers/lists, NaN and inf
    become null (standard JSON), strings are scrubbed of credentials (``redact``); anything
    else that JSON cannot hold is an error naming the field."""
    try:
        return json.dumps(_plain(value), sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise ValueError(f"trial `{field}` must hold only JSON values (dict, list, str, number, bool, "
                         f"None), but {err}") from None


# --- helpers -------------------------------------------------------------------------------


def _with_ids(schema: pa.Schema, ids: Mapping[str, Any], cols: dict[str, list]) -> pa.Table:
    n = len(next(iter(cols.values())))
    arrays = [pa.array([ids[f.name]] * n, f.type) if f.name in ids else pa.array(cols[f.name], f.type)
              for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"keys must be str, got {k!r}")
            out[k] = _plain(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars and arrays
        return _plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise TypeError(f"{type(value).__name__} {value!r:.80} is not JSON")


def _mapping(field: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise ValueError(f"trial `{field}` must be a dict, but got {type(value).__name__}")
    return value


def _text(field: str, value: Any, nonempty: bool = False) -> str:
    if not isinstance(value, str) or (nonempty and not value):
        raise ValueError(f"`{field}` must be a {'non-empty ' if nonempty else ''}str, but got {value!r:.80}")
    return value


def _int(field: str, value: Any, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{field}` must be an int, but got {value!r:.80}")
    if low is not None and value < low:
        raise ValueError(f"`{field}` must be >= {low}, but got {value}")
    return int(value)


def _float(field: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{field}` must be a float (NaN allowed), but got {value!r:.80}")
    return float(value)


def _unit(field: str, value: float | None) -> float | None:
    """A score in [0, 1], NaN (an empty reference under the "nan" rule) or None."""
    if value is not None and not math.isnan(value) and not 0.0 <= value <= 1.0:
        raise ValueError(f"`{field}` must be in [0, 1] (or NaN), but got {value}")
    return value


def _headline(metrics: Mapping, name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


def _utc(field: str, value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"trial `{field}` must be a timezone-aware datetime (UTC), but got {value!r:.80}")
    return value.astimezone(dt.timezone.utc)
