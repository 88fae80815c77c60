"""Launching an experiment: checks, data preparation, Ray Tune, results, leaderboard.

Everything that can be wrong with the input is found before Ray starts or anything
is written; ``LaunchError`` carries the message the CLI prints (exit status 2).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dragsaw.platform.store import ResultStore, StoreError
from dragsaw.platform.store import records as _records
from dragsaw.platform.store.provenance import git_commit, versions

WORKER_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}


class LaunchError(Exception):
    """Bad input found before launching: printed without a traceback, exit status 2."""


def absolute(path_or_url: str, base: Path | None = None) -> str:
    """Local paths made absolute (Ray workers run elsewhere); URLs with a scheme kept."""
    if "://" in str(path_or_url):
        return str(path_or_url)
    path = Path(path_or_url).expanduser()
    return str(path if path.is_absolute() else (base or Path.cwd()) / path)


def open_store(url: str) -> ResultStore:
    try:
        store = ResultStore(url)
        store.check()
    except StoreError as err:
        raise LaunchError(str(err)) from None
    return store


def experiment_record(spec) -> dict:
    return {"spec": portable_spec(spec), "git_commit": git_commit(), "versions": versions()}


def portable_spec(spec) -> dict:
    """The spec as JSON types, with local dataset roots and the cache folder made absolute, so
    that ``dragsaw resume NAME`` finds the same data from any working directory."""
    from dragsaw.platform.experiment.datasets import resolve_root

    data = spec.model_dump(mode="json")
    for d in data["datasets"]:
        if "://" not in d["root"]:
            d["root"] = str(resolve_root(d["root"]))
    if data.get("cache_dir") and "://" not in data["cache_dir"]:
        data["cache_dir"] = str(resolve_root(data["cache_dir"]))
    return data


def save_record(store_url: str, spec, spec_hash: str) -> None:
    """Keep the validated spec beside the results, for ``dragsaw resume NAME`` and reports.
    Its ``store`` is informative only: a store is found where it is, never where it was."""
    _records.save_record(store_url, spec.name, {**experiment_record(spec), "spec_hash": spec_hash})


def load_record(store_url: str, name: str) -> dict:
    """The record ``save_record`` wrote for experiment ``name``; LaunchError naming the
    experiments of the store when there is none."""
    try:
        return _records.load_record(store_url, name)
    except _records.RecordMissing as err:
        raise LaunchError(str(err)) from None


#: Credentials Ray Tune copies from the driver's environment into every trial's runtime_env
#: (ray/tune/execution/class_cache.py), which Ray logs in plain text (runtime_env_agent.log).
#: Trials take them from their own environment instead: the one Ray was started with
#: (in-process), or the node's (a cluster's Secret).
WITHHELD = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")

#: Not secret, and needed by trials to reach the store: passed in the job's runtime_env.
PASSED = ("DRAGSAW_CACHE", "DRAGSAW_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
          "AWS_DEFAULT_REGION")


def ray_init(address: str | None, num_cpus: int | None = None) -> bool:
    """Start Ray in this process (``address`` None) or connect to a cluster; returns whether
    this call did it (False when Ray was already initialized). No credential goes into the
    job's runtime_env: Ray started here hands its own environment to its workers."""
    # Tune's own console tables would interleave with dragsaw's progress lines.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import logging

    import ray

    if address is None:
        # A cluster started here enables token authentication and says so on every run; the
        # notice is about Ray's defaults, not about the experiment (RAY_AUTH_MODE still rules).
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)

    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": dict(WORKER_ENV)}
    for key in PASSED:
        if key in os.environ:
            runtime_env["env_vars"][key] = os.environ[key]
    # "local": a new Ray in this process even when `ray start` runs on this machine (ray.init()
    # without an address would join that cluster, whose workers lack this shell's environment).
    kwargs: dict[str, Any] = {"address": address} if address else {"address": "local", "num_cpus": num_cpus,
                                                                    "include_dashboard": False}
    from ray.exceptions import AuthenticationError

    try:
        ray.init(runtime_env=runtime_env, log_to_driver=False, configure_logging=False, **kwargs)
    except (ConnectionError, AuthenticationError) as err:
        if address is None:
            raise
        raise LaunchError(f"--address {address}: cannot connect to the Ray cluster there: {err}. Check the address "
                          "(`ray status` on the head prints it) and that this shell's RAY_AUTH_MODE matches the "
                          "cluster's (`ray start` enables token authentication: export RAY_AUTH_MODE=token)") from None
    from dragsaw.platform.launch.interrupts import reinstall

    reinstall()  # Ray's core just replaced the SIGTERM handler with one that aborts
    return True


