"""Orchestration overhead: 8 trials of fixed work (10 s of CPU each) on 2 CPUs through the
platform's Ray Tune setup (resources, concurrency, actor reuse, progress callback, results
written to the store), against the ideal 8 x 10 / 2 = 40 s.

Run: python benchmarks/bench_orchestration.py [--trials 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def fixed_work(config: dict) -> None:
    """Burn ``seconds`` of CPU in this worker, report like a trial, write its row to the store."""
    from ray import tune

    from dragsaw.platform.store import ResultStore

    trial, context = config["trial"], config["context"]
    start = time.perf_counter()
    while time.perf_counter() - start < trial["params"]["seconds"]:
        pass
    now = dt.datetime.now(dt.timezone.utc)
    row = {k: trial[k] for k in ("experiment", "trial_id", "variant", "dataset", "fold", "seed", "params", "config")}
    row.update(attempt=1, status="completed", metrics={"dice": 0.5}, spec_hash=context["spec_hash"],
               git_commit="bench", versions={}, hardware="bench", node="bench", started_at=now, ended_at=now,
               error=None)
    ResultStore(context["store_url"]).write_trial(row, [{"epoch": 1, "dice": 0.5}], [])
    tune.report({"dice": 0.5, "epoch": 1})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    import ray

    from dragsaw.platform.experiment.grid import TrialSpec
    from dragsaw.platform.experiment.loading import validate_spec
    from dragsaw.platform.launch.run import ray_init, run_grid

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        spec = validate_spec({"name": "overhead", "store": f"{tmp}/results",
                              "datasets": [{"name": "isic2016", "root": f"{tmp}/data"}],
                              "model": {"name": "unet"}, "resources": {"cpus": 1}, "concurrency": 2})
        trials = [TrialSpec(trial_id=f"t{i}", experiment="overhead", variant="fixed", dataset="isic2016", fold="test",
                            seed=i, fraction=1.0, params={"seconds": args.seconds}, config={},
                            resources={"cpu": 1.0, "gpu": 0.0}) for i in range(args.trials)]
        context = {"store_url": f"{tmp}/results", "spec_hash": "bench"}
        t0 = time.perf_counter()
        ray_init(None, num_cpus=2)
        t1 = time.perf_counter()
        outcome = run_grid(spec, trials, f"{tmp}/results", context, None, lambda line: None, trainable_fn=fixed_work)
        t2 = time.perf_counter()
        ray.shutdown()
        from dragsaw.platform.store import ResultStore

        landed = len(ResultStore(f"{tmp}/results").completed("overhead"))
    ideal = args.trials * args.seconds / 2
    print(f"{args.trials} trials x {args.seconds:g} s of CPU on 2 CPUs (concurrency 2), {outcome}; "
          f"{landed} results landed")
    print(f"  Ray start-up          : {t1 - t0:6.1f} s")
    print(f"  trials (Tuner.fit)    : {t2 - t1:6.1f} s   ideal {ideal:.1f} s -> {(t2 - t1) / ideal:.3f}x "
          f"(target <= 1.2x)")
    print(f"  total                 : {t2 - t0:6.1f} s   target <= {1.2 * ideal + (t1 - t0):.1f} s "
          f"(1.2 x ideal + start-up)")


if __name__ == "__main__":
    main()
