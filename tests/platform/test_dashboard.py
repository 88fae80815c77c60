"""``dragsaw dashboard NAME``: optuna-dashboard on 127.0.0.1 for a search's study, read from
the store's journal; the test starts it on a free port, reads its API and stops it by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import optuna
import pytest

from .s3_server import free_port
from .test_cli import DRAGSAW, write_spec

pytest.importorskip("optuna_dashboard")
pytestmark = pytest.mark.integration

SEARCH = """\
name: dash
store: {store}
datasets:
  - name: isic2016
    root: {root}
    synthetic: {{n_train: 8, n_test: 4, size: [72, 96], seed: 0}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 1, batch_size: 4, image_size: [64, 64]}}
search:
  num_samples: 2
  space: {{train.lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}}}
"""


def _get(url: str, timeout: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_dashboard_serves_the_study_from_the_store(tmp_path):
    from dragsaw.platform.experiment.loading import load_spec
    from dragsaw.platform.launch.run import save_record
    from dragsaw.platform.search.storage import study_storage

    store = str(tmp_path / "results")
    spec = load_spec(str(write_spec(tmp_path, "dash.yaml", text=SEARCH.format(store=store, root=tmp_path / "isic"))))
    save_record(store, spec, "hash")
    storage, _ = study_storage(None, store, "dash")
    study = optuna.create_study(storage=storage, study_name="dash.isic2016", direction="maximize")
    for value in (0.4, 0.6):
        trial = study.ask()
        trial.suggest_float("train.lr", 1e-4, 1e-2, log=True)
        study.tell(trial, value)
    port = free_port()
    proc = subprocess.Popen([DRAGSAW, "dashboard", "dash", "--store", store, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    try:
        studies = json.loads(_get(f"http://127.0.0.1:{port}/api/studies"))["study_summaries"]
        assert [s["study_name"] for s in studies] == ["dash.isic2016"]
        detail = json.loads(_get(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}"))
        assert sorted(t["values"][0] for t in detail["trials"]) == [0.4, 0.6]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert f"at http://127.0.0.1:{port}/" in out, out


def test_dashboard_of_an_unknown_experiment_exits_2(tmp_path):
    out = subprocess.run([DRAGSAW, "dashboard", "nope", "--store", str(tmp_path / "results"), "--port",
                          str(free_port())], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "nope" in out.stderr, out.stderr


def test_an_s3_journal_is_served_from_a_local_snapshot_and_never_written_back(tmp_path, s3_store_url):
    from dragsaw.platform.cli.search import dashboard_storage
    from dragsaw.platform.experiment.loading import load_spec
    from dragsaw.platform.launch.run import save_record
    from dragsaw.platform.search.storage import journal_location, study_storage
    from dragsaw.platform.store._location import filesystem

    spec = load_spec(str(write_spec(tmp_path, "dash.yaml", text=SEARCH.format(store=s3_store_url,
                                                                               root=tmp_path / "isic"))))
    save_record(s3_store_url, spec, "hash")
    storage, _ = study_storage(None, s3_store_url, "dash")
    study = optuna.create_study(storage=storage, study_name="dash.isic2016", direction="maximize")
    trial = study.ask()
    trial.suggest_float("train.lr", 1e-4, 1e-2, log=True)
    study.tell(trial, 0.5)
    fs, root = filesystem(journal_location(s3_store_url, "dash"))
    before = sorted(fs.ls(root, refresh=True))
    snapshot, where = dashboard_storage(s3_store_url, "dash", str(tmp_path))
    assert "snapshot" in where and (tmp_path / "study.journal").exists()
    copy = optuna.load_study(study_name="dash.isic2016", storage=snapshot)
    assert [t.value for t in copy.trials] == [0.5]
    copy.set_user_attr("note", "written by the dashboard")  # lands in the snapshot only
    assert sorted(fs.ls(root, refresh=True)) == before