def ray_shutdown() -> None:
    """Shut Ray down if it is initialized: every exit path calls it, since a process that
    exits with Ray's threads running can abort (``terminate called without an active
    exception``, exit 134)."""
    import sys

    if "ray" not in sys.modules:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()


@contextmanager
def credentials_withheld() -> Iterator[None]:
    """Keep :data:`WITHHELD` out of ``os.environ`` while Tune creates trials, so that Tune does
    not copy them into runtime_envs that Ray logs. Filesystems this process opened before
    keep the credentials they resolved."""
    saved = {k: os.environ.pop(k) for k in WITHHELD if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def fit(tuner) -> Any:
    """``tuner.fit()`` without credentials in reach of Tune (see :func:`credentials_withheld`)."""
    with credentials_withheld():
        return tuner.fit()


def trial_resources(spec, echo: Callable[[str], None] = print, address: str | None = None) -> dict[str, float]:
    """The spec's per-trial resources. Ray started in this process on a machine without a GPU
    drops the GPU request (with a note), so a GPU spec still runs on a CPU-only machine instead
    of waiting forever; on a cluster (``--address``) the request stands, since an autoscaler
    may bring GPU nodes up."""
    import ray

    cpus, gpus = float(spec.resources.cpus), float(spec.resources.gpus)
    if gpus and address is None and not ray.cluster_resources().get("GPU", 0):
        echo(f"note: the spec asks {gpus:g} GPU per trial but this Ray cluster has no GPU; "
             "running on CPUs")
        gpus = 0.0
    return {"cpu": cpus, "gpu": gpus}


def concurrency(spec) -> int:
    """The spec's concurrency, or as many trials as the cluster's CPUs (GPUs) hold."""
    if spec.concurrency:
        return int(spec.concurrency)
    import ray

    total = ray.cluster_resources()
    fits = [total.get("CPU", 1) / max(spec.resources.cpus, 1e-9)]
    if spec.resources.gpus and total.get("GPU", 0):
        fits.append(total.get("GPU", 0) / spec.resources.gpus)
    return max(1, int(min(fits)))


def tune_storage(store_url: str) -> str:
    """Where Tune keeps its own bookkeeping: :func:`dragsaw.platform.store.records.tune_folder`
    (the store package owns every path under its root)."""
    from dragsaw.platform.store.records import tune_folder

    return tune_folder(store_url)


def compacting(store_url: str, experiment: str, every_n: int = 50, every_s: float = 300.0):
    """A Tune callback that compacts the experiment's results in the background every
    ``every_n`` finished trials or ``every_s`` seconds (``store.compactor.Compactor``)."""
    from ray import tune

    from dragsaw.platform.store.compactor import Compactor

    class Compacting(tune.Callback):
        # Tune pickles its callbacks: the Compactor (a lock, a thread) is made on first use.
        def __init__(self):
            self.compactor: Compactor | None = None

        def __getstate__(self):
            return {**self.__dict__, "compactor": None}

        def _note(self):
            if self.compactor is None:
                self.compactor = Compactor(ResultStore(store_url), experiment, every_n, every_s)
            self.compactor.note()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._note()

        def on_trial_error(self, iteration, trials, trial, **info):
            self._note()

        def on_experiment_end(self, trials, **info):
            if self.compactor is not None:
                self.compactor.close()

    return Compacting()


def run_grid(spec, trials: list, store_url: str, context: dict, address: str | None,
             echo: Callable[[str], None], trainable_fn: Callable | None = None, progress=None) -> dict:
    """Run grid trials with Ray Tune; returns {"ok": n, "failed": n} as Tune saw them.
    ``trainable_fn`` replaces the trial runner (benchmarks measure the orchestration with
    fixed work); ``progress``: the Progress callback to use instead of a new one. The run stops in order when the active
    ``Interrupts`` is stopping."""
    from ray import tune

    from dragsaw.platform.launch.interrupts import StopOnInterrupt
    from dragsaw.platform.launch.progress import Progress, failed_result
    from dragsaw.platform.launch.trainable import tune_trainable

    ray_init(address)
    resources = trial_resources(spec, echo, address)
    trainable = tune.with_resources(trainable_fn or tune_trainable, resources)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([dataclasses.asdict(t) for t in trials]), "context": context},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency(spec), reuse_actors=True),
        run_config=tune.RunConfig(
            name=spec.name, storage_path=tune_storage(store_url), verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
            callbacks=[progress or Progress(len(trials), "dice", "max", echo, store_url=store_url),
                       compacting(store_url, spec.name)],
            stop=StopOnInterrupt(),
        ),
    )
    grid = fit(tuner)
    failed = sum(1 for r in grid if failed_result(r))
    return {"ok": len(grid) - failed, "failed": failed}
