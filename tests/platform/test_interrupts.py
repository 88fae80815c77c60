"""SIGINT / SIGTERM on `dragsaw run`: no new trials, the running ones stopped with their
checkpoints kept, an honest summary (the counts `dragsaw status` reads afterwards), the
dragsaw command that continues, exit 130 / 143, no Ray restore hint, no traceback; and a
normal run prints no third-party notices."""

import os
import re
import signal
import subprocess
import time

import pytest

from dragsaw.platform.store import ResultStore

from .test_cli import dragsaw
from .test_launch import DRAGSAW, spec_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOREIGN = ("Tuner.restore", "Traceback", "Token authentication", "terminate called")


def start(args, cwd=None) -> subprocess.Popen:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.Popen([DRAGSAW, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=cwd, text=True, start_new_session=True)


def wait_for(path_glob, proc: subprocess.Popen, timeout: float = 240) -> None:
    folder, pattern = path_glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.exists() and any(folder.glob(pattern)):
            return
        if proc.poll() is not None:
            pytest.fail("the driver ended early:\n" + proc.stdout.read()[-3000:] + proc.stderr.read()[-3000:])
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"no {pattern} in {folder}")


def summary_counts(text: str) -> dict[str, int]:
    m = re.search(r"(\d+) of (\d+) trials complete \(\d+ in this run\), (\d+) failed, (\d+) interrupted", text)
    assert m, text
    return {"completed": int(m[1]), "expected": int(m[2]), "failed": int(m[3]), "interrupted": int(m[4])}


def status_counts(store_url: str, name: str) -> dict[str, int]:
    out = dragsaw("status", name, "--store", store_url)
    assert out.returncode == 0, out.stderr
    m = re.search(r"(\d+) completed, (\d+) failed, (\d+) interrupted(, (\d+) running)?.*?; (\d+) expected", out.stdout)
    assert m and not m[5], out.stdout  # nothing left "running" once the driver has stopped
    return {"completed": int(m[1]), "expected": int(m[6]), "failed": int(m[2]), "interrupted": int(m[3])}


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_in_order_and_says_how_to_continue(tmp_path, signum, status):
    store_url = str(tmp_path / "results")
    spec = spec_file(tmp_path, store_url, epochs=40, seeds="[0, 1]", name="stopped")
    driver = start(["run", spec])
    wait_for((tmp_path / "results" / "_checkpoints" / "stopped", "*/trial.pt"), driver)
    os.kill(driver.pid, signum)  # the driver only, as `kill` or a terminal's Ctrl-C would
    try:
        out, err = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    text = out + err
    assert driver.returncode == status, text
    assert f"interrupted by {signal.Signals(signum).name}" in text
    assert f"continue with: dragsaw resume stopped --store {store_url}" in text
    assert not [f for f in FOREIGN if f in text], text
    counts = summary_counts(text)
    assert counts["interrupted"] >= 1 and counts["completed"] < 4
    assert counts == status_counts(store_url, "stopped")  # the summary is what the store says

    if signum == signal.SIGINT:  # the printed command finishes the experiment
        again = dragsaw("resume", "stopped", "--store", store_url, timeout=600)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert len(ResultStore(store_url).completed("stopped")) == 4
        assert not [f for f in FOREIGN if f in again.stdout + again.stderr], again.stderr
        assert again.stderr.strip() == "", again.stderr  # no third-party notices on a normal run


def test_ctrl_c_while_trials_wait_for_resources(tmp_path):
    """Trials that cannot be placed yet (every CPU of the cluster is taken) stay pending;
    Ctrl-C then ends the run cleanly: nothing started, no traceback, exit 130."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        ray.init(address=cluster.address)

        @ray.remote(num_cpus=1)
        class Holder:
            def ping(self):
                return 1

        holder = Holder.remote()
        ray.get(holder.ping.remote())  # the only CPU is taken
        store_url = str(tmp_path / "results")
        spec = spec_file(tmp_path, store_url, name="pending")
        driver = start(["run", spec, "--address", cluster.address])
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (tmp_path / "results" / "_experiments" / "pending").exists():
            assert driver.poll() is None, driver.stdout.read() + driver.stderr.read()
            time.sleep(0.2)
        time.sleep(8)  # Tune is up, its trials pending
        os.kill(driver.pid, signal.SIGINT)
        try:
            out, err = driver.communicate(timeout=120)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
        assert driver.returncode == 130, out + err
        assert not [f for f in FOREIGN if f in out + err], out + err
        assert summary_counts(out + err) == {"completed": 0, "expected": 2, "failed": 0, "interrupted": 0}
        assert "2 not started" in out
    finally:
        ray.shutdown()
        cluster.shutdown()
