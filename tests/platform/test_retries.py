"""Trials that fail, on real Ray (issue 8 points 5-6, issue 12 point 5): a configuration
error is recorded once and not retried (exit status 1, "1 failed"); a transient error is
retried by Ray and the retry continues from the last checkpoint; a worker killed with
SIGKILL on a two-node cluster leaves a ``lost`` row and the trial completes on its retry."""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dragsaw.platform.store import ResultStore

from .test_cli import write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def attempts(store_url: str, experiment: str) -> dict:
    """trial_id -> [(attempt, status, error, metrics row)] in attempt order."""
    out: dict = {}
    for r in ResultStore(store_url).trial_attempts(experiment).to_pylist():
        out.setdefault(r["trial_id"], []).append(r)
    return out


def test_a_configuration_error_is_recorded_once_and_not_retried(tmp_path):
    """The pre-launch check is made to miss the error (as a check with a gap would), so the
    trial itself meets it: one failed row, no retry although max_failures is 2."""
    store = tmp_path / "results"
    spec = write_spec(tmp_path, store=store)
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent("""\
        import sys
        import dragsaw.platform.experiment.checks as checks
        checks.check_paths = lambda spec, require_data=True: []  # a pre-launch check with a gap
        from dragsaw.platform.cli import main
        sys.exit(main(sys.argv[1:]))
        """))
    # unet at 64 px: encoder.5 has 4x4 = 16 positions; n = 17 cannot run
    out = subprocess.run([sys.executable, str(driver), "run", str(spec), "--set", "failure.max_failures=2",
                          "--set", "variants.uafr.plugins={pdcr: {sites: [{layers: [encoder.5], n: 17}]}}"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert "tiny: 1 trials finished, 1 failed" in out.stdout, out.stdout[-3000:]
    assert "its configuration cannot run (not retried" in out.stdout, out.stdout[-3000:]
    rows = attempts(str(store), "tiny")
    by_variant = {r[0]["variant"]: r for r in rows.values()}
    (failed,) = by_variant["uafr"]  # one attempt only: not retried
    assert failed["status"] == "failed" and failed["attempt"] == 1
    assert "ConfigError" in failed["error"] and "n=17 exceeds the 16 positions of layer 'encoder.5'" in failed["error"]
    assert [r["status"] for r in by_variant["baseline"]] == ["completed"]


# -- the trainables below run in Ray workers: importable from this module --------------------
def flaky_trainable(config: dict) -> None:
    """The real trial runner, whose first attempt dies after epoch 1 (a transient error)."""
    from ray import tune

    from dragsaw.platform.launch.trainable import _numeric, run_one

    trial, context = config["trial"], config["context"]
    marker = Path(context["markers"]) / trial["trial_id"]

    def on_epoch(metrics):
        tune.report(metrics)
        if metrics["epoch"] == 1 and not marker.exists():
            marker.write_text(str(os.getpid()))
            raise RuntimeError("transient: the first attempt dies after its first epoch")

    final = run_one(trial, context, on_epoch=on_epoch)
    tune.report({**_numeric(final), "done_trial": 1})


def stalling_trainable(config: dict) -> None:
    """The real trial runner, whose first attempt writes its PID after epoch 1 and waits to be
    killed (the test sends SIGKILL to that worker process)."""
    from ray import tune

    from dragsaw.platform.launch.trainable import _numeric, run_one

    trial, context = config["trial"], config["context"]
    marker = Path(context["markers"]) / trial["trial_id"]

    def on_epoch(metrics):
        tune.report(metrics)
        if metrics["epoch"] == 1 and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(600)

    final = run_one(trial, context, on_epoch=on_epoch)
    tune.report({**_numeric(final), "done_trial": 1})


def grid(tmp_path, name: str, max_failures: int):
    """(spec, trials, context) of a one-trial grid (unet baseline, 2 epochs) with a local store."""
    from dragsaw.platform.experiment.datasets import prepare_datasets
    from dragsaw.platform.experiment.grid import expand, spec_hash
    from dragsaw.platform.experiment.loading import load_spec
    from dragsaw.platform.launch.driver import _synthetic_recipes

    spec = load_spec(write_spec(tmp_path), [f"name={name}", "train.epochs=2", "variants={baseline: {}}",
                                             f"failure.max_failures={max_failures}", "concurrency=1"])
    trials = expand(spec, prepare_datasets(spec))
    markers = tmp_path / "markers"
    markers.mkdir()
    context = {"store_url": str(tmp_path / "results"), "spec_hash": spec_hash(spec), "git_commit": "test",
               "versions": {}, "synthetic": _synthetic_recipes(spec), "markers": str(markers)}
    return spec, [dataclasses.replace(t) for t in trials], context


def test_a_transient_failure_is_retried_from_the_last_checkpoint(tmp_path):
    import ray

    from dragsaw.platform.launch.run import run_grid

    spec, trials, context = grid(tmp_path, "flaky", max_failures=1)
    lines: list[str] = []
    try:
        outcome = run_grid(spec, trials, context["store_url"], context, None, lines.append,
                           trainable_fn=flaky_trainable)
    finally:
        ray.shutdown()
    assert outcome == {"ok": 1, "failed": 0}, lines
    ((first, second),) = attempts(context["store_url"], "flaky").values()
    assert (first["attempt"], first["status"]) == (1, "failed")
    assert "RuntimeError: transient: the first attempt dies after its first epoch" in first["error"]
    assert (second["attempt"], second["status"]) == (2, "completed")
    import json

    metrics = json.loads(second["metrics_json"])
    assert metrics["resumed_from_epoch"] == 1 and metrics["epoch"] == 2  # continued, not restarted


def test_a_killed_worker_leaves_a_lost_row_and_the_retry_completes(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from dragsaw.platform.launch.run import run_grid

    spec, trials, context = grid(tmp_path, "killed", max_failures=1)
    marker = Path(context["markers"]) / trials[0].trial_id
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    lines: list[str] = []
    result: dict = {}
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()

        def drive():
            result["outcome"] = run_grid(spec, trials, context["store_url"], context, cluster.address, lines.append,
                                         trainable_fn=stalling_trainable)

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        deadline = time.monotonic() + 300
        while not marker.exists() and time.monotonic() < deadline and driver.is_alive():
            time.sleep(0.5)
        assert marker.exists(), lines
        os.kill(int(marker.read_text()), signal.SIGKILL)  # the worker process running the trial
        driver.join(timeout=400)
        assert not driver.is_alive(), lines
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert result["outcome"] == {"ok": 1, "failed": 0}, lines
    ((first, second),) = attempts(context["store_url"], "killed").values()
    assert (first["attempt"], first["status"]) == (1, "lost"), first
    assert "ended without an outcome: its worker or node died" in first["error"]
    assert first["node"] and first["ended_at"] > first["started_at"]
    assert (second["attempt"], second["status"]) == (2, "completed")


def test_resources_no_node_can_give_are_refused_before_anything_is_written(tmp_path):
    """On a two-node cluster without GPUs: a GPU trial (and one wider than any node) exits 2 at
    once; with --wait-for-resources (an autoscaler may add nodes) after that many seconds."""
    from ray.cluster_utils import Cluster

    from .test_cli import dragsaw

    spec = write_spec(tmp_path)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        out = dragsaw("run", spec, "--address", cluster.address, "--set", "resources.gpus=1")
        assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
        assert "each trial needs 1 CPU, 1 GPU on one node, but no node of the cluster has that" in out.stderr
        assert "pass --wait-for-resources SECONDS" in out.stderr and "Traceback" not in out.stderr
        out = dragsaw("run", spec, "--address", cluster.address, "--set", "resources.cpus=3")
        assert out.returncode == 2 and "3 CPU on one node" in out.stderr and "2 CPU" in out.stderr, out.stderr
        start = time.monotonic()
        out = dragsaw("run", spec, "--address", cluster.address, "--set", "resources.gpus=1",
                      "--wait-for-resources", "3")
        assert out.returncode == 2 and "no node appeared within --wait-for-resources 3 s" in out.stderr, out.stderr
        assert time.monotonic() - start >= 3
        out = dragsaw("run", spec, "--wait-for-resources", "-1")
        assert out.returncode == 2 and "--wait-for-resources" in out.stderr
    finally:
        cluster.shutdown()
    assert not (tmp_path / "results").exists() and not (tmp_path / "isic").exists()


def test_a_killed_worker_whose_trial_is_not_retried_is_recorded_lost_by_the_driver(tmp_path):
    """max_failures 0: no next attempt notices the dead one, so the driver records it."""
    import ray

    from dragsaw.platform.launch.run import run_grid

    spec, trials, context = grid(tmp_path, "given-up", max_failures=0)
    marker = Path(context["markers"]) / trials[0].trial_id
    lines: list[str] = []
    result: dict = {}

    def drive():
        result["outcome"] = run_grid(spec, trials, context["store_url"], context, None, lines.append,
                                     trainable_fn=stalling_trainable)

    driver = threading.Thread(target=drive, daemon=True)
    try:
        driver.start()
        deadline = time.monotonic() + 300
        while not marker.exists() and time.monotonic() < deadline and driver.is_alive():
            time.sleep(0.5)
        assert marker.exists(), lines
        os.kill(int(marker.read_text()), signal.SIGKILL)
        driver.join(timeout=300)
        assert not driver.is_alive(), lines
    finally:
        ray.shutdown()
    assert result["outcome"] == {"ok": 0, "failed": 1}, lines
    ((only,),) = attempts(context["store_url"], "given-up").values()
    assert (only["attempt"], only["status"]) == (1, "lost"), only
    assert "ended without an outcome: Tune gave up on the trial after 1 failures" in only["error"]
    assert any("its worker or node died: a lost attempt" in line for line in lines), lines
