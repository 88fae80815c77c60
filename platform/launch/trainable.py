"""The Ray Tune trainable: one dragsaw trial, adapted from ``run_trial``'s
``report(metrics, checkpoint_dir)`` to Tune and to the result store.

It runs inside a Ray worker. The trial's results land in the store from here
(so a killed driver loses nothing finished), its checkpoints go beside them,
and a retried or resumed trial continues from its last checkpoint and rewrites
the same result files, so nothing counts twice.

Every attempt is a row: a ``running`` row is written when the attempt starts and
replaced by its outcome (``completed``, ``failed``, ``stopped``). An attempt whose
worker or node died keeps its ``running`` row; the next attempt of the trial (or the
driver, when Tune gives up on it) rewrites it as ``lost``. A configuration that cannot
run (``ConfigError``: checked here before any data is read) is recorded as ``failed``
and reported to Tune as a finished trial with ``trial_failed``, so Ray does not retry
what would fail the same way again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import traceback
from typing import Any

from dragsaw.platform.launch.checkpoints import Uploads
from dragsaw.platform.store import ResultStore
from dragsaw.platform.store.checkpoints import CheckpointStore
from dragsaw.platform.store.provenance import hardware
from dragsaw.workloads.recipe.config import ConfigError

FAILED_KEY = "trial_failed"  # as progress.FAILED_KEY (not imported: it imports Ray Tune)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _numeric(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _node() -> str:
    """The Ray node a trial ran on (host name + node id), or the host name outside Ray."""
    name = os.uname().nodename
    try:
        import ray

        if ray.is_initialized():
            return f"{name}/{ray.get_runtime_context().get_node_id()[:12]}"
    except Exception:  # noqa: BLE001 - provenance must never fail a trial
        pass
    return name


def ensure_data(trial: dict, context: dict) -> None:
    """Write the seeded synthetic look-alike a trial reads when its node lacks it (the
    driver wrote it on its own node only); a file lock keeps two trials on one node from
    writing it at once. Real datasets must be at the same path on every node."""
    root = trial["config"]["data"]["root"]
    recipe = context.get("synthetic", {}).get(root)
    if recipe is None or os.path.exists(root):
        return
    import fcntl

    from dragsaw.workloads.data.synthetic import write_synthetic

    os.makedirs(os.path.dirname(root) or ".", exist_ok=True)
    with open(f"{root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(root):
            options = {k: v for k, v in recipe.items() if k != "kind"}
            write_synthetic(recipe["kind"], root, **options)


def staged_root(trial: dict) -> str | None:
    """The local copy this node reads when the trial's data root is a URL (``s3://...``):
    staged once per node into its cache (``platform/datasets/staging.py``); None for a local root."""
    from dragsaw.platform.datasets.staging import is_url, stage

    root = trial["config"]["data"]["root"]
    return str(stage(root).path) if is_url(root) else None


def _attempts(store: ResultStore, experiment: str, trial_id: str, dataset: str | None = None) -> list[dict]:
    """A trial's stored attempts; with its dataset read by path (one prefix listing and its own
    files: flat in the number of trials stored), else from the experiment's trials table."""
    if dataset is not None:
        return store.attempts_of(experiment, dataset, trial_id).to_pylist()
    table = store.trial_attempts(experiment)
    if not table.num_rows:
        return []
    return [r for r in table.to_pylist() if r["trial_id"] == trial_id]


def _row_of(stored: dict) -> dict:
    """A trial dict (``write_trial``'s input) from a stored trials row."""
    return {"experiment": stored["experiment"], "trial_id": stored["trial_id"], "attempt": stored["attempt"],
            "variant": stored["variant"], "dataset": stored["dataset"], "fold": stored["fold"],
            "seed": stored["seed"], "params": json.loads(stored["params_json"]),
            "config": json.loads(stored["config_json"]), "metrics": json.loads(stored["metrics_json"]),
            "spec_hash": stored["spec_hash"], "git_commit": stored["git_commit"],
            "versions": json.loads(stored["versions_json"]), "hardware": stored["hardware"],
            "node": stored["node"], "started_at": stored["started_at"], "ended_at": stored["ended_at"],
            "error": stored["error"]}


def mark_lost(store: ResultStore, experiment: str, trial_id: str, why: str, dataset: str | None = None) -> int:
    """Rewrite every ``running`` row of a trial as ``lost`` (its worker or node died: no
    outcome was written), with ``why`` as its error; ended_at is when this was noticed.
    Returns the number of rows rewritten."""
    lost = 0
    for stored in _attempts(store, experiment, trial_id, dataset):
        if stored["status"] != "running":
            continue
        row = _row_of(stored)
        row.update(status="lost", ended_at=max(_now(), row["started_at"]),
                   error=f"attempt {row['attempt']} on {row['node']} ended without an outcome: {why}")
        store.write_trial(row, [], [])
        lost += 1
    return lost


