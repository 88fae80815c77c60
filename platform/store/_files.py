"""Files of one store: whole-file writes, listings with fingerprints, concurrent fetches,
checked parsing, and compaction.

Compaction exists because object stores charge per request: a 200-trial grid is 400+
small files, and fetching them is request-bound (about 5 ms each on moto's single server
process; real S3 answers them concurrently). A compacted file
``{partition}/_compact.parquet`` holds the rows of the partition's per-trial files plus a
``_file`` column naming the file each row came from, and records in its metadata the
fingerprint (size + ETag, or size + mtime locally) of every file it holds. A reader lists
the partition (one request per 1000 files), keeps the compacted rows of the files whose
fingerprint still matches, and fetches the rest individually; so a compacted file is only
ever a cache: a stale one costs a request, never a wrong row, and an unreadable one is
ignored with a warning (and rebuilt by the next ``compact``). Writers never touch it; two
compactors racing both write a valid cache (each names the exact files it holds).

Every file read is accounted for (``Source``: fingerprint, sha256 of its bytes, rows), so
that readers can check a completed trial's recorded ``written_json`` against what is there.
A compacted file records its sources' hashes, so a compacted read needs no source fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dragsaw.platform.store._location import StoreError
from dragsaw.platform.store._schema import SCHEMA_VERSION, TABLE_KEY, VERSION_KEY

COMPACT_NAME = "_compact.parquet"
SOURCE_COLUMN = "_file"
SOURCES_KEY = b"dragsaw.sources"
HASHES_KEY = b"dragsaw.source_hashes"

log = logging.getLogger("dragsaw.store")


class Source(NamedTuple):
    """One result file as read: listing fingerprint, sha256 of its bytes (None: unknown), rows."""

    fingerprint: str | None
    sha256: str | None
    rows: int


def digest(data: bytes) -> str:
    """Hex sha256 of a file's bytes (what ``written_json`` records)."""
    return hashlib.sha256(data).hexdigest()


