"""Experiments end to end through the ``dragsaw`` command: a local run with its
leaderboard, a resume after the driver is killed with SIGKILL, and an S3 store on a
two-node Ray cluster."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dragsaw.platform.store import ResultStore

from .test_cli import TINY, dragsaw

pytestmark = pytest.mark.integration

DRAGSAW = str(Path(sys.executable).with_name("dragsaw"))


def spec_file(tmp_path, store, epochs=1, seeds="[0]", name="tiny"):
    text = TINY.format(store=store, root=tmp_path / "isic", layer="encoder.2")
    text = text.replace("epochs: 1", f"epochs: {epochs}").replace("seeds: [0]", f"seeds: {seeds}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("name: tiny", f"name: {name}"))
    return path


def counts(store: ResultStore, experiment: str):
    trials = store.trial_attempts(experiment).to_pylist()
    cases = store.read("cases", experiment=experiment).to_pylist()
    epochs = store.read("epochs", experiment=experiment).to_pylist()
    return trials, cases, epochs


def test_run_then_leaderboard_json_and_rerun_counts_nothing_twice(tmp_path):
    store_url = str(tmp_path / "results")
    spec = spec_file(tmp_path, store_url)
    out = dragsaw("run", spec)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 trials finished, 0 failed" in out.stdout and "baseline" in out.stdout
    board = dragsaw("leaderboard", "--store", store_url, "--experiment", "tiny", "--baseline", "baseline",
                    "--format", "json")
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)
    assert {r["variant"] for r in rows} == {"baseline", "uafr"}
    for row in rows:
        assert {"experiment", "dataset", "variant", "metric", "mean", "std", "n", "rank"} <= set(row)
        assert row["n"] == 1 and 0 <= row["mean"] <= 1
    uafr = next(r for r in rows if r["variant"] == "uafr")  # one seed: compared, never called significant
    assert uafr["baseline"] == "baseline" and uafr["n_cases"] == 4 and uafr["delta"] is not None
    assert uafr["p_value"] is None and "too few" in uafr["verdict"]
    store = ResultStore(store_url)
    before = counts(store, "tiny")
    assert len(before[0]) == 2 and len(before[1]) == 2 * 4 * 2  # 2 trials x 4 test cases x 2 classes
    again = dragsaw("run", spec)
    assert again.returncode == 0 and "2 already complete" in again.stdout
    assert [len(x) for x in counts(store, "tiny")] == [len(x) for x in before]
    changed = dragsaw("run", spec, "--set", "train.epochs=2")
    assert changed.returncode == 2 and "different spec" in changed.stderr
    status = dragsaw("status", "--store", store_url)
    assert status.returncode == 0 and "tiny: 2 completed" in status.stdout


def test_resume_after_the_driver_is_killed(tmp_path):
    store_url = str(tmp_path / "results")
    spec = spec_file(tmp_path, store_url, epochs=20, seeds="[0, 1]", name="killed")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    driver = subprocess.Popen([DRAGSAW, "run", str(spec)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, start_new_session=True, text=True)
    checkpoints = tmp_path / "results" / "_checkpoints" / "killed"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # kill once some trial has a checkpoint mid-way
            if checkpoints.exists() and any(checkpoints.glob("*/trial.pt")):
                break
            if driver.poll() is not None:
                pytest.fail("the driver finished before it could be killed:\n" + driver.stdout.read()[-3000:])
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint appeared")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait()
    store = ResultStore(store_url)
    done_before = store.completed("killed")
    assert len(done_before) < 4
    refused = dragsaw("resume", "killed", "--store", store_url)  # the dead driver's lease has not expired yet
    assert refused.returncode == 2 and "being run by another driver" in refused.stderr
    out = dragsaw("resume", "killed", "--store", store_url, "--take-over", timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert store.completed("killed") >= done_before and len(store.completed("killed")) == 4
    trials, cases, epochs = counts(store, "killed")
    per_trial = {}
    for row in epochs:
        if row["name"] == "train_loss":
            per_trial.setdefault(row["trial_id"], []).append(row["epoch"])
    assert sorted(per_trial) == sorted(store.completed("killed"))
    assert all(sorted(v) == list(range(1, 21)) for v in per_trial.values())  # every epoch once, none twice
    resumed = [json.loads(t["metrics_json"]).get("resumed_from_epoch", 0) for t in trials if t["status"] == "completed"]
    assert max(resumed) > 0  # an interrupted trial continued from its checkpoint instead of starting over
    keys = [(r["trial_id"], r["case_id"], r["class_index"]) for r in cases]
    assert len(keys) == len(set(keys)) == 4 * 4 * 2


def test_s3_store_on_a_two_node_cluster(tmp_path, s3_store_url):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        spec = spec_file(tmp_path, s3_store_url, seeds="[0, 1]", name="cluster")
        # from tmp_path: with an s3 store the run writes nothing where it was started
        out = dragsaw("run", spec, "--address", cluster.address, cwd=tmp_path, timeout=600)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    finally:
        cluster.shutdown()
    store = ResultStore(s3_store_url)
    trials, cases, epochs = counts(store, "cluster")
    assert len(store.completed("cluster")) == 4 and len(trials) == 4
    assert len({t["node"] for t in trials}) == 2, [t["node"] for t in trials]  # both nodes ran trials
    assert len(cases) == 4 * 4 * 2 and epochs
    assert not (tmp_path / "results").exists(), "a run on an s3 store wrote ./results where it was started"


SEARCH = """\
name: tiny-search
store: {store}
datasets:
  - name: isic2016
    root: {root}
    synthetic: {{n_train: 8, n_test: 4, size: [72, 96], seed: 0}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 2, batch_size: 4, image_size: [64, 64]}}