def run_one(trial: dict, context: dict, on_epoch=None) -> dict:
    """Run one trial spec (a ``TrialSpec`` as a dict) and store its results.

    context: store_url, spec_hash, git_commit, versions. on_epoch(metrics) is called
    after each epoch (the Tune adapter reports there). Returns the final metrics.
    Raises :class:`ConfigError` (after recording a ``failed`` row) when the config cannot run.
    """
    import torch

    from dragsaw.workloads.recipe import run_trial
    from dragsaw.workloads.recipe.checkpoint import save_weights
    from dragsaw.workloads.recipe.preflight import preflight

    store = ResultStore(context["store_url"])
    checkpoints = CheckpointStore(context["store_url"], trial["experiment"])
    earlier = _attempts(store, trial["experiment"], trial["trial_id"], trial["dataset"])
    attempt = max((a["attempt"] for a in earlier), default=0) + 1
    if any(a["status"] == "running" for a in earlier):
        mark_lost(store, trial["experiment"], trial["trial_id"],
                  f"its worker or node died (attempt {attempt} started on {_node()})", trial["dataset"])
    cpus = max(1, int(trial.get("resources", {}).get("cpu", 1)))
    torch.set_num_threads(cpus)
    started = _now()
    row = {key: trial[key] for key in ("experiment", "trial_id", "variant", "dataset", "fold", "seed", "params",
                                       "config")}
    row.update(attempt=attempt, spec_hash=context["spec_hash"], git_commit=context["git_commit"],
               versions=context["versions"], hardware=hardware(), node=_node(), started_at=started)
    store.write_trial({**row, "status": "running", "metrics": {}, "ended_at": started, "error": None}, [], [])
    elapsed = {"train_seconds": 0.0}

    last_epoch = int(trial["config"].get("train", {}).get("epochs", 0))

    uploads = Uploads(dict(context.get("checkpoints") or {}))
    keep = uploads.options.get("keep", "final")
    scratch = tempfile.mkdtemp(prefix="dragsaw-final-")
    weights = os.path.join(scratch, "weights.pt")

    def report(metrics: dict[str, Any], directory: str) -> None:
        epoch = int(metrics.get("epoch", 0))
        due = uploads.due(epoch, float(metrics.get("epoch_seconds", 0.0)))
        if epoch >= last_epoch:  # it completes with this epoch: only its weights may be kept
            if keep == "final":
                save_weights(directory, weights)
        elif due:
            uploads.upload(checkpoints, trial["trial_id"], directory, epoch)
        elapsed["train_seconds"] += float(metrics.get("epoch_seconds", 0.0))
        # The last epoch is reported by the caller once the results are stored: a scheduler
        # that stops a trial at max_t must not stop it before its results land.
        if on_epoch is not None and metrics.get("epoch") != last_epoch:
            on_epoch({**_numeric(metrics), "train_seconds": elapsed["train_seconds"]})

    resume = None
    try:
        preflight(trial["config"])  # deterministic: a ConfigError is recorded and not retried
        ensure_data(trial, context)
        resume = checkpoints.restore(trial["trial_id"])
        resumed_from = 0
        if resume and os.path.exists(os.path.join(resume, "meta.json")):
            with open(os.path.join(resume, "meta.json")) as handle:
                resumed_from = int(json.load(handle).get("epoch", 0))
        uploads.last_epoch = resumed_from
        result = run_trial(trial["config"], report, resume_from=resume,
                           cpus=float(trial.get("resources", {}).get("cpu", 1)), data_root=staged_root(trial))
        if keep == "final" and not os.path.exists(weights) and resume:
            save_weights(resume, weights)  # resumed after its last epoch: no epoch was reported
    except BaseException as err:
        # Tune stops a trial (a scheduler pruned it, the run was cancelled) by raising
        # SystemExit / KeyboardInterrupt in its thread: that is not a failure of the trial.
        stopped = isinstance(err, (SystemExit, KeyboardInterrupt))
        row.update(status="stopped" if stopped else "failed", metrics={}, ended_at=_now(),
                   error="".join(traceback.format_exception_only(type(err), err)).strip()[:4000])
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            store.write_trial(row, [], [])
        finally:
            raise
    finally:
        if resume:
            shutil.rmtree(resume, ignore_errors=True)
    final = dict(result["metrics"])
    final["train_seconds"] = sum(float(e.get("epoch_seconds", 0.0)) for e in result["epochs"])
    final["resumed_from_epoch"] = resumed_from
    final.update(uploads.figures())
    try:
        if os.path.exists(weights):  # before the completed row: a completed trial's weights are there
            checkpoints.save_weights(trial["trial_id"], weights)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    row.update(status="completed", metrics=final, ended_at=_now(), error=None)
    store.write_trial(row, result["epochs"], result["cases"])
    # The resume checkpoint is dropped once the results are stored (keep: none drops all).
    if keep == "final":
        checkpoints.finish(trial["trial_id"])
    else:
        checkpoints.remove(trial["trial_id"])
    return final


def tune_trainable(config: dict) -> None:
    """Entry point given to ``tune.Tuner`` for grids: ``config`` holds ``trial`` (a grid trial
    spec) and ``context``. Searches use ``search_run.search_trainable``."""
    from ray import tune

    context = config["context"]
    trial = config["trial"]
    try:
        final = run_one(trial, context, on_epoch=lambda m: tune.report(m))
    except ConfigError:
        tune.report({FAILED_KEY: 1, "done_trial": 1})  # recorded as failed; raising would retry it
        return
    tune.report({**_numeric(final), "done_trial": 1})
