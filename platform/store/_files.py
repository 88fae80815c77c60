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
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dragsaw.platform.store._location import StoreError
from dragsaw.platform.store._schema import SCHEMA_VERSION, SCHEMAS, TABLE_KEY, VERSION_KEY

COMPACT_NAME = "_compact.parquet"
#: Rows per table a scan yields (whole files: more when one file alone is larger), and per
#: row group of a compacted file. Measured on 10,100 trials x 200 rows: 1M rows peak at
#: 0.93 GiB, 256k at 0.58 GiB, equally fast.
CHUNK_ROWS = 1 << 18
#: Bytes and files fetched at once by a scan (compressed; Arrow holds ~5-10x as much).
GROUP_BYTES = 32 * 2**20
GROUP_FILES = 512
#: A remote compacted file up to this size is fetched in one request, a larger one by blocks.
WHOLE_FETCH_BYTES = 128 * 2**20
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

    def write_compact(self, table: str, folder: str, listing: dict[str, str | None], schema: pa.Schema) -> bool:
        """Stream the rows of the result files in ``listing`` (one partition ``folder``) into a
        new ``{folder}/_compact.parquet``: written to a temp file chunk by chunk, its sources'
        fingerprints and hashes added to the footer, then renamed into place (locally) or
        uploaded as one object. Returns False (nothing written) when there are no rows."""
        read: dict[str, dict[str, Source]] = {}
        fd, temp = tempfile.mkstemp(prefix=".compact-", suffix=".tmp", dir=folder if self.local else None)
        os.close(fd)
        writer: pq.ParquetWriter | None = None
        try:
            for rows in self.scan_partitions(table, listing, schema, read, keep_source=True):
                if writer is None:
                    meta = {VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table.encode()}
                    # Page checksums: a damaged cache fails its read (and is ignored), never
                    # decodes to other numbers; per-trial files are checked by their sha256.
                    writer = pq.ParquetWriter(temp, rows.schema.with_metadata(meta), write_page_checksum=True)
                writer.write_table(rows)
            sources = read.get(folder, {})
            if writer is None or not sources:
                return False
            writer.add_key_value_metadata({k.decode(): v.decode() for k, v in _source_meta(sources).items()})
            writer.close()
            writer = None
            if self.local:
                with open(temp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(temp, f"{folder}/{COMPACT_NAME}")
            else:
                self.fs.put_file(temp, f"{folder}/{COMPACT_NAME}")
            return True
        finally:
            if writer is not None:
                writer.close()
            if os.path.exists(temp):
                os.remove(temp)

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
        """Every row of ``scan_partitions`` in one table (with ``keep_source`` its ``_file``
        column), and per partition folder a ``Source`` for each result file read."""
        read: dict[str, dict[str, Source]] = defaultdict(dict)
        parts = list(self.scan_partitions(table, listing, schema, read, keep_source))
        if not parts:
            empty = schema.append(pa.field(SOURCE_COLUMN, pa.string())) if keep_source else schema
            return empty.empty_table(), dict(read)
        return pa.concat_tables(parts), dict(read)

    def scan_partitions(self, table: str, listing: dict[str, str | None], schema: pa.Schema,
                        read: dict[str, dict[str, Source]], keep_source: bool = False,
                        max_rows: int | None = None) -> Iterator[pa.Table]:
        """Rows of every result file in ``listing`` (compacted rows where still valid, the other
        files fetched), cast to ``schema`` (with ``keep_source`` plus a ``_file`` column), as
        tables of about ``max_rows`` (default ``CHUNK_ROWS``) rows, each holding whole files
        only (a file's rows are never split across two tables; one larger file is one table).
        Memory stays bounded by a chunk and one fetch group (``GROUP_BYTES``), whatever the
        partition's size.

        ``read`` (folder -> {file name: Source}) gains a file's ``Source`` when its rows are
        yielded, so a consumer that stops early knows what it saw. An unreadable compacted
        file is ignored with a warning, also part-way through: its files not yet yielded are
        fetched one by one."""
        folders, compacts = split_listing(listing)
        out = _Chunker(CHUNK_ROWS if max_rows is None else max_rows, read)
        for folder in sorted(folders):
            path = compacts.get(folder)
            if path is None:
                continue
            yield from out.flush()  # pending rows are then this file's only: a failure drops no others
            try:
                yield from self._scan_compact(table, path, listing.get(path), folders[folder], schema,
                                              keep_source, out, folder)
            except FileNotFoundError:
                out.drop_pending()  # removed since listed (a compactor replaced it): its files are fetched
            except StoreError as err:
                log.warning("warning: ignoring the compacted cache (%s); reading its files one by one; "
                            "`dragsaw compact` rebuilds it", err)
                out.drop_pending()
        yield from out.flush()
        wanted = [(f"{folder}/{name}", folders[folder][name]) for folder in sorted(folders)
                  for name in sorted(folders[folder]) if name not in read.get(folder, {})]
        for group in _groups_by_size(wanted):
            blobs = self.fetch([p for p, _ in group])
            items = sorted(blobs.items())
            pooled = len(items) > 8

            def parse(item: tuple[str, bytes]) -> tuple[pa.Table, str]:
                # Many small files: one file per thread; few (large): threads within a file.
                rows = self.parse(table, item[0], item[1], schema, use_threads=not pooled)
                if keep_source:
                    name = item[0].rsplit("/", 1)[1]
                    rows = rows.append_column(SOURCE_COLUMN, pa.array([name] * rows.num_rows, pa.string()))
                return rows, digest(item[1])

            if pooled:
                with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                    parsed = list(pool.map(parse, items))
            else:
                parsed = [parse(item) for item in items]
            del blobs
            for (path, _), (rows, sha) in zip(items, parsed):
                folder, name = path.rsplit("/", 1)
                yield from out.add(rows, {(folder, name): Source(folders[folder][name], sha, rows.num_rows)})
            del items, parsed
        yield from out.flush()

    def verify_compact(self, table: str, folder: str, listing: dict[str, str | None]) -> bool:
        """Whether ``{folder}/_compact.parquet`` reads through whole (page checksums, rows per
        source as recorded); a failure is logged as a warning."""
        path = f"{folder}/{COMPACT_NAME}"
        folders, _ = split_listing(listing)
        sink = _Chunker(CHUNK_ROWS, {})
        try:
            for _ in self._scan_compact(table, path, listing.get(path), folders.get(folder, {}), SCHEMAS[table],
                                        False, sink, folder):
                pass
            return True
        except (StoreError, FileNotFoundError) as err:
            log.warning("warning: the compacted cache is damaged (%s); rebuilding it", err)
            return False

    def _scan_compact(self, table: str, path: str, fingerprint: str | None, current: dict[str, str | None],
                      schema: pa.Schema, keep_source: bool, out: _Chunker, folder: str) -> Iterator[pa.Table]:
        """The still-valid rows of one compacted file, batch by batch, through ``out``. Each
        source's rows must be contiguous and as many as the file records (StoreError otherwise:
        the file is not what compaction wrote)."""
        try:
            pf = self._open_stream(path, fingerprint)
            meta = pf.metadata.metadata or {}
            self._check_meta(table, path, meta)
            valid = _valid_sources(meta, current)
            if not valid:
                return
            stored = set(pf.schema_arrow.names)
            if SOURCE_COLUMN not in stored:
                raise StoreError(f"{self._where(path)} has no {SOURCE_COLUMN} column")
            columns = [n for n in schema.names if n in stored] + [SOURCE_COLUMN]
            keep = pa.array(sorted(valid), pa.string())
            done: set[str] = set()
            carry: pa.Table | None = None
            for batch in pf.iter_batches(batch_size=out.max_rows, columns=columns, use_threads=True):
                rows = pa.Table.from_batches([batch])
                rows = rows.filter(pc.field(SOURCE_COLUMN).isin(keep))
                if carry is not None:
                    rows = pa.concat_tables([carry, rows])
                if not rows.num_rows:
                    continue
                runs = _runs(rows.column(SOURCE_COLUMN))
                tail = runs[-1][1]  # the last source may go on in the next batch
                carry = rows.slice(tail)
                yield from self._emit(rows.slice(0, tail), runs[:-1], path, schema, keep_source, valid, done,
                                      out, folder)
            if carry is not None and carry.num_rows:
                yield from self._emit(carry, _runs(carry.column(SOURCE_COLUMN)), path, schema, keep_source, valid,
                                      done, out, folder)
        except (StoreError, FileNotFoundError):
            raise
        except Exception as err:  # unreadable, truncated or corrupt, maybe part-way through
            raise StoreError(f"{self._where(path)} is not a readable Parquet file: {err}") from None

    def _emit(self, rows: pa.Table, runs: list[tuple[str, int, int]], path: str, schema: pa.Schema,
              keep_source: bool, valid: dict[str, Source], done: set[str], out: _Chunker, folder: str
              ) -> Iterator[pa.Table]:
        """Hand ``rows`` (the whole sources ``runs``: name, start, stop) to ``out`` after checking
        each source's row count against the compacted file's record."""
        if not rows.num_rows:
            return
        sources = {}
        for name, begin, stop in runs:
            if name in done:
                raise StoreError(f"{self._where(path)} holds the rows of {name} in two places")
            if stop - begin != valid[name].rows:
                raise StoreError(f"{self._where(path)} holds {stop - begin} rows of {name}, not the "
                                 f"{valid[name].rows} it records")
            sources[(folder, name)] = valid[name]
            done.add(name)
        yield from out.add(_conform(rows, schema, [SOURCE_COLUMN] if keep_source else []), sources)

    def _open_stream(self, path: str, fingerprint: str | None) -> pq.ParquetFile:
        """A compacted file opened for reading row groups on demand: by path locally, fetched
        whole when small, else through a buffered remote file."""
        if self.local:
            source = path
        elif (size := _size(fingerprint)) is not None and size <= WHOLE_FETCH_BYTES:
            source = pa.BufferReader(self.fs.cat_file(path))
        else:
            source = self.fs.open(path, "rb", block_size=16 * 2**20)
        return pq.ParquetFile(source, page_checksum_verification=True)

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
                    meta = pq.read_metadata(f).metadata or {}
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
            rows = pf.read(columns=[n for n in schema.names if n in stored] + list(extra), use_threads=use_threads)
            return _conform(rows, schema, extra)
        except Exception as err:
            version = meta[VERSION_KEY].decode()
            raise StoreError(f"{self._where(path)} does not match the {table} schema (version {version}): "
                             f"{err}") from None

    def _open(self, table: str, path: str, data: bytes):
        try:
            pf = pq.ParquetFile(pa.BufferReader(data))
        except Exception as err:
            raise StoreError(f"{self._where(path)} is not a readable Parquet file: {err}") from None
        meta = pf.metadata.metadata or {}
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
        meta.update(_source_meta(sources))
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), sink)
    return sink.getvalue().to_pybytes()


