"""``ResultStore``: write a trial's three tables whole, read them back by experiment and
dataset, on any fsspec URL.

Layout under the root URL (hive-style partitions, so readers prune by path)::

    {root}/trials/experiment={e}/dataset={d}/{trial_id}-a{attempt}.parquet   one row per attempt
    {root}/epochs/experiment={e}/dataset={d}/{trial_id}.parquet              long (epoch, name, value)
    {root}/cases/experiment={e}/dataset={d}/{trial_id}.parquet               per case and class

The partition values are repeated as columns inside every file, so a file means the same
wherever it is copied; paths only serve pruning. Epochs and cases are keyed by trial only:
a retried or resumed trial rewrites them, so a result never counts twice. Write order is
epochs, cases, then the trials row, so a trials row with status "completed" implies its
data is there. Files whose name starts with "." or "_" (temp files of a killed writer,
probes) are never read as results; ``_compact.parquet`` is a validated cache (``compact``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc

from dragsaw.platform.store._files import COMPACT_NAME, Files, to_parquet
from dragsaw.platform.store._location import DEFAULT_URL, StoreError, filesystem, is_local, redact
from dragsaw.platform.store._schema import (
    SCHEMAS,
    TABLES,
    cases_table,
    epochs_table,
    identity,
    trial_table,
)


class ResultStore:
    """Results of trials as Parquet under one root URL (see the module doc for the layout).

    url: a local folder (default ``results``), ``file://...``, ``s3://bucket/prefix`` or any
    fsspec URL; credentials come from the environment only (see ``_location``).
    """

    def __init__(self, url: str = DEFAULT_URL):
        self.url = redact(url) if isinstance(url, str) else repr(url)
        fs, root = filesystem(url)
        self._files = Files(fs, root, is_local(fs), self.url)
        self._root = root

    def __repr__(self) -> str:
        return f"ResultStore({self.url!r})"

    # -- paths ---------------------------------------------------------------------------
    def partition(self, table: str, experiment: str | None = None, dataset: str | None = None) -> str:
        """Path (without protocol) of a table's folder, or of one experiment's (and dataset's)
        partition in it."""
        _check_table(table)
        path = f"{self._root}/{table}"
        if experiment is not None:
            path += f"/experiment={experiment}"
            if dataset is not None:
                path += f"/dataset={dataset}"
        return path

    def file_path(self, table: str, experiment: str, dataset: str, trial_id: str,
                  attempt: int | None = None) -> str:
        """Path of one trial's file: ``{trial_id}-a{attempt}.parquet`` in trials, else ``{trial_id}.parquet``."""
        name = f"{trial_id}-a{attempt}" if table == "trials" else trial_id
        return f"{self.partition(table, experiment, dataset)}/{name}.parquet"

    # -- writing -------------------------------------------------------------------------
    def check(self) -> None:
        """Raise StoreError unless the store is reachable and writable (puts and deletes a probe)."""
        files = self._files
        if files.local and os.path.exists(self._root) and not os.path.isdir(self._root):
            raise StoreError(f"result store {self.url} is a file, not a folder")
        probe = f"{self._root}/.dragsaw-probe-{uuid.uuid4().hex}"
        with self._io("write a probe object to"):
            files.put(probe, b"dragsaw write probe\n")
        with self._io("delete the probe object from"):
            files.fs.rm_file(probe)

    def check_readable(self) -> None:
        """Raise StoreError unless the store can be listed: a dead endpoint, a missing bucket or a
        file in place of the folder are errors; a missing or empty folder is an empty store."""
        if self._files.local and os.path.exists(self._root) and not os.path.isdir(self._root):
            raise StoreError(f"result store {self.url} is a file, not a folder")
        with self._io("list"):
            self._files.list_dir(self._root)

    def write_trial(self, trial: dict, epochs: list[dict], cases: list[dict]) -> None:
        """Store one trial attempt: its epochs and cases (rewritten whole on a retry) and its
        trials row, in that order. Everything is checked and encoded before anything is
        written (ValueError names the field); an empty ``epochs`` or ``cases`` list writes no
        file (and leaves an earlier attempt's file alone)."""
        row = trial_table(trial)
        ids = identity(trial)
        data = {"epochs": epochs_table(ids, epochs), "cases": cases_table(ids, cases), "trials": row}
        payload = {name: to_parquet(name, table) for name, table in data.items() if table.num_rows}
        e, d, t, a = ids["experiment"], ids["dataset"], ids["trial_id"], ids["attempt"]
        for name in TABLES:  # epochs, cases, trials: the trials row last
            if name in payload:
                self._write(name, self.file_path(name, e, d, t, a), payload[name], t)

    def _write(self, table: str, path: str, data: bytes, trial_id: str) -> None:
        with self._io(f"write {table} of trial {trial_id!r} to"):
            self._files.put(path, data)

    def compact(self, experiment: str | None = None) -> dict[str, int]:
        """Write ``_compact.parquet`` into every partition (of ``experiment``, or all) whose files
        are not all in its current compacted file, so that later reads take one request per
        partition instead of one per trial. Safe while trials are being written (see
        ``_files``). Returns {table: number of compacted files written}."""
        written = {}
        for table in TABLES:
            schema = SCHEMAS[table]
            with self._io(f"list {table} in"):
                listing = self._files.listing(self.partition(table, experiment))
            folders = {p.rsplit("/", 1)[0] for p in listing if p.endswith(".parquet")}
            count = 0
            for folder in sorted(folders):
                part = {p: fp for p, fp in listing.items() if p.rsplit("/", 1)[0] == folder}
                with self._io(f"read {table} from"):
                    rows, read = self._files.read_partitions(table, part, schema, keep_source=True)
                sources = read.get(folder, {})
                if not sources or self._is_current(table, folder, part, sources):
                    continue
                with self._io(f"write a compacted {table} file to"):
                    self._files.put(f"{folder}/{COMPACT_NAME}", to_parquet(table, rows, sources))
                count += 1
            written[table] = count
        return written

    def _is_current(self, table: str, folder: str, part: dict, sources: dict) -> bool:
        """Whether the partition's compacted file already holds exactly ``sources``."""
        path = f"{folder}/{COMPACT_NAME}"
        if path not in part:
            return False
        blob = self._files.fetch([path]).get(path)
        if blob is None:
            return False
        _, valid = self._files.parse_compact(table, path, blob, sources, SCHEMAS[table])
        return valid == set(sources)

    # -- reading -------------------------------------------------------------------------
    def experiments(self) -> list[str]:
        """Names of the experiments that have at least one trials row."""
        with self._io("list experiments in"):
            entries = self._files.list_dir(self.partition("trials"))
        prefix = "experiment="
        names = {p.rstrip("/").rsplit("/", 1)[-1] for p in entries}
        return sorted(n[len(prefix):] for n in names if n.startswith(prefix))

    def read(self, table: str, experiment: str | None = None, dataset: str | None = None,
             columns: Sequence[str] | None = None) -> pa.Table:
        """All rows of ``table`` ("trials" | "epochs" | "cases"), pruned by path to an
        experiment and/or dataset; ``columns`` selects columns. The schema is exactly
        ``SCHEMAS[table]`` (restricted to ``columns``, in that order)."""
        _check_table(table)
        schema = _project(SCHEMAS[table], columns)
        base = self.partition(table, experiment, dataset)
        with self._io(f"list {table} in"):
            listing = self._files.listing(base)
        if dataset is not None and experiment is None:
            listing = {p: fp for p, fp in listing.items() if f"/dataset={dataset}/" in p[len(base):]}
        with self._io(f"read {table} from"):
            rows, _ = self._files.read_partitions(table, listing, schema)
        return rows

    def trial_attempts(self, experiment: str | None = None) -> pa.Table:
        """The trials table (one row per attempt), sorted by experiment, trial_id, attempt."""
        rows = self.read("trials", experiment)
        return rows.sort_by([("experiment", "ascending"), ("trial_id", "ascending"), ("attempt", "ascending")])

    def completed(self, experiment: str) -> set[str]:
        """trial_ids of ``experiment`` with a completed attempt (what a resume may skip)."""
        rows = self.read("trials", experiment, columns=["trial_id", "status"])
        done = rows.filter(pc.field("status") == "completed")
        return set(done.column("trial_id").to_pylist())

    def completed_trials(self, experiment: str | None = None, dataset: str | None = None,
                         columns: Sequence[str] | None = None) -> pa.Table:
        """One trials row per trial with a completed attempt: its latest completed attempt
        (what leaderboards count), sorted by experiment and trial_id."""
        need = ["experiment", "trial_id", "attempt", "status"]
        cols = None if columns is None else list(dict.fromkeys(need + list(columns)))
        rows = self.read("trials", experiment, dataset, columns=cols)
        rows = rows.filter(pc.field("status") == "completed")
        rows = rows.sort_by([("experiment", "ascending"), ("trial_id", "ascending"), ("attempt", "descending")])
        exp, tid = rows.column("experiment").to_pylist(), rows.column("trial_id").to_pylist()
        keep = [i for i in range(rows.num_rows) if i == 0 or (exp[i], tid[i]) != (exp[i - 1], tid[i - 1])]
        rows = rows.take(pa.array(keep, pa.int64()))
        return rows if columns is None else rows.select(list(columns))

    # -- internals -----------------------------------------------------------------------
    @contextmanager
    def _io(self, what: str):
        try:
            yield
        except StoreError:
            raise
        except Exception as err:  # filesystem and network errors of any backend
            detail = str(err) or type(err).__name__
            raise StoreError(f"result store {self.url}: cannot {what} it: {type(err).__name__}: {detail}") from None


def _check_table(table: str) -> None:
    if table not in SCHEMAS:
        raise ValueError(f"`table` must be one of {list(TABLES)}, but got {table!r}")


def _project(schema: pa.Schema, columns: Iterable[str] | None) -> pa.Schema:
    if columns is None:
        return schema
    columns = list(columns)
    unknown = [c for c in columns if c not in schema.names]
    if unknown:
        raise ValueError(f"`columns` must be names of the table ({schema.names}), but got unknown {unknown}")
    return pa.schema([schema.field(c) for c in columns])
