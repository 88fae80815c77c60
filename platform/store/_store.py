"""``ResultStore``: write a trial's three tables whole, read them back by experiment and
dataset, on any fsspec URL.

Layout under the root URL (hive-style partitions, so readers prune by path)::

    {root}/trials/experiment={e}/dataset={d}/{trial_id}-a{attempt}.parquet   one row per attempt
    {root}/epochs/experiment={e}/dataset={d}/{trial_id}.parquet              long (epoch, name, value)
    {root}/cases/experiment={e}/dataset={d}/{trial_id}.parquet               per case and class

The partition values are repeated as columns inside every file, so a file means the same
wherever it is copied; paths only serve pruning. Epochs and cases are keyed by trial only:
a retried or resumed trial rewrites them, so a result never counts twice. Write order is
epochs, cases, then the trials row, and every trials row records what its attempt wrote
(``written_json``: rows, bytes, sha256 per file), so readers can tell a completed trial whose
data is missing or replaced (``incomplete``; see ``_complete``). Files whose name starts with
"." or "_" (temp files of a killed writer, probes) are never read as results;
``_compact.parquet`` is a validated cache (``compact``): never required, never trusted blindly.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc

import dragsaw.platform.store._files as _files
from dragsaw.platform.store._complete import FileKey, incomplete_trials
from dragsaw.platform.store._files import (
    Files,
    Source,
    digest,
    split_listing,
    to_parquet,
)
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
        ids = identity(trial)
        data = {"epochs": epochs_table(ids, epochs), "cases": cases_table(ids, cases)}
        payload = {name: to_parquet(name, table) for name, table in data.items() if table.num_rows}
        written = {name: ({"rows": data[name].num_rows, "bytes": len(payload[name]), "sha256": digest(payload[name])}
                          if name in payload else {"rows": 0}) for name in data}
        payload["trials"] = to_parquet("trials", trial_table(trial, written))
        e, d, t, a = ids["experiment"], ids["dataset"], ids["trial_id"], ids["attempt"]
        for name in TABLES:  # epochs, cases, trials: the trials row last
            if name in payload:
                self._write(name, self.file_path(name, e, d, t, a), payload[name], t)

    def _write(self, table: str, path: str, data: bytes, trial_id: str) -> None:
        with self._io(f"write {table} of trial {trial_id!r} to"):
            self._files.put(path, data)

    def compact(self, experiment: str | None = None, verify: bool = False) -> dict[str, int]:
        """Write ``_compact.parquet`` into every partition (of ``experiment``, or all) whose files
        are not all in its current compacted file, so that later reads take one request per
        partition instead of one per trial. Safe while trials are being written and while
        another process compacts (the file is a cache keyed by the exact files it holds; see
        ``_files``); an unreadable compacted file is replaced. Rows stream from the sources
        into the new file, so memory stays bounded whatever a partition's size. ``verify``
        also reads every up-to-date compacted file through (page checksums, rows per source)
        and rebuilds those that fail: a damaged body is otherwise only found by the next read.
        Returns {table: number of compacted files written}."""
        written = {}
        for table in TABLES:
            schema = SCHEMAS[table]
            with self._io(f"list {table} in"):
                listing = self._files.listing(self.partition(table, experiment))
            folders, _ = split_listing(listing)
            current = self._files.compact_sources(listing, table)
            count = 0
            for folder in sorted(folders):
                if set(current.get(folder, {})) == set(folders[folder]) and (
                        not verify or self._files.verify_compact(table, folder, listing)):
                    continue  # the compacted file holds exactly the partition's files
                part = {p: fp for p, fp in listing.items() if p.rsplit("/", 1)[0] == folder}
                with self._io(f"write a compacted {table} file to"):
                    count += self._files.write_compact(table, folder, part, schema)
            written[table] = count
        return written

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
        return self.load(table, experiment, dataset, columns)[0]

    def load(self, table: str, experiment: str | None = None, dataset: str | None = None,
             columns: Sequence[str] | None = None) -> tuple[pa.Table, dict[FileKey, Source]]:
        """``read`` plus what was read: (experiment, dataset, trial_id) -> ``Source`` (fingerprint,
        sha256, rows) of each file, for ``incomplete_trials``."""
        _check_table(table)
        schema = _project(SCHEMAS[table], columns)
        with self._io(f"list {table} in"):
            listing = self._listing(table, experiment, dataset)
        with self._io(f"read {table} from"):
            rows, read = self._files.read_partitions(table, listing, schema)
        return rows, _by_trial(read)

    def scan(self, table: str, experiment: str | None = None, dataset: str | None = None,
             columns: Sequence[str] | None = None, max_rows: int | None = None) -> Scan:
        """``load`` in bounded memory: the rows as tables of about ``max_rows`` rows, each holding
        whole result files (all of one trial's rows are in one table), read lazily; ``max_rows``
        defaults to ``_files.CHUNK_ROWS``. Iterate it once; then ``.sources`` is what ``load``
        returns beside the rows."""
        _check_table(table)
        rows = _files.CHUNK_ROWS if max_rows is None else max_rows
        if rows < 1:
            raise ValueError(f"`max_rows` must be >= 1, but got {max_rows}")
        return Scan(self, table, _project(SCHEMAS[table], columns), experiment, dataset, rows)

    def sources(self, table: str, experiment: str | None = None, dataset: str | None = None
                ) -> dict[FileKey, Source]:
        """The result files of ``table`` without reading them: one listing plus the footers of
        compacted files (which record their sources' hashes); files not in a valid compacted
        file have sha256 None and rows -1."""
        _check_table(table)
        with self._io(f"list {table} in"):
            listing = self._listing(table, experiment, dataset)
            known = self._files.compact_sources(listing, table)
        folders, _ = split_listing(listing)
        found = {folder: {n: known.get(folder, {}).get(n) or Source(fp, None, -1) for n, fp in files.items()}
                 for folder, files in folders.items()}
        return _by_trial(found)

    def incomplete(self, experiment: str | None = None, dataset: str | None = None,
                   tables: Sequence[str] = ("epochs", "cases")) -> list[dict]:
        """Completed trials (latest completed attempt) whose epochs or cases files are missing or
        differ from what the attempt recorded, checked from listings and compacted files'
        footers (sizes for uncompacted files, hashes where compacted): dicts (experiment,
        dataset, trial_id, attempt, problems). Readers that fetch the files check hashes."""
        trials = self.completed_trials(experiment, dataset, columns=CHECK_COLUMNS)
        if not trials.num_rows:
            return []
        return incomplete_trials(trials, {t: self.sources(t, experiment, dataset) for t in tables})

    def attempts_of(self, experiment: str, dataset: str, trial_id: str) -> pa.Table:
        """One trial's trials rows (every attempt), sorted by attempt, read by path: one listing
        of ``{trial_id}-a*`` (a prefix request on object stores) and those files only, so the
        cost does not grow with the number of trials stored."""
        folder = self.partition("trials", experiment, dataset)
        pattern = re.compile(rf"{re.escape(trial_id)}-a(\d+)\.parquet")
        with self._io("list trials in"):
            listing = self._files.listing_prefix(folder, f"{trial_id}-a")
        listing = {p: fp for p, fp in listing.items() if pattern.fullmatch(p.rsplit("/", 1)[1])}
        with self._io("read trials from"):
            rows, _ = self._files.read_partitions("trials", listing, SCHEMAS["trials"])
        return rows.sort_by([("attempt", "ascending")])

    def trial_attempts(self, experiment: str | None = None) -> pa.Table:
        """The trials table (one row per attempt), sorted by experiment, trial_id, attempt."""
        rows = self.read("trials", experiment)
        return rows.sort_by([("experiment", "ascending"), ("trial_id", "ascending"), ("attempt", "ascending")])

    def completed(self, experiment: str) -> set[str]:
        """trial_ids of ``experiment`` with a completed attempt whose data is all there (what a
        resume may skip): a completed trial whose epochs or cases file is missing or changed
        (``incomplete``) is not in it, so a resume re-runs it."""
        rows = self.read("trials", experiment, columns=["trial_id", "status"])
        done = rows.filter(pc.field("status") == "completed")
        return set(done.column("trial_id").to_pylist()) - {t["trial_id"] for t in self.incomplete(experiment)}

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
    def _listing(self, table: str, experiment: str | None, dataset: str | None) -> dict[str, str | None]:
        base = self.partition(table, experiment, dataset)
        listing = self._files.listing(base)
        if dataset is not None and experiment is None:
            listing = {p: fp for p, fp in listing.items() if f"/dataset={dataset}/" in p[len(base):]}
        return listing

    @contextmanager
    def _io(self, what: str):
        try:
            yield
        except StoreError:
            raise
        except Exception as err:  # filesystem and network errors of any backend
            detail = str(err) or type(err).__name__
            raise StoreError(f"result store {self.url}: cannot {what} it: {type(err).__name__}: {detail}") from None


class Scan:
    """The rows of one table as a lazy sequence of Arrow tables of whole files (see
    ``ResultStore.scan``); ``sources``, after iterating, says which files were read. The
    listing starts at once in a background thread (on object stores it is one request per
    1,000 files, so a caller reading another table meanwhile waits for the slower of both)."""

    def __init__(self, store: ResultStore, table: str, schema: pa.Schema, experiment: str | None,
                 dataset: str | None, max_rows: int):
        self._store, self.table, self.schema, self.max_rows = store, table, schema, max_rows
        self._read: dict[str, dict[str, Source]] = {}
        self._started = False
        self._listing: Future[dict[str, str | None]] = Future()
        threading.Thread(target=self._list, args=(experiment, dataset), name="dragsaw-scan-listing",
                         daemon=True).start()

    def _list(self, experiment: str | None, dataset: str | None) -> None:
        try:
            with self._store._io(f"list {self.table} in"):
                self._listing.set_result(self._store._listing(self.table, experiment, dataset))
        except BaseException as err:  # handed to the iterating thread
            self._listing.set_exception(err)

    def __iter__(self) -> Iterator[pa.Table]:
        if self._started:
            raise RuntimeError("a Scan can be iterated once; call ResultStore.scan again")
        self._started = True
        listing = self._listing.result()
        with self._store._io(f"read {self.table} from"):
            yield from self._store._files.scan_partitions(self.table, listing, self.schema, self._read,
                                                          max_rows=self.max_rows)

    @property
    def sources(self) -> dict[FileKey, Source]:
        """(experiment, dataset, trial_id) -> ``Source`` of each file whose rows were yielded."""
        return _by_trial(self._read)


#: Trials columns ``incomplete_trials`` needs.
CHECK_COLUMNS = ["experiment", "dataset", "trial_id", "attempt", "written_json"]


def _by_trial(read: dict[str, dict[str, Source]]) -> dict[FileKey, Source]:
    """{folder: {file name: Source}} -> {(experiment, dataset, trial_id): Source}."""
    out = {}
    for folder, files in read.items():
        parts = folder.rsplit("/", 2)
        e, d = parts[-2].split("=", 1)[-1], parts[-1].split("=", 1)[-1]
        for name, source in files.items():
            out[(e, d, name[: -len(".parquet")])] = source
    return out


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
