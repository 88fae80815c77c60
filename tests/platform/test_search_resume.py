"""A search driver killed with SIGKILL mid-search and resumed: from a real PostgreSQL server
named in the spec (``search.storage``), and from the store alone (the study journal kept in
it, the store copied to a fresh folder as a fresh machine would see it). No sample is counted
twice: the study ends with exactly ``num_samples`` finished samples, the interrupted one
continues under its number from its checkpoint, and every epoch of a trial is stored once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dragsaw.platform.store import ResultStore

from .pg_server import postgres_bin, start_postgres, stop_postgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRAGSAW = str(Path(sys.executable).with_name("dragsaw"))
SECRET = "pg-Secret-9f2c"  # a PGPASSWORD (trust authentication ignores it) that must appear nowhere

SPEC = """\
name: {name}
store: {store}
datasets:
  - name: isic2016
    root: {root}
    synthetic: {{n_train: 8, n_test: 4, size: [72, 96], seed: 0}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 8, batch_size: 4, image_size: [64, 64]}}
seeds: [0]
resources: {{cpus: 1}}
concurrency: 1
search:
  num_samples: 3
  sampler: tpe
  seed: 0
  metric: dice
  mode: max
{storage}  space:
    train.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
"""


@pytest.fixture(scope="module")
def postgres():
    if postgres_bin() is None:
        pytest.fail("PostgreSQL is not installed: apt-get install -y postgresql (.ci/run installs it)")
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


def run_and_kill(spec: Path, store: Path, name: str, env: dict) -> None:
    """Start ``dragsaw run spec``; SIGKILL it (and the Ray processes of its session) once one
    sample is complete and a later one has a checkpoint mid-way."""
    driver = subprocess.Popen([DRAGSAW, "run", str(spec)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, start_new_session=True, text=True)
    assert driver.stdout is not None
    checkpoints = store / "_checkpoints" / name
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline:
            done = ResultStore(str(store)).completed(name) if (store / "trials").exists() else set()
            partial = [p.parent.name for p in checkpoints.glob("*/trial.pt") if p.parent.name not in done]
            if done and partial:
                break
            if driver.poll() is not None:
                text = driver.stdout.read()
                pytest.fail(f"the driver finished before it could be killed:\n{text[:2500]}\n...\n{text[-2500:]}")
            time.sleep(0.2)
        else:
            pytest.fail("no sample got to a checkpoint after a complete one")
    finally:
        # Ray's workers need not share the driver's process group: kill the whole tree, and wait
        # until it is gone, so that no straggler writes into the store after this returns.
        tree = descendants(driver.pid)
        os.killpg(driver.pid, signal.SIGKILL)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        driver.wait()
        driver.stdout.close()
        deadline = time.monotonic() + 60
        while not all(gone(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.2)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie counts: it runs no more code)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def check_resumed(study: optuna.Study, store: ResultStore, name: str, interrupted: int) -> None:
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2], "a sample was asked twice"
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    ids = [t.user_attrs["dragsaw_sample"] for t in trials]
    assert sorted(store.completed(name)) == sorted(ids)
    rows = store.trial_attempts(name).to_pylist()
    assert sorted({r["variant"] for r in rows}) == sorted(ids)  # one id: study, trials table, variant
    epochs: dict[str, list[int]] = {}
    for r in store.read("epochs", experiment=name).to_pylist():
        if r["name"] == "train_loss":
            epochs.setdefault(r["trial_id"], []).append(r["epoch"])
    assert {k: sorted(v) for k, v in epochs.items()} == {i: list(range(1, 9)) for i in ids}  # each epoch once
    resumed = [json.loads(r["metrics_json"]).get("resumed_from_epoch", 0) for r in rows if r["status"] == "completed"]
    assert max(resumed) > 0  # the interrupted sample continued from its checkpoint
    for t in trials:  # the killed driver may not have told the steps its last seconds reported
        steps = sorted(t.intermediate_values)
        assert steps == list(range(1, 9)) if t.number != interrupted else steps[-1] == 8 and set(steps) <= set(
            range(1, 9)), (t.number, steps)


def test_driver_killed_mid_search_resumes_from_postgresql(tmp_path, postgres):
    name = "pg-search"
    store = tmp_path / "results"
    spec = tmp_path / "search.yaml"
    spec.write_text(SPEC.format(name=name, store=store, root=tmp_path / "isic",
                                storage=f"  storage: {postgres.url}\n"))
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PGPASSWORD": SECRET}
    run_and_kill(spec, store, name, env)
    study = optuna.load_study(study_name=f"{name}.isic2016", storage=postgres.url.replace(
        "postgresql://", "postgresql+psycopg2://"))
    running = [t.number for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert running, "the killed driver left its sample RUNNING in the study"
    out = subprocess.run([DRAGSAW, "resume", name, "--store", str(store), "--take-over"], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"resuming 1 interrupted samples ({name}.isic2016-{running[0]})" in out.stdout
    assert f"Optuna studies in postgresql://***@127.0.0.1:{postgres.port}/optuna" in out.stdout
    check_resumed(study, ResultStore(str(store)), name, running[0])
    stored = (store / "_experiments" / name / "spec.json").read_text()
    assert SECRET not in out.stdout + out.stderr + stored


def test_driver_killed_mid_search_resumes_on_a_fresh_machine_from_the_store_alone(tmp_path):
    name = "journal-search"
    store = tmp_path / "first" / "results"
    spec = tmp_path / "search.yaml"
    spec.write_text(SPEC.format(name=name, store=store, root=tmp_path / "isic", storage=""))
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    run_and_kill(spec, store, name, env)
    fresh = tmp_path / "fresh"  # another machine: only the store, another working directory, no Tune state
    shutil.copytree(store, fresh / "results")
    shutil.rmtree(tmp_path / "first")
    journal = fresh / "results" / "_experiments" / name / "study.journal"
    running = [t.number for t in load(journal, name).get_trials() if t.state == TrialState.RUNNING]
    assert len(running) == 1
    out = subprocess.run([DRAGSAW, "resume", name, "--store", str(fresh / "results"), "--take-over"], capture_output=True,
                         text=True, env=env, timeout=600, cwd=fresh)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resuming 1 interrupted samples" in out.stdout
    assert not (fresh / "results" / "_tune").exists() and not (fresh / "_tune").exists()
    check_resumed(load(journal, name), ResultStore(str(fresh / "results")), name, running[0])


def load(journal: Path, name: str) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=f"{name}.isic2016",
                             storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))


def test_a_search_on_an_s3_store_keeps_its_study_there(tmp_path, s3_store_url):
    """With an s3:// store nothing lands on the driver's disk: the study journal is objects in
    the bucket, and ``dragsaw best`` reads it from another working directory."""
    from .test_cli import dragsaw

    spec = tmp_path / "search.yaml"
    spec.write_text(SPEC.format(name="s3-search", store=s3_store_url, root=tmp_path / "isic", storage="")
                    .replace("num_samples: 3", "num_samples: 2").replace("epochs: 8", "epochs: 2"))
    work = tmp_path / "driver"
    work.mkdir()
    out = dragsaw("run", spec, cwd=work, timeout=600)
    errors = [r["error"] for r in ResultStore(s3_store_url).trial_attempts("s3-search").to_pylist() if r["error"]]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + str(errors)
    assert f"Optuna studies in {s3_store_url}/_experiments/s3-search/study-journal" in out.stdout
    assert not any(work.iterdir()), list(work.iterdir())  # no ./results, no _tune, no optuna.db
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    best = dragsaw("best", "s3-search", "--store", s3_store_url, "-f", "json", cwd=elsewhere)
    assert best.returncode == 0, best.stderr
    rows = json.loads(best.stdout)
    assert sorted((r["trial_id"], r["state"]) for r in rows) == [
        ("s3-search.isic2016-0", "COMPLETE"), ("s3-search.isic2016-1", "COMPLETE")]
