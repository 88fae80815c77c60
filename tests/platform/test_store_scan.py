"""Reads in bounded memory (issue 9): ``ResultStore.scan`` yields a table's rows as chunks of
whole files, from per-trial files and compacted files alike; a compacted file is read row
group by row group and checked per source, so a cache damaged part-way through still gives
every row exactly once; compaction streams into its file; the leaderboard computed chunk by
chunk equals the one computed from one chunk; stores written before later columns read."""

from __future__ import annotations

import logging
import math
import os
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dragsaw.platform.store._files as files_module
from dragsaw.platform.cli import main
from dragsaw.platform.leaderboard import leaderboard
from dragsaw.platform.leaderboard._hierarchical import _counts
from dragsaw.platform.store import ResultStore
from dragsaw.platform.store._files import COMPACT_NAME, to_parquet

from .test_leaderboard import write_hand
from .test_store import make_cases, make_epochs, make_trial, raw_files, raw_put

PART = "cases/experiment=exp1/dataset=isic2016"


def write_trials(store: ResultStore, ids: range, start: int = 0) -> None:
    """Trials t{i} with 1..6 cases (2..12 rows): files of different sizes."""
    for i in ids:
        store.write_trial(make_trial(f"t{i:02d}", seed=i), make_epochs(), make_cases(n=1 + (i + start) % 6))


def sorted_rows(table: pa.Table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in table.to_pylist())


@pytest.mark.parametrize("layout", ["files", "compacted", "mixed"])
def test_scan_gives_every_file_whole_once_in_bounded_chunks(store_url, layout):
    store = ResultStore(store_url)
    write_trials(store, range(12))
    if layout != "files":
        store.compact("exp1")
    if layout == "mixed":  # new trials after the compaction, and one compacted trial rewritten
        write_trials(store, range(12, 16))
        store.write_trial(make_trial("t03", attempt=2, seed=3), make_epochs(), make_cases(n=5))
    whole, sources = store.load("cases", "exp1")
    biggest = max(Counter(whole.column("trial_id").to_pylist()).values())
    scan = store.scan("cases", "exp1", max_rows=7)
    chunks = list(scan)
    assert len(chunks) > 3
    seen: Counter[str] = Counter()
    for chunk in chunks:
        assert chunk.schema == whole.schema
        assert chunk.num_rows < 7 + biggest  # about max_rows, never more than one file beyond it
        seen.update(set(chunk.column("trial_id").to_pylist()))
    assert set(seen.values()) == {1}  # a file's rows are never split between chunks
    assert sorted_rows(pa.concat_tables(chunks)) == sorted_rows(whole)
    assert scan.sources == sources
    with pytest.raises(RuntimeError, match="iterated once"):
        list(scan)
    with pytest.raises(ValueError, match="`max_rows` must be >= 1, but got 0"):
        store.scan("cases", max_rows=0)


def compacted_in_row_groups(store: ResultStore, monkeypatch, rows_per_group: int) -> str:
    """Compact with small chunks (one row group each); returns the compacted file's path."""
    monkeypatch.setattr(files_module, "CHUNK_ROWS", rows_per_group)
    assert store.compact("exp1")["cases"] == 1
    monkeypatch.undo()
    return os.path.join(store.url, PART, COMPACT_NAME)


def test_compaction_streams_in_row_groups_and_reads_back_the_same(local_store_url, monkeypatch):
    store = ResultStore(local_store_url)
    write_trials(store, range(12))
    before, sources = store.load("cases", "exp1")
    path = compacted_in_row_groups(store, monkeypatch, 10)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups >= 5 and meta.num_rows == before.num_rows
    after, read = store.load("cases", "exp1")
    assert after.equals(before) and read == sources  # compacted rows in the files' order, hashes from the footer


def _damage(path: str, row_group: int, where: str) -> None:
    """Overwrite 4 bytes of one row group's ``tp`` column (the footer stays readable): in its
    page header, or in its last values (which decode without error: only the page checksum
    tells them from the numbers written)."""
    group = pq.ParquetFile(path).metadata.row_group(row_group)
    column = next(group.column(i) for i in range(group.num_columns) if group.column(i).path_in_schema == "tp")
    start = column.dictionary_page_offset or column.data_page_offset
    offset = start + 3 if where == "header" else start + column.total_compressed_size - 4
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(4)
        f.seek(offset)
        f.write(bytes(b ^ 0x5A for b in old))


