"""Leaderboard over 1,000,000 case rows, from a local folder and from a local S3 endpoint.

Run: python benchmarks/bench_leaderboard.py [--cases 2500] [--repeats 5]

The store holds one experiment shaped like a real grid: 2 datasets x 4 variants x 5 folds
x 5 seeds = 200 trials, each with ``--cases`` evaluated cases of 2 classes (background,
lesion), so 200 x 2500 x 2 = 1,000,000 rows in the cases table (200 Parquet files) plus
200 trials rows and 200 epochs files. It is written through ``ResultStore.write_trial`` to
a temporary folder and to a bucket on a ``moto_server`` this script starts (and stops).

Timed (median over ``--repeats`` runs, each from a fresh ``ResultStore``, nothing cached):
``leaderboard(store, experiment=...)`` (means, std, n, ranks; targets: <= 1 s local,
<= 2 s S3; the store keeps no spec, so no comparisons) and the same with ``baseline=`` (adds
each variant against the baseline: a two-level bootstrap over 25 runs x 12,500 cases,
2,000 replicates, Holm-corrected); first on the per-trial files as written, then
after ``store.compact(experiment)`` (one file per partition and table). On moto every
request costs about 5 ms and moto answers one at a time, so 400 per-trial files cost
about 2 s of requests alone; real S3 answers the same requests concurrently (``--s3 seaweed``
runs the S3 half against SeaweedFS, a real S3 server, on loopback).
The machine's load average is printed: on a shared 2-core machine it moves the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dragsaw.platform.leaderboard import format_rows, leaderboard  # noqa: E402
from dragsaw.platform.store import ResultStore  # noqa: E402
from tests.platform.s3_server import (  # noqa: E402
    create_bucket,
    s3_environment,
    start_moto,
    start_seaweedfs,
    stop,
)

DATASETS = ("isic2016", "isic2017")
VARIANTS = ("baseline", "pdcr", "uafr", "pdcr_uafr")
FOLDS, SEEDS = 5, 5
EXPERIMENT = "bench"


def trials(cases_per_trial: int):
    """Yield (trial, epochs, cases) for the whole grid, deterministic."""
    rng = np.random.default_rng(0)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    pixels = 256 * 256
    for dataset in DATASETS:
        for v, variant in enumerate(VARIANTS):
            for fold in range(FOLDS):
                ids = [f"{dataset}_case{fold}_{i:05d}" for i in range(cases_per_trial)]
                for seed in range(SEEDS):
                    lesion = rng.integers(2000, 20000, cases_per_trial)
                    miss = (lesion * rng.uniform(0.02, 0.3 - 0.04 * v, cases_per_trial)).astype(np.int64)
                    extra = rng.integers(0, 2000, cases_per_trial)
                    tp, fn, fp = lesion - miss, miss, extra
                    tn = pixels - tp - fn - fp
                    cases = []
                    for i, case_id in enumerate(ids):
                        fg = (int(tp[i]), int(fp[i]), int(fn[i]), int(tn[i]))
                        bg = (fg[3], fg[2], fg[1], fg[0])  # background is the complement
                        for index, (name, c) in enumerate((("background", bg), ("lesion", fg))):
                            d = 2 * c[0] / (2 * c[0] + c[1] + c[2])
                            cases.append({"case_id": case_id, "class_index": index, "class_name": name,
                                          "tp": c[0], "fp": c[1], "fn": c[2], "tn": c[3], "dice": d,
                                          "jaccard": d / (2 - d), "accuracy": (c[0] + c[3]) / pixels,
                                          "empty": "nan"})
                    trial = {"experiment": EXPERIMENT, "trial_id": f"{dataset}-{variant}-f{fold}-s{seed}",
                             "attempt": 1, "status": "completed", "variant": variant, "dataset": dataset,
                             "fold": str(fold), "seed": seed, "params": {"variant": variant},
                             "config": {"dataset": dataset}, "metrics": {"dice": 0.8, "convention": "paper2d"},
                             "spec_hash": "0" * 16, "git_commit": "bench", "versions": {"dragsaw": "0.1.0"},
                             "hardware": "cpu", "node": "bench", "started_at": now, "ended_at": now, "error": None}
                    epochs = [{"epoch": e, "train_loss": 1.0 / e, "dice": 0.5 + 0.01 * e} for e in range(1, 11)]
                    yield trial, epochs, cases


def timed(url: str, repeats: int, **kwargs) -> tuple[float, list[float], list[dict]]:
    times, rows = [], []
    for _ in range(repeats):
        store = ResultStore(url)
        start = time.perf_counter()
        rows = leaderboard(store, experiment=EXPERIMENT, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2500, help="cases per trial (default 2500 -> 1M rows)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--s3", choices=("moto", "seaweed"), default="moto",
                        help="the S3 server on loopback: moto_server (default) or SeaweedFS")
    args = parser.parse_args()
    if args.s3 == "seaweed":
        server = start_seaweedfs()
        endpoint, halt = server.endpoint, server.stop
    else:
        proc, endpoint = start_moto()
        halt = lambda: stop(proc)  # noqa: E731
    try:
        os.environ.update(s3_environment(endpoint))
        create_bucket(endpoint, "bench")
        with tempfile.TemporaryDirectory(prefix="dragsaw-bench-") as folder:
            urls = {"local": f"{folder}/results", "s3": "s3://bench/results"}
            stores = {k: ResultStore(u) for k, u in urls.items()}
            start, rows = time.perf_counter(), 0
            for trial, epochs, cases in trials(args.cases):
                for store in stores.values():
                    store.write_trial(trial, epochs, cases)
                rows += len(cases)
            print(f"wrote {rows:,} case rows ({len(DATASETS) * len(VARIANTS) * FOLDS * SEEDS} trials) to a "
                  f"local folder and to {args.s3} S3 in {time.perf_counter() - start:.1f} s")
            for state in ("per-trial files", "compacted"):
                if state == "compacted":
                    for name, store in stores.items():
                        start = time.perf_counter()
                        written = store.compact(EXPERIMENT)
                        print(f"{name:5s} compact({EXPERIMENT!r}) wrote {written} in "
                              f"{time.perf_counter() - start:.2f} s")
                for name, url in urls.items():
                    target = 1.0 if name == "local" else 2.0
                    for label, kwargs in (("leaderboard", {}), ("+ baseline tests", {"baseline": "baseline"})):
                        median, times, board = timed(url, args.repeats, **kwargs)
                        ok = "ok" if median <= target else "OVER TARGET"
                        print(f"{state:15s} {name:5s} {label:17s} median {median:.3f} s over {args.repeats} runs "
                              f"(min {min(times):.3f}, max {max(times):.3f}); target <= {target:.0f} s: {ok}")
            print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end")
            print()
            print(format_rows(board, "table"))
    finally:
        halt()


if __name__ == "__main__":
    main()
