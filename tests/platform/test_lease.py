"""One driver per experiment: the store's lease, on a local folder and on a real S3 endpoint
(moto_server). Racing drivers (threads, then real processes) get exactly one winner; a
second driver is refused naming the holder; after a driver is SIGKILLed its lease expires
and the next one takes over, or at once with take_over."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from dragsaw.platform.store import Lease, LeaseHeld, filesystem

HOLD = """\
import sys, time
from dragsaw.platform.store import Lease
lease = Lease(sys.argv[1], "exp", seconds=float(sys.argv[2]))
lease.acquire()
lease.start_heartbeat()
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_driver_is_refused_naming_the_holder(store_url):
    first = Lease(store_url, "exp")
    assert first.acquire() is None
    with pytest.raises(LeaseHeld) as refused:
        Lease(store_url, "exp").acquire()
    message = str(refused.value)
    assert f"pid {os.getpid()}" in message and "host " in message and "since " in message
    assert "--take-over" in message
    first.release()
    second = Lease(store_url, "exp")
    assert second.acquire() is None  # released: free at once, not "taken over"
    second.release()


def test_expiry_and_take_over(store_url):
    stale = Lease(store_url, "exp", seconds=4.0)
    stale.acquire()  # and never renewed, as if its driver had died
    with pytest.raises(LeaseHeld):
        Lease(store_url, "exp").acquire()
    time.sleep(max(0.0, stale.holder.expires - time.time() + 0.2))
    heir = Lease(store_url, "exp", seconds=30)
    previous = heir.acquire()
    assert previous is not None and previous.token == stale.holder.token
    assert not stale.renew() and "took over" in (stale.lost or "")  # the old holder learns it lost
    thief = Lease(store_url, "exp")
    assert thief.acquire(take_over=True).token == heir.holder.token  # a live lease, taken at once
    lost = []
    heir.on_lost = lost.append
    heir.seconds = 0.2  # heartbeat every 0.05 s
    heir.start_heartbeat()
    deadline = time.monotonic() + 10
    while not lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lost and "took over" in lost[0]
    heir.release()  # not its lease any more: must not remove the thief's
    with pytest.raises(LeaseHeld):
        Lease(store_url, "exp").acquire()
    thief.release()


def test_racing_drivers_one_winner(store_url):
    for round_ in range(3):
        name = f"race{round_}"
        leases = [Lease(store_url, name) for _ in range(8)]
        wins, start = [], threading.Barrier(len(leases))

        def contend(lease):
            start.wait()
            try:
                lease.acquire()
                wins.append(lease)
            except LeaseHeld:
                pass

        threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        wins[0].release()


def test_a_killed_holder_process_expires(store_url, tmp_path):
    import json

    holder = subprocess.Popen([sys.executable, "-c", HOLD, store_url, "6"], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        time.sleep(6.5)  # longer than the lease: the heartbeat keeps it
        with pytest.raises(LeaseHeld) as refused:
            Lease(store_url, "exp").acquire()
        assert f"pid {holder.pid}" in str(refused.value)
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    fs, root = filesystem(store_url)
    expires = json.loads(fs.cat_file(f"{root}/_experiments/exp/lease.json"))["expires"]
    if expires - time.time() > 1.0:  # (a loaded machine may take the whole lease to get here)
        with pytest.raises(LeaseHeld):  # killed, but its lease has not expired yet
            Lease(store_url, "exp").acquire()
    time.sleep(max(0.0, expires - time.time() + 0.3))
    heir = Lease(store_url, "exp")
    assert heir.acquire().pid == holder.pid
    heir.release()
    leftovers = [p for p in fs.find(f"{root}/_experiments/exp") if p.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.integration
@pytest.mark.slow
def test_two_drivers_of_one_experiment(tmp_path):
    """A second `dragsaw run` of a running experiment is refused (exit 2, naming the first
    driver); after the first is SIGKILLed, `resume` is refused while its lease lasts, and
    `resume --take-over` takes over at once and finishes the experiment. (Expiry without
    --take-over: test_a_killed_holder_process_expires.)"""
    from dragsaw.platform.store import ResultStore

    from .test_cli import DRAGSAW
    from .test_launch import spec_file

    store_url = str(tmp_path / "results")
    spec = spec_file(tmp_path, store_url, epochs=100, seeds="[0, 1]", name="leased")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "DRAGSAW_LEASE_SECONDS": "60"}

    def dragsaw(*args, timeout=600):
        return subprocess.run([DRAGSAW, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)

    first = subprocess.Popen([DRAGSAW, "run", str(spec)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env, start_new_session=True)
    checkpoints = tmp_path / "results" / "_checkpoints" / "leased"
    try:
        deadline = time.monotonic() + 240
        while not (checkpoints.exists() and any(checkpoints.glob("*/trial.pt"))):
            assert first.poll() is None and time.monotonic() < deadline, "the first driver never got going"
            time.sleep(0.2)
        second = dragsaw("run", spec, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"pid {first.pid}" in second.stderr and "being run by another driver" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        first.wait()
    refused = dragsaw("resume", "leased", "--store", store_url, timeout=120)
    assert refused.returncode == 2 and f"pid {first.pid}" in refused.stderr, refused.stderr
    assert "--take-over" in refused.stderr and "Traceback" not in refused.stderr
    out = dragsaw("resume", "leased", "--store", store_url, "--take-over")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "took over the experiment from the driver on" in out.stdout and f"pid {first.pid}" in out.stdout
    assert len(ResultStore(store_url).completed("leased")) == 4, out.stdout[-3000:] + out.stderr[-3000:]
    again = dragsaw("run", spec, timeout=300)  # released on exit: free at once
    assert again.returncode == 0 and "4 already complete" in again.stdout, again.stderr