@pytest.mark.parametrize("where", ["header", "values"])
def test_cache_damaged_part_way_gives_every_row_once(local_store_url, monkeypatch, caplog, capsys, where):
    """Rows of the row groups before the damage are already out when the read fails: the
    files not yet given are then fetched one by one, none twice, none lost."""
    store = ResultStore(local_store_url)
    write_trials(store, range(12))
    before = sorted_rows(store.read("cases", "exp1"))
    path = compacted_in_row_groups(store, monkeypatch, 10)
    _damage(path, pq.ParquetFile(path).metadata.num_row_groups - 2, where)
    with caplog.at_level(logging.WARNING, logger="dragsaw.store"):
        chunks = list(store.scan("cases", "exp1", max_rows=10))
        assert sorted_rows(store.read("cases", "exp1")) == before
        assert store.compact("exp1")["cases"] == 0  # up to date by its footer: a plain compaction keeps it
        assert main(["compact", "--store", local_store_url, "--experiment", "exp1"]) == 0  # checks: rebuilt
    assert "the compacted cache is damaged" in caplog.text
    assert "'cases': 1" in capsys.readouterr().out
    assert "ignoring the compacted cache" in caplog.text and COMPACT_NAME in caplog.text
    assert len(chunks) > 2 and sorted_rows(pa.concat_tables(chunks)) == before
    assert sorted_rows(store.read("cases", "exp1")) == before
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dragsaw.store"):
        assert sorted_rows(store.read("cases", "exp1")) == before
    assert caplog.text == ""


def test_cache_with_other_rows_than_it_records_is_ignored(store_url, caplog):
    """A compacted file whose rows of a source are not as many as its footer records, or come
    twice, is not what compaction wrote: ignored, never half-trusted (nothing counted twice)."""
    store = ResultStore(store_url)
    write_trials(store, range(6))
    before = sorted_rows(store.read("cases", "exp1"))
    store.compact("exp1")
    key = f"{PART}/{COMPACT_NAME}"
    data = raw_files(store_url)[key]
    compacted = pq.read_table(pa.BufferReader(data))
    meta = {k: v for k, v in pq.read_metadata(pa.BufferReader(data)).metadata.items() if k != b"ARROW:schema"}
    assert b"dragsaw.sources" in meta  # the footer's record of the sources
    dropped = compacted.slice(1)  # one row of the first source missing
    raw_put(store_url, key, _with_footer(dropped, meta))
    with caplog.at_level(logging.WARNING, logger="dragsaw.store"):
        assert sorted_rows(store.read("cases", "exp1")) == before
    assert "holds 1 rows of t00.parquet, not the 2 it records" in caplog.text
    caplog.clear()
    twice = pa.concat_tables([compacted, compacted.slice(0, 2)])  # t00's two rows again at the end
    raw_put(store_url, key, _with_footer(twice, meta))
    with caplog.at_level(logging.WARNING, logger="dragsaw.store"):
        assert sorted_rows(store.read("cases", "exp1")) == before
    assert "holds the rows of t00.parquet in two places" in caplog.text


def _with_footer(table: pa.Table, meta) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), sink)
    return sink.getvalue().to_pybytes()


def _same(a: list[dict], b: list[dict]) -> bool:
    def norm(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else v
    return [{k: norm(v) for k, v in r.items()} for r in a] == [{k: norm(v) for k, v in r.items()} for r in b]


@pytest.mark.parametrize("compacted", [False, True], ids=["files", "compacted"])
def test_leaderboard_chunk_by_chunk_equals_one_chunk(local_store_url, monkeypatch, compacted):
    """Scores, per-case values and tests do not depend on how the case rows were chunked."""
    store = ResultStore(local_store_url)
    write_hand(store)
    write_hand(store, dataset="msd_heart", convention="foreground")
    if compacted:
        store.compact("hand")
    kinds = [dict(baseline="A"), dict(baseline="A", convention="foreground", metric="jaccard")]
    whole = [leaderboard(store, **kw) for kw in kinds]
    monkeypatch.setattr(files_module, "CHUNK_ROWS", 3)  # a chunk per file
    assert len(list(store.scan("cases", "hand"))) == 12  # the scans below are chunked
    chunked = [leaderboard(store, **kw) for kw in kinds]
    for a, b in zip(whole, chunked):
        assert len(a) == 6 and _same(a, b)
        assert any(r["p_value"] is not None for r in a)


def test_store_written_before_later_columns_reads(local_store_url):
    """Trials files without ``fraction`` and ``written_json`` (written before those columns):
    read as nulls, compacted, counted by leaderboards (under fraction None), not flagged."""
    store = ResultStore(local_store_url)
    for i in range(4):
        store.write_trial(make_trial(f"t{i}", seed=i // 2, variant="AB"[i % 2]), make_epochs(), make_cases())
    for folder, _, names in os.walk(os.path.join(local_store_url, "trials")):
        for name in names:
            path = os.path.join(folder, name)
            old = pq.read_table(path).drop_columns(["fraction", "written_json"])
            with open(path, "wb") as f:
                f.write(to_parquet("trials", old))
    for _ in range(2):
        rows = store.read("trials")
        assert rows.column("fraction").null_count == 4 and rows.column("written_json").null_count == 4
        board = {r["variant"]: r for r in leaderboard(store, baseline="A")}
        assert board["A"]["fraction"] is None and board["B"]["n"] == 2
        assert store.incomplete("exp1") == []
        store.compact("exp1")


def test_replicate_counts_same_either_way():
    """The bootstrap's case counts, per replicate (large case sets) or in one flat bincount."""
    rng = np.random.default_rng(1)
    for n in (10, 5000):
        draws = rng.integers(0, n, size=(7, n))
        flat = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float32)
        assert np.array_equal(_counts(draws.copy(), n), flat)
