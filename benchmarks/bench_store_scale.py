"""The result store at lab scale (issue 9): trial-start reads, compaction, leaderboards with
paired tests over millions of case rows, on a local folder and on a real S3 server on loopback
(SeaweedFS, started and stopped by this script).

Run: python benchmarks/bench_store_scale.py [--quick] [--backends local,seaweed] [--repeats 25]

Synthetic trials are written through the real store API (``ResultStore.write_trial``, cases as
an Arrow table), 4 variants of one dataset, 100 cases x 2 classes each. Printed, each with its
target and "OVER TARGET" where missed:

1. trial start: ``attempts_of`` (what a starting trial reads: its own attempts, by path) with
   100, 1,000 and 10,000 trials stored, median over ``--repeats`` random trials
   (target <= 50 ms at every size); beside it, once, the experiment-wide read trials did before.
2. compaction of the 10,000-trial experiment (rows/s, files/s), then again after 100 more trials
   (what a driver's periodic compaction costs).
3. leaderboard with paired tests (every variant against v0: two-level bootstrap, Holm) over
   10,000 trials x 100 cases x 2 classes (2 M rows) after compaction, each call in a fresh
   process, after the load average has settled under 1 (up to 3 minutes): median wall time of
   3 calls (<= 2 s local, <= 4 s S3) and the largest peak RSS (<= 1.5 GiB).
4. local only: the same over 200 trials x 250,000 case rows (50 M rows) (<= 30 s, <= 3 GiB).

``--quick`` shrinks every size (100 and 1,000 trials; 200 x 2,500 rows) for a smoke test; its
figures are not the targets' sizes. The machine's load average is printed with each figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dragsaw.platform.store import ResultStore  # noqa: E402

EXPERIMENT, BIG = "scale", "big"
DATASET = "isic2016"
VARIANTS = ("v0", "v1", "v2", "v3")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
GIB = 1024 ** 3


def trial(experiment: str, i: int) -> dict:
    variant = VARIANTS[i % len(VARIANTS)]
    return {"experiment": experiment, "trial_id": f"{variant}-s{i // len(VARIANTS):05d}", "attempt": 1,
            "status": "completed", "variant": variant, "dataset": DATASET, "fold": "0",
            "seed": i // len(VARIANTS), "params": {"variant": variant}, "config": {"data": {"fraction": 1.0}},
            "metrics": {"dice": 0.8, "convention": "paper2d"}, "spec_hash": "0" * 16, "git_commit": "bench",
            "versions": {"dragsaw": "0.1.0"}, "hardware": "cpu", "node": "bench", "started_at": NOW,
            "ended_at": NOW + dt.timedelta(seconds=60), "error": None}


def cases(i: int, n_cases: int) -> pa.Table:
    """n_cases x 2 classes of one trial as an Arrow table (background is the complement)."""
    rng = np.random.default_rng(i)
    v = i % len(VARIANTS)
    pixels = 256 * 256
    lesion = rng.integers(2000, 20000, n_cases)
    miss = (lesion * rng.uniform(0.02, 0.3 - 0.04 * v, n_cases)).astype(np.int64)
    fp = rng.integers(0, 2000, n_cases)
    tp, fn = lesion - miss, miss
    tn = pixels - tp - fn - fp
    ids = pa.array([f"c{k:06d}" for k in range(n_cases)])
    fg = 2 * tp / (2 * tp + fp + fn)
    bg = 2 * tn / (2 * tn + fn + fp)
    both = lambda a, b: np.stack([a, b], 1).reshape(-1)  # noqa: E731 - interleave background, lesion
    dice = both(bg, fg)
    return pa.table({"case_id": pa.array(np.repeat(ids.to_numpy(zero_copy_only=False), 2)),
                     "class_index": both(np.zeros(n_cases, np.int64), np.ones(n_cases, np.int64)),
                     "class_name": np.tile(np.array(["background", "lesion"]), n_cases),
                     "tp": both(tn, tp), "fp": both(fn, fp), "fn": both(fp, fn), "tn": both(tp, tn),
                     "dice": dice, "jaccard": dice / (2 - dice), "accuracy": both((tp + tn) / pixels, (tp + tn) / pixels),
                     "empty": pa.array(["nan"] * (2 * n_cases))})


def write(store: ResultStore, experiment: str, start: int, stop: int, n_cases: int, threads: int = 8) -> float:
    """Write trials start..stop-1; returns seconds."""
    epochs = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, 4)]

    def one(i: int) -> None:
        store.write_trial(trial(experiment, i), epochs, cases(i, n_cases))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(start, stop)))
    return time.perf_counter() - t0


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER TARGET"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def trial_start(url: str, sizes: list[int], repeats: int, label: str) -> None:
    store = ResultStore(url)
    have = 0
    for size in sizes:
        took = write(store, EXPERIMENT, have, size, 100)
        print(f"[{label}] wrote trials {have}..{size - 1} (100 cases x 2 classes each) in {took:.1f} s")
        have = size
        times = []
        for i in random.Random(size).sample(range(size), min(repeats, size)):
            t = trial(EXPERIMENT, i)
            fresh = ResultStore(url)
            t0 = time.perf_counter()
            rows = fresh.attempts_of(EXPERIMENT, DATASET, t["trial_id"])
            times.append(time.perf_counter() - t0)
            assert rows.num_rows == 1
        median = statistics.median(times)
        print(f"[{label}] trial-start read, {size:>6,} trials stored: median {median * 1000:.1f} ms over "
              f"{len(times)} trials (max {max(times) * 1000:.1f}); target <= 50 ms: {verdict(median, 0.05)}; {load()}")
        if size <= 1000 or label == "local":
            t0 = time.perf_counter()
            ResultStore(url).trial_attempts(EXPERIMENT)
            print(f"[{label}]   (before: the whole trials table, as every trial read it: "
                  f"{time.perf_counter() - t0:.2f} s)")


def compaction(url: str, size: int, label: str) -> None:
    store = ResultStore(url)
    t0 = time.perf_counter()
    written = store.compact(EXPERIMENT)
    took = time.perf_counter() - t0
    rows = size * (1 + 3 + 200)
    print(f"[{label}] compact {size:,} trials ({3 * size:,} files, {rows:,} rows): {took:.1f} s = "
          f"{3 * size / took:,.0f} files/s, {rows / took:,.0f} rows/s ({written}); {load()}")
    write(store, EXPERIMENT, size, size + 100, 100)
    t0 = time.perf_counter()
    store.compact(EXPERIMENT)
    print(f"[{label}] compact again after 100 more trials: {time.perf_counter() - t0:.1f} s; {load()}")


def settle(limit_s: float = 180.0) -> None:
    """Wait (up to ``limit_s``) until the 1-minute load average is under 1: the writes and
    compactions before a timing leave the disk flushing and the load average high."""
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= 1.0 and time.monotonic() < deadline:
        time.sleep(5)


def board(url: str, experiment: str, label: str, what: str, target_s: float, target_rss: float,
          runs: int = 3, quiet: bool = True) -> None:
    """The leaderboard with paired tests, each run in a fresh process: the median wall time of
    ``runs`` calls and the largest peak RSS of any (after ``settle`` when ``quiet``)."""
    if quiet:
        settle()
    results = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, __file__, "--child", url, experiment], capture_output=True,
                             text=True, env=os.environ.copy())
        if out.returncode != 0:
            print(f"[{label}] leaderboard {what}: FAILED\n{out.stderr[-3000:]}")
            return
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    seconds = statistics.median(r["seconds"] for r in results)
    rss = max(r["maxrss"] for r in results) / GIB
    r = results[0]
    each = ", ".join(f"{x['seconds']:.2f}" for x in results)
    print(f"[{label}] leaderboard + paired tests, {what}: {seconds:.2f} s median of {runs} "
          f"({each}; target <= {target_s:g} s: "
          f"{verdict(seconds, target_s)}), peak RSS {rss:.2f} GiB (target <= {target_rss:g} GiB: "
          f"{verdict(rss, target_rss)}); {r['rows']} rows, n per variant {r['n']}; {load()}")


def child(url: str, experiment: str) -> None:
    from dragsaw.platform.leaderboard import leaderboard

    t0 = time.perf_counter()
    rows = leaderboard(ResultStore(url), experiment=experiment, baseline="v0")
    seconds = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "maxrss": maxrss, "rows": len(rows),
                      "n": sorted({r["n"] for r in rows})}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not the targets")
    parser.add_argument("--backends", default="local,seaweed", help="comma-separated: local, seaweed")
    parser.add_argument("--repeats", type=int, default=25, help="trials timed per size (default 25)")
    parser.add_argument("--child", nargs=2, metavar=("URL", "EXPERIMENT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [100, 1000] if args.quick else [100, 1000, 10000]
    big = (200, 2500) if args.quick else (200, 125000)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"machine: {os.cpu_count()} CPUs, {load()}; sizes {sizes}; big {big[0]} trials x {2 * big[1]:,} rows")
    with tempfile.TemporaryDirectory(prefix="dragsaw-scale-") as folder:
        for label in backends:
            server = None
            if label == "seaweed":
                from tests.platform.s3_server import create_bucket, s3_environment, start_seaweedfs

                server = start_seaweedfs()
                os.environ.update(s3_environment(server.endpoint))
                create_bucket(server.endpoint, "scale")
                url = "s3://scale/results"
            else:
                url = f"{folder}/results"
            try:
                trial_start(url, sizes, args.repeats, label)
                compaction(url, sizes[-1], label)
                board(url, EXPERIMENT, label, f"{sizes[-1] + 100:,} trials x 100 cases x 2 classes, compacted",
                      2.0 if label == "local" else 4.0, 1.5, quiet=not args.quick)
                if label == "local":
                    store = ResultStore(url)
                    took = write(store, BIG, 0, big[0], big[1], threads=2)
                    print(f"[{label}] wrote {big[0]} trials x {2 * big[1]:,} case rows in {took:.1f} s")
                    board(url, BIG, label, f"{big[0]} trials x {2 * big[1]:,} case rows, per-trial files",
                          30.0, 3.0, quiet=not args.quick)
            finally:
                if server is not None:
                    server.stop()


if __name__ == "__main__":
    main()
