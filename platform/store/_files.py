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
ever a cache: a stale one costs a request, never a wrong row. Writers never touch it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dragsaw.platform.store._location import StoreError
from dragsaw.platform.store._schema import SCHEMA_VERSION, TABLE_KEY, VERSION_KEY

COMPACT_NAME = "_compact.parquet"
SOURCE_COLUMN = "_file"
SOURCES_KEY = b"dragsaw.sources"


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
                        keep_source: bool = False) -> tuple[pa.Table, dict[str, dict[str, str | None]]]:
        """Rows of every result file in ``listing`` (compacted rows where still valid, the other
        files fetched), cast to ``schema``; with ``keep_source`` a ``_file`` column is kept.
        Also returns, per partition folder, the fingerprints of the result files read."""
        folders: dict[str, dict[str, str | None]] = defaultdict(dict)
        compacts: dict[str, str] = {}
        for path, fp in listing.items():
            folder, name = path.rsplit("/", 1)
            if name == COMPACT_NAME:
                compacts[folder] = path
            elif name.endswith(".parquet") and name[0] not in "._":
                folders[folder][name] = fp
        parts: list[pa.Table] = []
        covered: dict[str, set[str]] = defaultdict(set)
        blobs = self.fetch(sorted(compacts[f] for f in compacts if f in folders))
        for folder in sorted(folders):
            path = compacts.get(folder)
            if path in blobs:
                rows, valid = self.parse_compact(table, path, blobs[path], folders[folder], schema)
                parts.append(rows if keep_source else rows.drop_columns([SOURCE_COLUMN]))
                covered[folder] = valid
        wanted = [f"{folder}/{name}" for folder in sorted(folders) for name in sorted(folders[folder])
                  if name not in covered[folder]]
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
                parts += list(pool.map(parse, items))
        else:
            parts += [parse(item) for item in items]
        read = {folder: {n: fp for n, fp in files.items() if n in covered[folder]
                         or f"{folder}/{n}" in blobs} for folder, files in folders.items()}
        if not parts:
            empty = schema.append(pa.field(SOURCE_COLUMN, pa.string())) if keep_source else schema
            return empty.empty_table(), read
        return pa.concat_tables(parts), read

    def parse(self, table: str, path: str, data: bytes, schema: pa.Schema,
              extra: Sequence[str] = (), use_threads: bool = True) -> pa.Table:
        """One file's rows cast to ``schema`` (plus ``extra`` columns as stored), after checking
        that it is a dragsaw file of ``table`` no newer than this code."""
        pf, meta = self._open(table, path, data)
        try:
            rows = pf.read(columns=list(schema.names) + list(extra), use_threads=use_threads)
            cast = rows.select(schema.names).cast(schema)
            for name in extra:
                cast = cast.append_column(rows.schema.field(name), rows.column(name))
            return cast
        except Exception as err:
            version = meta[VERSION_KEY].decode()
            raise StoreError(f"{self._where(path)} does not match the {table} schema (version {version}): "
                             f"{err}") from None

    def parse_compact(self, table: str, path: str, data: bytes, current: dict[str, str | None],
                      schema: pa.Schema) -> tuple[pa.Table, set[str]]:
        """Rows of a compacted file whose source file is unchanged (same fingerprint, not None),
        with their ``_file`` column; and the names of those sources."""
        _, meta = self._open(table, path, data)
        try:
            sources = json.loads(meta.get(SOURCES_KEY, b"{}"))
        except ValueError:
            sources = {}
        valid = {n for n, fp in sources.items() if fp is not None and current.get(n) == fp}
        rows = self.parse(table, path, data, schema, extra=[SOURCE_COLUMN])
        if len(valid) < len(sources):
            rows = rows.filter(pc.field(SOURCE_COLUMN).isin(pa.array(sorted(valid), pa.string())))
        return rows, valid

    def _open(self, table: str, path: str, data: bytes):
        try:
            pf = pq.ParquetFile(pa.BufferReader(data))
        except Exception as err:
            raise StoreError(f"{self._where(path)} is not a readable Parquet file: {err}") from None
        meta = pf.schema_arrow.metadata or {}
        if VERSION_KEY not in meta or meta.get(TABLE_KEY) != table.encode():
            raise StoreError(f"{self._where(path)} is not a dragsaw {table!r} file (its metadata lacks "
                             f"{VERSION_KEY.decode()} and {TABLE_KEY.decode()}={table})")
        version = int(meta[VERSION_KEY])
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self._where(path)} was written with schema version {version}, but this "
                             f"dragsaw reads versions up to {SCHEMA_VERSION}: upgrade dragsaw to read this store")
        return pf, meta

    def _where(self, path: str) -> str:
        return f"result store {self.url}: file {path[len(self.root) + 1:]}"


def to_parquet(table_name: str, table: pa.Table, sources: dict[str, str | None] | None = None) -> bytes:
    """Parquet bytes of ``table`` with the dragsaw metadata (and, for a compacted file, its sources)."""
    meta = {VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table_name.encode()}
    if sources is not None:
        meta[SOURCES_KEY] = json.dumps(sources, sort_keys=True).encode()
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), sink)
    return sink.getvalue().to_pybytes()


def _fingerprint(info: dict) -> str | None:
    tag = next((info[k] for k in ("ETag", "etag", "md5Hash", "mtime", "LastModified", "updated")
                if info.get(k) is not None), None)
    return None if tag is None else f"{info.get('size')}:{tag}"