class Files:
    """Low-level file access under ``root`` on ``fs``; ``url`` (redacted) names the store in errors."""

    def __init__(self, fs, root: str, local: bool, url: str):
        self.fs, self.root, self.local, self.url = fs, root, local, url

    # -- writing -------------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> None:
        """``data`` as the whole content of ``path``: temp file + os.replace locally, one PUT
        elsewhere (an object store never shows a partial object)."""
        if not self.local:
            self.fs.pipe_file(path, data)
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:
            if os.path.exists(temp):
                os.remove(temp)
            raise

    # -- listing -------------------------------------------------------------------------
    def listing(self, base: str) -> dict[str, str | None]:
        """Every file under ``base``: path -> fingerprint (None when the backend gives none)."""
        try:
            if self.local:
                out = {}
                for folder, _, names in os.walk(base):
                    for name in names:
                        try:
                            st = os.stat(os.path.join(folder, name))
                        except FileNotFoundError:  # replaced or removed since the walk saw it
                            continue
                        out[f"{folder}/{name}"] = f"{st.st_size}:{st.st_mtime_ns}"
                return out
            found = self.fs.find(base, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            self._require_bucket()
            return {}
        return {path: _fingerprint(info) for path, info in found.items() if path.startswith(base + "/")}

    def listing_prefix(self, folder: str, prefix: str) -> dict[str, str | None]:
        """The files directly in ``folder`` whose name starts with ``prefix``: path -> fingerprint
        (one prefix LIST request on object stores; a directory scan locally)."""
        try:
            if self.local:
                out = {}
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.name.startswith(prefix):
                            try:
                                st = entry.stat()
                            except FileNotFoundError:
                                continue
                            out[f"{folder}/{entry.name}"] = f"{st.st_size}:{st.st_mtime_ns}"
                return out
            found = self.fs.find(folder, prefix=prefix, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            self._require_bucket()
            return {}
        return {p: _fingerprint(info) for p, info in found.items() if p.rsplit("/", 1)[0] == folder}

    def list_dir(self, path: str) -> list[str]:
        try:
            if self.local:
                return [f"{path}/{name}" for name in os.listdir(path)]
            return list(self.fs.ls(path, detail=False))
        except (FileNotFoundError, NotADirectoryError):
            self._require_bucket()
            return []

    def _require_bucket(self) -> None:
        """An empty prefix is an empty store, but a missing bucket is an error (a typo must not
        read as "no results")."""
        if not self.local:
            bucket = self.root.split("/", 1)[0]
            if not self.fs.exists(bucket):
                raise FileNotFoundError(f"bucket {bucket!r} does not exist")

    # -- reading -------------------------------------------------------------------------
    def fetch(self, paths: Sequence[str]) -> dict[str, bytes]:
        """Whole contents; concurrent requests on async filesystems (s3fs, gcsfs). Files removed
        since they were listed are left out."""
        if not paths:
            return {}
        if self.local:
            out = {}
            for path in paths:
                try:
                    with open(path, "rb") as f:
                        out[path] = f.read()
                except FileNotFoundError:
                    pass
            return out
        got = self.fs.cat(list(paths), on_error="return")
        got = got if isinstance(got, dict) else {paths[0]: got}
        out = {}
        for path, data in got.items():
            if isinstance(data, FileNotFoundError):
                continue
            if isinstance(data, BaseException):
                raise data
            out[path] = data
        return out

    def read_partitions(self, table: str, listing: dict[str, str | None], schema: pa.Schema,
                        keep_source: bool = False) -> tuple[pa.Table, dict[str, dict[str, Source]]]:
        """Rows of every result file in ``listing`` (compacted rows where still valid, the other
        files fetched), cast to ``schema``; with ``keep_source`` a ``_file`` column is kept.
        Also returns, per partition folder, a ``Source`` for each result file read. An
        unreadable compacted file is ignored with a warning (its sources are fetched)."""
        folders, compacts = split_listing(listing)
        parts: list[pa.Table] = []
        read: dict[str, dict[str, Source]] = defaultdict(dict)
        blobs = self.fetch(sorted(compacts[f] for f in compacts if f in folders))
        for folder in sorted(folders):
            path = compacts.get(folder)
            if path not in blobs:
                continue
            try:
                rows, valid = self.parse_compact(table, path, blobs[path], folders[folder], schema)
            except StoreError as err:
                log.warning("warning: ignoring the compacted cache (%s); reading its files one by one; "
                            "`dragsaw compact` rebuilds it", err)
                continue
            parts.append(rows if keep_source else rows.drop_columns([SOURCE_COLUMN]))
            read[folder].update(valid)
        wanted = [f"{folder}/{name}" for folder in sorted(folders) for name in sorted(folders[folder])
                  if name not in read[folder]]
        blobs = self.fetch(wanted)
        items = sorted(blobs.items())

        pooled = len(items) > 8

        def parse(item):
            # Many small files: one file per thread; few (compacted, large): threads within a file.
            rows = self.parse(table, item[0], item[1], schema, use_threads=not pooled)
            if keep_source:
                name = item[0].rsplit("/", 1)[1]
                rows = rows.append_column(SOURCE_COLUMN, pa.array([name] * rows.num_rows, pa.string()))
            return rows

        if pooled:
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                fetched = list(pool.map(parse, items))
        else:
            fetched = [parse(item) for item in items]
        for (path, data), rows in zip(items, fetched):
            folder, name = path.rsplit("/", 1)
            read[folder][name] = Source(folders[folder][name], digest(data), rows.num_rows)
        parts += fetched
        if not parts:
            empty = schema.append(pa.field(SOURCE_COLUMN, pa.string())) if keep_source else schema
            return empty.empty_table(), dict(read)
        return pa.concat_tables(parts), dict(read)

    def compact_sources(self, listing: dict[str, str | None], table: str) -> dict[str, dict[str, Source]]:
        """Per partition folder, the still-valid sources recorded in its compacted file (its
        footer only is read); unreadable compacted files are ignored with a warning."""
        folders, compacts = split_listing(listing)
        out: dict[str, dict[str, Source]] = {}
        for folder, path in sorted(compacts.items()):
            if folder not in folders:
                continue
            try:
                with self.fs.open(path, "rb") as f:
                    meta = pq.read_schema(f).metadata or {}
                self._check_meta(table, path, meta)
                out[folder] = _valid_sources(meta, folders[folder])
            except FileNotFoundError:
                continue
            except Exception as err:  # noqa: BLE001 - a cache must never block a read
                log.warning("warning: ignoring the compacted cache %s: %s", self._where(path), err)
        return out

    def parse(self, table: str, path: str, data: bytes, schema: pa.Schema,
              extra: Sequence[str] = (), use_threads: bool = True) -> pa.Table:
        """One file's rows cast to ``schema`` (plus ``extra`` columns as stored), after checking
        that it is a dragsaw file of ``table`` no newer than this code. Nullable columns the
        file predates (e.g. ``written_json``) read as nulls."""
        pf, meta = self._open(table, path, data)
        try:
            stored = set(pf.schema_arrow.names)
            absent = [f.name for f in schema if f.name not in stored and f.nullable]
            rows = pf.read(columns=[n for n in schema.names if n not in absent] + list(extra),
                           use_threads=use_threads)
            for name in absent:
                rows = rows.append_column(schema.field(name), pa.nulls(rows.num_rows, schema.field(name).type))
            cast = rows.select(schema.names).cast(schema)
            for name in extra:
                cast = cast.append_column(rows.schema.field(name), rows.column(name))
            return cast
        except Exception as err:
            version = meta[VERSION_KEY].decode()
            raise StoreError(f"{self._where(path)} does not match the {table} schema (version {version}): "
                             f"{err}") from None

    def parse_compact(self, table: str, path: str, data: bytes, current: dict[str, str | None],
                      schema: pa.Schema) -> tuple[pa.Table, dict[str, Source]]:
        """Rows of a compacted file whose source file is unchanged (same fingerprint, not None,
        hash recorded), with their ``_file`` column; and a ``Source`` for each of them."""
        _, meta = self._open(table, path, data)
        valid = _valid_sources(meta, current)
        rows = self.parse(table, path, data, schema, extra=[SOURCE_COLUMN])
        names = set(rows.column(SOURCE_COLUMN).unique().to_pylist())
        if names - set(valid):
            rows = rows.filter(pc.field(SOURCE_COLUMN).isin(pa.array(sorted(valid), pa.string())))
        return rows, valid

    def _open(self, table: str, path: str, data: bytes):
        try:
            pf = pq.ParquetFile(pa.BufferReader(data))
        except Exception as err:
            raise StoreError(f"{self._where(path)} is not a readable Parquet file: {err}") from None
        meta = pf.schema_arrow.metadata or {}
        self._check_meta(table, path, meta)
        return pf, meta

    def _check_meta(self, table: str, path: str, meta: dict) -> None:
        if VERSION_KEY not in meta or meta.get(TABLE_KEY) != table.encode():
            raise StoreError(f"{self._where(path)} is not a dragsaw {table!r} file (its metadata lacks "
                             f"{VERSION_KEY.decode()} and {TABLE_KEY.decode()}={table})")
        version = int(meta[VERSION_KEY])
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self._where(path)} was written with schema version {version}, but this "
                             f"dragsaw reads versions up to {SCHEMA_VERSION}: upgrade dragsaw to read this store")

    def _where(self, path: str) -> str:
        return f"result store {self.url}: file {path[len(self.root) + 1:]}"