def _source_meta(sources: dict[str, Source]) -> dict[bytes, bytes]:
    """A compacted file's footer record of its sources: fingerprints, and (sha256, rows)."""
    return {SOURCES_KEY: json.dumps({n: s.fingerprint for n, s in sources.items()}, sort_keys=True).encode(),
            HASHES_KEY: json.dumps({n: [s.sha256, s.rows] for n, s in sources.items()}, sort_keys=True).encode()}


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


def _conform(rows: pa.Table, schema: pa.Schema, extra: Sequence[str] = ()) -> pa.Table:
    """``rows`` cast to ``schema`` (nullable columns the file predates, e.g. ``written_json``,
    as nulls), then the ``extra`` columns as stored."""
    absent = [f for f in schema if f.name not in rows.schema.names]
    required = [f.name for f in absent if not f.nullable]
    if required:
        raise ValueError(f"required columns {required} are missing")
    for f in absent:
        rows = rows.append_column(f, pa.nulls(rows.num_rows, f.type))
    cast = rows.select(schema.names).cast(schema)
    for name in extra:
        cast = cast.append_column(rows.schema.field(name), rows.column(name))
    return cast


def _runs(column: pa.ChunkedArray) -> list[tuple[str, int, int]]:
    """(value, start, stop) of each run of equal values in a string column, in order."""
    codes = pc.call_function("dictionary_encode", [column.combine_chunks()])
    index = codes.indices.to_numpy(zero_copy_only=False)
    names = codes.dictionary.to_pylist()
    starts = np.flatnonzero(np.concatenate([[True], index[1:] != index[:-1]])) if index.size else np.array([], int)
    stops = np.append(starts[1:], index.size)
    return [(names[index[a]], int(a), int(b)) for a, b in zip(starts.tolist(), stops.tolist())]