plugins: {{pdcr: {{sites: [{{layers: [encoder.2], n: 16}}]}}}}
seeds: [0]
resources: {{cpus: 1}}
concurrency: 2
search:
  num_samples: 3
  sampler: tpe
  seed: 0
  scheduler: asha
  metric: dice
  mode: max
  space:
    train.lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
    train.pdcr_weight: {{type: float, low: 0.001, high: 0.1, log: true}}
    placement.uafr: {{type: subset, choices: [encoder.1, encoder.2, decoder.1], min_size: 0}}
"""


def test_search_runs_with_a_persisted_study(tmp_path):
    import optuna

    store_url = str(tmp_path / "results")
    spec = tmp_path / "search.yaml"
    spec.write_text(SEARCH.format(store=store_url, root=tmp_path / "isic"))
    out = dragsaw("run", spec, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    store = ResultStore(store_url)
    trials = [t for t in store.trial_attempts("tiny-search").to_pylist() if t["status"] == "completed"]
    assert sorted(t["variant"] for t in trials) == [f"tiny-search.isic2016-{n}" for n in range(3)]  # one id
    assert all("train.lr" in json.loads(t["params_json"]) for t in trials)
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "results" / "_experiments" / "tiny-search" / "study.journal"
    assert journal.exists(), "the Optuna study is kept in the store"
    summaries = optuna.get_all_study_summaries(optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    assert sum(s.n_trials for s in summaries) == 3
    again = dragsaw("run", spec, timeout=600)  # the study is complete: nothing more runs
    assert again.returncode == 0 and "already complete" in again.stdout


def test_the_shipped_quickstart_runs_end_to_end(tmp_path):
    """The README's main command, as shipped (the data folder and ./results relative to cwd)."""
    spec = Path(__file__).resolve().parents[2] / "configs" / "experiments" / "quickstart.yaml"
    start = time.monotonic()
    out = dragsaw("run", spec, cwd=tmp_path, timeout=900)
    took = time.monotonic() - start
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "8 trials finished, 0 failed" in out.stdout
    for variant in ("baseline", "pdcr", "uafr", "pdcr-uafr"):
        assert f" {variant} " in out.stdout
    store = ResultStore(str(tmp_path / "results"))
    assert len(store.completed("quickstart")) == 8
    print(f"quickstart took {took:.0f} s")


def test_a_gpu_spec_still_runs_on_a_cpu_only_machine(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    spec = spec_file(tmp_path, str(tmp_path / "results"), name="gpu")
    out = dragsaw("run", spec, "--set", "resources.gpus=1", timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "no GPU; running on CPUs" in out.stdout and "2 trials finished, 0 failed" in out.stdout
