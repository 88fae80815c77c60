"""Completeness and caches (issue 9): a completed trial whose data is missing or replaced is
named by every reader (leaderboard and report exit 2, status lists it, a resume re-runs it),
never silently dropped; a corrupt or stale ``_compact.parquet`` never blocks anything; a
trial's start reads its own records only. Run against a local folder and real S3 servers."""

from __future__ import annotations

import logging
import os

import pytest

from dragsaw.platform.cli import main
from dragsaw.platform.launch.status import status
from dragsaw.platform.leaderboard import leaderboard
from dragsaw.platform.store import IncompleteTrials, ResultStore

from .test_leaderboard import HAND, write_hand
from .test_store import make_cases, make_epochs, make_trial, raw_files, raw_put

CASES = "cases/experiment=hand/dataset=isic2016"
GONE = "isic2016-B-s1"


def raw_delete(url: str, key: str) -> None:
    if url.startswith("s3://"):
        from .test_store import _s3

        client, bucket, prefix = _s3(url)
        client.delete_object(Bucket=bucket, Key=f"{prefix}/{key}")
        return
    os.remove(os.path.join(url, key))


@pytest.mark.parametrize("compacted", [False, True], ids=["files", "compacted"])
def test_missing_cases_file_is_named_never_dropped(store_url, compacted, capsys):
    """The issue's case: deleting one completed trial's cases file used to change the
    leaderboard silently (n 2 -> 1, another mean, exit 0)."""
    store = ResultStore(store_url)
    write_hand(store)
    before = {r["variant"]: r for r in leaderboard(store, baseline="A")}
    if compacted:
        store.compact("hand")
    raw_delete(store_url, f"{CASES}/{GONE}.parquet")
    with pytest.raises(IncompleteTrials, match=rf"1 completed trial.*hand/{GONE} \(cases file missing\)"):
        leaderboard(store, baseline="A")
    capsys.readouterr()
    assert main(["leaderboard", "--store", store_url, "--baseline", "A"]) == 2
    err = capsys.readouterr().err
    assert f"hand/{GONE} (cases file missing)" in err and "--exclude-incomplete" in err
    assert main(["leaderboard", "--store", store_url, "--baseline", "A", "--exclude-incomplete"]) == 0
    out = capsys.readouterr()
    assert f"excluded incomplete trial hand/{GONE} (attempt 1): cases file missing" in out.err
    after = {r["variant"]: r for r in leaderboard(store, baseline="A", exclude_incomplete=True)}
    assert (before["B"]["n"], after["B"]["n"], after["A"]["n"]) == (2, 1, 2)
    line = status(store_url, "hand")
    assert f"hand: 5 completed, 1 incomplete ({GONE}: data missing or changed" in line, line
    assert GONE not in store.completed("hand") and len(store.completed("hand")) == 5  # a resume re-runs it
    assert main(["report", "--store", store_url, "--experiment", "hand", "--out", "unused"]) == 2
    assert f"hand/{GONE} (cases file missing)" in capsys.readouterr().err


def test_replaced_cases_file_is_named(store_url):
    """A cases file rewritten with other rows (a later attempt that crashed before its trials
    row, a copy from elsewhere) no longer matches the completed attempt's record."""
    store = ResultStore(store_url)
    write_hand(store, variants={"A": HAND["A"], "B": HAND["B"]})
    files = raw_files(store_url)
    raw_put(store_url, f"{CASES}/isic2016-A-s0.parquet", files[f"{CASES}/isic2016-B-s0.parquet"])
    with pytest.raises(IncompleteTrials, match=r"hand/isic2016-A-s0 \(cases file differs from what the attempt "
                                               r"wrote \(sha256\)\)"):
        leaderboard(store)
    assert main(["leaderboard", "--store", store_url]) == 2