class _Chunker:
    """Gathers whole files' rows into tables of about ``max_rows`` rows; records each file's
    ``Source`` in ``read`` when its rows leave."""

    def __init__(self, max_rows: int, read: dict[str, dict[str, Source]]):
        self.max_rows, self.read = max_rows, read
        self._parts: list[pa.Table] = []
        self._sources: dict[tuple[str, str], Source] = {}
        self._rows = 0

    def add(self, rows: pa.Table, sources: dict[tuple[str, str], Source]) -> Iterator[pa.Table]:
        self._parts.append(rows)
        self._sources.update(sources)
        self._rows += rows.num_rows
        if self._rows >= self.max_rows:
            yield from self.flush()

    def flush(self) -> Iterator[pa.Table]:
        if not self._sources:
            return
        parts, sources = self._parts, self._sources
        self.drop_pending()
        for (folder, name), source in sources.items():
            self.read.setdefault(folder, {})[name] = source
        yield pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def drop_pending(self) -> None:
        self._parts, self._sources, self._rows = [], {}, 0


def _size(fingerprint: str | None) -> int | None:
    """The size in bytes a listing fingerprint ("size:tag") records, or None."""
    head = (fingerprint or "").split(":", 1)[0]
    return int(head) if head.isdigit() else None


def _groups_by_size(files: list[tuple[str, str | None]]) -> Iterator[list[tuple[str, str | None]]]:
    """(path, fingerprint) pairs in groups of at most ``GROUP_FILES`` files and about
    ``GROUP_BYTES`` bytes (a file of unknown size counts as 1 MiB): what one fetch holds."""
    group: list[tuple[str, str | None]] = []
    size = 0
    for path, fingerprint in files:
        n = _size(fingerprint) or 2**20
        if group and (size + n > GROUP_BYTES or len(group) >= GROUP_FILES):
            yield group
            group, size = [], 0
        group.append((path, fingerprint))
        size += n
    if group:
        yield group