def to_parquet(table_name: str, table: pa.Table, sources: dict[str, Source] | None = None) -> bytes:
    """Parquet bytes of ``table`` with the dragsaw metadata (and, for a compacted file, the
    fingerprint, hash and row count of each source it holds)."""
    meta = {VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table_name.encode()}
    if sources is not None:
        meta[SOURCES_KEY] = json.dumps({n: s.fingerprint for n, s in sources.items()}, sort_keys=True).encode()
        meta[HASHES_KEY] = json.dumps({n: [s.sha256, s.rows] for n, s in sources.items()},
                                      sort_keys=True).encode()
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), sink)
    return sink.getvalue().to_pybytes()


def split_listing(listing: dict[str, str | None]) -> tuple[dict[str, dict[str, str | None]], dict[str, str]]:
    """(folder -> {result file name -> fingerprint}, folder -> compacted file path)."""
    folders: dict[str, dict[str, str | None]] = defaultdict(dict)
    compacts: dict[str, str] = {}
    for path, fp in listing.items():
        folder, name = path.rsplit("/", 1)
        if name == COMPACT_NAME:
            compacts[folder] = path
        elif name.endswith(".parquet") and name[0] not in "._":
            folders[folder][name] = fp
    return dict(folders), compacts


def _valid_sources(meta: dict, current: dict[str, str | None]) -> dict[str, Source]:
    """The sources a compacted file's metadata records that are unchanged in ``current``."""
    try:
        prints = json.loads(meta.get(SOURCES_KEY, b"{}"))
        hashes = json.loads(meta.get(HASHES_KEY, b"{}"))
    except ValueError:
        return {}
    return {n: Source(fp, hashes[n][0], int(hashes[n][1])) for n, fp in prints.items()
            if fp is not None and current.get(n) == fp and n in hashes}


def _fingerprint(info: dict) -> str | None:
    tag = next((info[k] for k in ("ETag", "etag", "md5Hash", "mtime", "LastModified", "updated")
                if info.get(k) is not None), None)
    return None if tag is None else f"{info.get('size')}:{tag}"
