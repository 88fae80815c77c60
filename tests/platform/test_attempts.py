"""Every attempt is a row (issue 8, point 6): ``running`` when it starts, its outcome when it
ends, ``lost`` when its worker died; the schema refuses impossible rows; ``dragsaw status``
counts trials, attempts, failures and lost attempts, and only reads (a read-only store works)."""

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dragsaw.platform.launch.status import count_attempts
from dragsaw.platform.launch.trainable import mark_lost
from dragsaw.platform.store import ResultStore

from .test_store import T0, make_cases, make_epochs, make_trial
from .unprivileged import read_only, unprivileged, writable

DRAGSAW = str(Path(sys.executable).with_name("dragsaw"))


# -- the schema refuses impossible rows ---------------------------------------------------------
@pytest.mark.parametrize("change, match", [
    ({"attempt": 0}, r"`attempt` must be >= 1, but got 0"),
    ({"attempt": -3}, r"`attempt` must be >= 1, but got -3"),
    ({"status": "exploded"}, r"`status` must be one of .*'running', 'lost'.*'exploded'"),
    ({"ended_at": T0 - dt.timedelta(seconds=1)}, r"`ended_at` must not be before `started_at`"),
    ({"metrics": {"dice": 1.5}}, r"metrics\['dice'\]` must be in \[0, 1\]"),
    ({"metrics": {"jaccard": -0.1}}, r"metrics\['jaccard'\]` must be in \[0, 1\]"),
    ({"config": {"data": {"fraction": 0.0}}}, r"fraction'\]` must be in \(0, 1\]"),
])
def test_impossible_trial_rows_are_refused(tmp_path, change, match):
    store = ResultStore(str(tmp_path / "results"))
    with pytest.raises(ValueError, match=match):
        store.write_trial(make_trial(**change), make_epochs(), make_cases())
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("field, value, match", [
    ("tp", -1, r"cases\[2\]\['tp'\]` must be >= 0, but got -1"),
    ("fp", -5, r"cases\[2\]\['fp'\]` must be >= 0, but got -5"),
    ("fn", -1, r"cases\[2\]\['fn'\]` must be >= 0"),
    ("tn", -1, r"cases\[2\]\['tn'\]` must be >= 0"),
    ("dice", 1.01, r"cases\[2\]\['dice'\]` must be in \[0, 1\]"),
    ("accuracy", -0.5, r"cases\[2\]\['accuracy'\]` must be in \[0, 1\]"),
    ("class_index", -1, r"cases\[2\]\['class_index'\]` must be >= 0"),
])
def test_impossible_case_rows_are_refused(tmp_path, field, value, match):
    cases = make_cases()
    cases[2][field] = value
    with pytest.raises(ValueError, match=match):
        ResultStore(str(tmp_path / "results")).write_trial(make_trial(), make_epochs(), cases)
    assert not (tmp_path / "results").exists()


def test_a_case_that_counts_no_pixel_is_refused(tmp_path):
    cases = make_cases()
    cases[1].update(tp=0, fp=0, fn=0, tn=0)
    with pytest.raises(ValueError, match=r"cases\[1\]` counts tp\+fp\+fn\+tn must cover at least one pixel"):
        ResultStore(str(tmp_path / "results")).write_trial(make_trial(), make_epochs(), cases)


def test_nan_scores_of_empty_references_are_kept(tmp_path):
    cases = make_cases()
    cases[0].update(dice=float("nan"), jaccard=float("nan"))
    store = ResultStore(str(tmp_path / "results"))
    store.write_trial(make_trial(), make_epochs(), cases)
    assert store.read("cases").num_rows == len(cases)


# -- attempts: running, lost, counted -------------------------------------------------------------
def attempts_store(tmp_path) -> str:
    """A store with: t1 completed on its 2nd attempt after a lost 1st (a running row with a
    later attempt); t2 failed twice; t3 running; t4 lost (interrupted: a resume continues it)."""
    url = str(tmp_path / "results")
    store = ResultStore(url)
    store.write_trial(make_trial("t1", 1, "running", metrics={}, ended_at=T0, error=None), [], [])
    store.write_trial(make_trial("t1", 2), make_epochs(), make_cases())
    store.write_trial(make_trial("t2", 1, "failed"), [], [])
    store.write_trial(make_trial("t2", 2, "failed"), [], [])
    store.write_trial(make_trial("t3", 1, "running", metrics={}, ended_at=T0, error=None), [], [])
    store.write_trial(make_trial("t4", 1, "running", metrics={}, ended_at=T0, error=None), [], [])
    assert mark_lost(store, "exp1", "t4", "the node died") == 1
    return url


def test_counts_of_trials_and_attempts(tmp_path):
    store = ResultStore(attempts_store(tmp_path))
    c = count_attempts(store.trial_attempts("exp1").to_pylist())
    assert (c.completed, c.failed, c.interrupted, c.running) == ({"t1"}, {"t2"}, {"t4"}, {"t3"})
    assert (c.attempts, c.attempts_failed, c.attempts_lost, c.attempts_stopped) == (6, 2, 2, 0)


def test_mark_lost_rewrites_the_running_row_in_place(tmp_path):
    store = ResultStore(attempts_store(tmp_path))
    rows = {(r["trial_id"], r["attempt"]): r for r in store.trial_attempts("exp1").to_pylist()}
    lost = rows[("t4", 1)]
    assert lost["status"] == "lost" and lost["node"] == "node-1" and lost["ended_at"] >= lost["started_at"]
    assert lost["error"].startswith("attempt 1 on node-1 ended without an outcome: the node died")
    assert json.loads(lost["config_json"]) == make_trial()["config"]  # the attempt's own record, kept
    assert mark_lost(store, "exp1", "t4", "again") == 0  # nothing running any more
    assert len(rows) == 6


def test_status_on_a_read_only_store(tmp_path):
    """`status` reads only: it works where nothing can be written (as leaderboard does)."""
    url = attempts_store(tmp_path)
    read_only(url)
    try:
        probe = subprocess.run(unprivileged([sys.executable, "-c", f"open({url + '/x'!r}, 'w')"]),
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr  # really read-only
        out = subprocess.run(unprivileged([DRAGSAW, "status", "--store", url]), capture_output=True, text=True,
                             timeout=120, env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == ("exp1: 1 completed, 1 failed, 1 interrupted, 1 running (or lost, if no "
                                      "driver runs it); ? expected; 6 attempts: 2 failed, 2 lost, 0 stopped")
        board = subprocess.run(unprivileged([DRAGSAW, "leaderboard", "--store", url]), capture_output=True,
                               text=True, timeout=120, env={"NO_ALBUMENTATIONS_UPDATE": "1", "PATH": "/usr/bin:/bin"})
        assert board.returncode == 0, board.stderr
    finally:
        writable(url)


def test_status_of_an_unreachable_store_exits_2(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    out = subprocess.run([DRAGSAW, "status", "--store", str(a_file)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "is a file, not a folder" in out.stderr and "Traceback" not in out.stderr