def test_completed_trial_without_cases_is_complete(store_url):
    """A completed attempt that wrote no cases recorded rows 0: nothing is missing."""
    store = ResultStore(store_url)
    store.write_trial(make_trial("t0"), make_epochs(), [])
    assert store.incomplete("exp1") == [] and store.completed("exp1") == {"t0"}
    raw_delete(store_url, "epochs/experiment=exp1/dataset=isic2016/t0.parquet")
    assert store.incomplete("exp1") == [{"experiment": "exp1", "dataset": "isic2016", "trial_id": "t0",
                                         "attempt": 1, "problems": ["epochs file missing"]}]


def test_corrupt_compacted_file_is_ignored_and_rebuilt(store_url, caplog):
    store = ResultStore(store_url)
    for i in range(3):
        store.write_trial(make_trial(f"t{i}", seed=i), make_epochs(), make_cases())
    expected = {name: store.read(name).num_rows for name in ("trials", "epochs", "cases")}
    store.compact("exp1")
    for table in ("trials", "cases"):
        raw_put(store_url, f"{table}/experiment=exp1/dataset=isic2016/_compact.parquet", b"PAR1 garbage")
    with caplog.at_level(logging.WARNING, logger="dragsaw.store"):
        assert {name: store.read(name).num_rows for name in expected} == expected
        assert "ignoring the compacted cache" in caplog.text and "_compact.parquet" in caplog.text
        assert status(store_url, "exp1").startswith("exp1: 3 completed, 0 failed")
        assert store.incomplete("exp1") == []
        assert store.compact("exp1") == {"epochs": 0, "cases": 1, "trials": 1}  # rebuilt
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dragsaw.store"):
        assert {name: store.read(name).num_rows for name in expected} == expected
        assert store.compact("exp1") == {"epochs": 0, "cases": 0, "trials": 0}
    assert caplog.text == ""
    assert main(["compact", "--store", store_url, "--experiment", "exp1"]) == 0


def test_trial_start_reads_its_own_records_only(store_url, monkeypatch):
    """``attempts_of`` lists one prefix and fetches that trial's files: names sharing the
    prefix (t1 and t10, t1-ab) are not its attempts, and no other file is read."""
    store = ResultStore(store_url)
    for tid, attempt in (("t1", 1), ("t1", 2), ("t10", 1), ("t1-ab", 1), ("t2", 1)):
        store.write_trial(make_trial(tid, attempt=attempt), [], [])
    store.compact("exp1")
    fetched: list[str] = []
    real = store._files.fetch
    monkeypatch.setattr(store._files, "fetch", lambda paths: fetched.extend(paths) or real(paths))
    rows = store.attempts_of("exp1", "isic2016", "t1")
    assert rows.column("trial_id").to_pylist() == ["t1", "t1"] and rows.column("attempt").to_pylist() == [1, 2]
    assert sorted(p.rsplit("/", 1)[1] for p in fetched) == ["t1-a1.parquet", "t1-a2.parquet"]
    assert store.attempts_of("exp1", "isic2016", "t3").num_rows == 0
    assert store.attempts_of("nope", "isic2016", "t1").num_rows == 0


def test_compaction_while_trials_are_written(store_url):
    """The driver's periodic compaction (every N results or T seconds, in the background) while
    writers keep adding trials: every read sees every trial exactly once, the last compacted
    file covers exactly the files there are, and a later compact has nothing to do."""
    from dragsaw.platform.store.compactor import Compactor

    store = ResultStore(store_url)
    compactor = Compactor(store, "exp1", every_n=3, every_s=3600)
    started = 0
    for i in range(12):
        store.write_trial(make_trial(f"t{i:02d}", seed=i), make_epochs(), make_cases())
        started += compactor.note()
        assert store.read("trials").num_rows == i + 1
    compactor.close()
    assert started >= 2 and compactor.runs == started
    assert store.read("cases").num_rows == 12 * 6 and store.incomplete("exp1") == []
    store.compact("exp1")
    assert store.compact("exp1") == {"epochs": 0, "cases": 0, "trials": 0}
    timed = Compactor(store, "exp1", every_n=1000, every_s=1e-6)
    assert timed.note() is True
    timed.close()
    with pytest.raises(ValueError, match="every_n"):
        Compactor(store, "exp1", every_n=0)
