"""Running the Optuna searches of a spec with Ray Tune: one study per dataset, kept with the
results (``search.storage_for``), driven by ask and tell (``search.tune_searcher``).

One id per sample (``<study>-<number>``): the progress line, Tune's trial name, the store's
variant and trial id (``<id>-f<fold>`` per fold with ``mean_over_folds``), the leaderboard and
the Optuna trial's ``dragsaw_sample`` attribute. A resume rebuilds from the study and the
store alone: Tune keeps its bookkeeping in a temporary folder that nothing reads back."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dragsaw.platform.launch.run import LaunchError

if TYPE_CHECKING:
    import optuna

    from dragsaw.platform.experiment.schema import ExperimentSpec
    from dragsaw.platform.search.study import StudySpec
    from dragsaw.platform.store import ResultStore


def sample_trials(study: StudySpec, sample: str, params: dict) -> list[dict]:
    """The trial specs (dicts) of one sample: one per fold it is scored on, each with the
    sample id as variant and trial id (``<sample>-f<fold>`` with several folds). ValueError
    (SpaceError, pydantic's ValidationError) when the configuration is not valid."""
    folds = study.folds if study.search.objective == "mean_over_folds" else study.folds[:1]
    out = []
    for fold in folds:
        trial = study.trial(params, fold)
        tid = sample if len(folds) == 1 else f"{sample}-f{fold}"
        out.append(dataclasses.asdict(dataclasses.replace(trial, trial_id=tid, variant=sample)))
    return out


def search_trainable(config: dict, study: Any = None, context: dict | None = None) -> None:
    """Tune entry point of a search sample: ``config`` is the searcher's suggestion
    (``sample``, ``number``, ``params``). With objective ``mean_over_folds`` every fold is
    trained and the mean reported. The last report carries ``done_trial``: a trial that ends
    without it was stopped (pruned or interrupted)."""
    from ray import tune

    from dragsaw.platform.launch.trainable import FAILED_KEY, _numeric, run_one
    from dragsaw.workloads.recipe.config import ConfigError

    if study is None or context is None:
        raise TypeError("search_trainable needs study= and context= (tune.with_parameters)")
    # NaN metrics: Tune requires the metric in every result; the searcher tells FAIL
    failed = {**{m: float("nan") for m in study.metrics}, FAILED_KEY: 1, "done_trial": 1, "epoch": 0}
    try:
        trials = sample_trials(study, config["sample"], dict(config["params"]))
    except ValueError as err:  # the searcher checked this already; never retried
        tune.report({**failed, "error": str(err)[:500]})
        return
    try:
        if len(trials) == 1:
            final = run_one(trials[0], context, on_epoch=lambda m: tune.report(m))
            epochs = int(trials[0]["config"]["train"]["epochs"])  # the last step, for ASHA and Optuna
            tune.report({"epoch": epochs, **_numeric(final), "done_trial": 1})
            return
        finals = [run_one(t, context) for t in trials]
    except ConfigError:  # recorded as failed; raising would have Ray retry it
        tune.report(failed)
        return
    mean = {k: sum(f[k] for f in finals) / len(finals) for k in _numeric(finals[0]) if all(k in f for f in finals)}
    mean["epoch"] = int(trials[0]["config"]["train"]["epochs"])
    tune.report({**mean, "folds": len(finals), "done_trial": 1})


def _validator(study: StudySpec) -> Callable[[dict, str], None]:
    def validate(params: dict, sample: str) -> None:
        sample_trials(study, sample, params)
    return validate


def open_studies(spec: ExperimentSpec, store_url: str) -> tuple[Any, str]:
    """(Optuna storage, where) of the spec's studies; LaunchError for an unusable location."""
    from dragsaw.platform.search.storage import study_storage

    if spec.search is None:
        raise LaunchError(f"{spec.name}: the spec has no `search`, so it has no studies")
    try:
        return study_storage(spec.search.storage, store_url, spec.name)
    except ValueError as err:
        raise LaunchError(str(err)) from None


def run_searches(spec: ExperimentSpec, studies: list[StudySpec], store_url: str, context: dict, address: str | None,
                 echo: Callable[[str], None]) -> dict:
    """Run each study's remaining samples with Ray Tune; returns {"ok": n, "failed": n} (ok:
    COMPLETE or PRUNED; failed: FAIL) and the counts of this run's outcomes by Optuna state
    (COMPLETE, PRUNED, FAIL, RUNNING for interrupted ones). Stops in order (no further study)
    when the active ``Interrupts`` is stopping."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from dragsaw.platform.launch.interrupts import StopOnInterrupt, stopping
    from dragsaw.platform.launch.run import concurrency, fit, ray_init, trial_resources
    from dragsaw.platform.search.study import open_study
    from dragsaw.platform.search.tune_progress import SearchProgress
    from dragsaw.platform.search.tune_searcher import StudySearcher, finished_samples
    from dragsaw.platform.store import ResultStore

    storage, where = open_studies(spec, store_url)
    ray_init(address)
    echo(f"Optuna studies in {where}")
    results = ResultStore(store_url)
    totals: dict[str, int] = {}
    for study in studies:
        if stopping():
            break
        for cut in study.cuts:  # never sampled (probe.effective_space)
            echo(f"note: {cut.note()}")
        try:
            optuna_study = open_study(storage, study, echo=echo)
        except ValueError as err:  # a changed space (check_space)
            raise LaunchError(str(err)) from None
        warm = study.search.warm_start
        if warm is not None:
            from dragsaw.platform.search.warm_start import warm_start

            warm_start(optuna_study, study.space, results, warm.experiments, warm.top, study.metrics[0],
                       study.modes[0], echo, self_name=spec.name)
        reconcile(optuna_study, results, spec.name)
        finished = finished_samples(optuna_study)
        remaining = max(0, study.search.num_samples - finished)
        if remaining == 0:
            echo(f"study {study.study_name}: {finished} samples already complete")
            continue
        searcher = StudySearcher(study, optuna_study, remaining, validate=_validator(study), stopping=stopping)
        if searcher.resumable:
            echo(f"study {study.study_name}: resuming {len(searcher.resumable)} interrupted samples "
                 f"({', '.join(s.user_attrs.get('dragsaw_sample', str(s.number)) for s in searcher.resumable)})")
        sched = study.scheduler
        scheduler = None
        if sched.get("type") == "asha":
            scheduler = ASHAScheduler(time_attr="epoch", max_t=sched["max_t"], grace_period=sched["grace_period"],
                                      reduction_factor=sched["reduction_factor"])
        progress = SearchProgress(remaining, study.metrics[0], study.modes[0], echo)
        trainable = tune.with_resources(tune.with_parameters(search_trainable, study=study, context=context),
                                        trial_resources(spec, echo, address))
        scratch = tempfile.mkdtemp(prefix="dragsaw-tune-")  # Tune's bookkeeping: never read back
        try:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                            max_concurrent_trials=concurrency(spec), metric=study.metrics[0],
                                            mode=study.modes[0], reuse_actors=True,
                                            trial_name_creator=_trial_name, trial_dirname_creator=_trial_dirname),
                run_config=tune.RunConfig(name=f"{spec.name}-{study.dataset}", verbose=0, storage_path=scratch,
                                          failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
                                          callbacks=[progress], stop=StopOnInterrupt()),
            )
            fit(tuner)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        reconcile(optuna_study, results, spec.name)
        _keep_best_weights(spec, study, optuna_study, store_url)
        for state, _ in searcher.outcomes.values():
            totals[state] = totals.get(state, 0) + 1
    if totals:
        echo("samples this run: " + ", ".join(f"{n} {s}" for s, n in sorted(totals.items())))
    return {"ok": totals.get("COMPLETE", 0) + totals.get("PRUNED", 0), "failed": totals.get("FAIL", 0), **totals}


def _keep_best_weights(spec: ExperimentSpec, study: StudySpec, optuna_study: Any, store_url: str) -> None:
    """The study keeps the final weights of its best ``checkpoints.top_k`` samples only."""
    from dragsaw.platform.launch.checkpoints import keep_top_samples

    folds = study.folds if study.search.objective == "mean_over_folds" else study.folds[:1]
    names = {t.user_attrs.get("dragsaw_sample", "") for t in optuna_study.get_trials(deepcopy=False)}
    trials = {s: [s] if len(folds) == 1 else [f"{s}-f{f}" for f in folds] for s in names if s}
    keep_top_samples(optuna_study, store_url, spec.name, trials, spec.checkpoints.top_k, study.modes[0] == "min")


def _trial_name(trial) -> str:
    return str(trial.config.get("sample", trial.trial_id))


def _trial_dirname(trial) -> str:
    return f"{trial.config.get('sample', 'trial')}_{trial.trial_id}"


def reconcile(optuna_study: optuna.Study, results: ResultStore, experiment: str) -> int:
    """Record the study's PRUNED samples as ``pruned`` in the store's trials table (their
    latest attempt, written ``stopped`` or left ``running`` by the worker Tune stopped), with
    the step they were stopped on. Idempotent; run after each study and before a resume.
    Returns the rows rewritten."""
    from optuna.trial import TrialState

    from dragsaw.platform.search.tune_searcher import SAMPLE_ATTR

    pruned = {t.user_attrs[SAMPLE_ATTR]: (max(t.intermediate_values) if t.intermediate_values else None)
              for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
              if SAMPLE_ATTR in t.user_attrs}
    if not pruned:
        return 0
    table = results.trial_attempts(experiment)
    rows = table.to_pylist() if table.num_rows else []
    done = 0
    for row in rows:
        sample = row["variant"]
        if sample in pruned and row["status"] in ("stopped", "running", "lost"):
            latest = max(r["attempt"] for r in rows if r["trial_id"] == row["trial_id"])
            if row["attempt"] == latest:
                done += mark_pruned(results, row, pruned[sample])
    return done


def mark_pruned(results: ResultStore, stored: dict, step: int | None) -> int:
    """Rewrite one stored trials row (an attempt) as ``pruned`` at ``step`` (the last epoch it
    reported): its metrics say where it was stopped; no error. Returns 1."""
    import datetime as dt
    import json

    row = {k: stored[k] for k in ("experiment", "trial_id", "attempt", "variant", "dataset", "fold", "seed",
                                  "spec_hash", "git_commit", "hardware", "node", "started_at")}
    row.update(params=json.loads(stored["params_json"]), config=json.loads(stored["config_json"]),
               versions=json.loads(stored["versions_json"]), status="pruned", error=None,
               metrics={} if step is None else {"pruned_at_epoch": int(step)},
               ended_at=max(stored["ended_at"], stored["started_at"]) if stored["status"] == "stopped"
               else max(dt.datetime.now(dt.timezone.utc), stored["started_at"]))
    results.write_trial(row, [], [])
    from dragsaw.platform.store.checkpoints import CheckpointStore

    CheckpointStore(results.url, stored["experiment"]).remove(stored["trial_id"])  # pruned: keeps nothing
    return 1


__all__ = ["mark_pruned", "run_searches", "search_trainable", "sample_trials", "reconcile", "open_studies"]
