"""Running the Optuna searches of a spec with Ray Tune: one persisted study per dataset."""

from __future__ import annotations

from collections.abc import Callable


def search_trainable(config: dict, study=None, context=None) -> None:
    """Tune entry point of a search sample: ``config`` holds the sampled parameters. With
    objective ``mean_over_folds`` every fold of the study is trained and the mean reported."""
    from ray import tune

    from dragsaw.platform.launch.trainable import FAILED_KEY
    from dragsaw.workloads.recipe.config import ConfigError

    params = dict(config)
    folds = study.folds if study.search.objective == "mean_over_folds" else study.folds[:1]
    try:
        _run_sample(study, params, folds, context)
    except ConfigError:  # recorded as failed; raising would have Ray retry it. NaN: Optuna's FAIL
        tune.report({**{m: float("nan") for m in study.metrics}, "epoch": 0, FAILED_KEY: 1, "done_trial": 1})


def _run_sample(study, params: dict, folds, context) -> None:
    from ray import tune

    from dragsaw.platform.launch.trainable import _numeric, run_one

    if len(folds) == 1:
        final = run_one(_as_dict(study.trial(params, folds[0])), context, on_epoch=lambda m: tune.report(m))
        tune.report({**_numeric(final), "done_trial": 1})
        return
    finals = [run_one(_as_dict(study.trial(params, fold)), context) for fold in folds]
    mean = {k: sum(f[k] for f in finals) / len(finals) for k in _numeric(finals[0]) if all(k in f for f in finals)}
    mean["epoch"] = finals[0].get("epoch", 0)
    tune.report({**mean, "folds": len(finals), "done_trial": 1})


def _as_dict(trial) -> dict:
    import dataclasses

    return dataclasses.asdict(trial)


def run_searches(spec, studies: list, store_url: str, context: dict, address: str | None,
                 echo: Callable[[str], None]) -> dict:
    """Run each study's remaining samples with Ray Tune; returns {"ok": n, "failed": n} as Tune
    saw them. Stops in order (no further study) when the active ``Interrupts`` is stopping."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from dragsaw.platform.launch.interrupts import StopOnInterrupt, stopping
    from dragsaw.platform.launch.progress import Progress, failed_result
    from dragsaw.platform.launch.run import concurrency, fit, ray_init, trial_resources, tune_storage
    from dragsaw.platform.search.define_by_run import open_study, optuna_search_kwargs
    from dragsaw.platform.search.storage import default_storage_url, make_storage

    ray_init(address)
    url = spec.search.storage or default_storage_url(store_url, spec.name)[0]
    echo(f"Optuna studies in {url}")
    totals = {"ok": 0, "failed": 0}
    for study in studies:
        if stopping():
            break
        storage = make_storage(spec.search.storage, store_url, experiment=spec.name)
        existing = open_study(storage, study)
        _requeue_interrupted(existing)
        finished = sum(t.state == optuna.trial.TrialState.COMPLETE for t in existing.trials)
        remaining = max(0, spec.search.num_samples - finished)
        if remaining == 0:
            echo(f"study {study.study_name}: {finished} samples already complete")
            continue
        metrics, modes = study.metrics, study.modes
        searcher = OptunaSearch(**optuna_search_kwargs(study, storage))
        sched = study.scheduler
        scheduler = None
        if sched.get("type") == "asha":
            scheduler = ASHAScheduler(time_attr="epoch", max_t=sched["max_t"], grace_period=sched["grace_period"],
                                      reduction_factor=sched["reduction_factor"])
        progress = Progress(remaining, metrics[0], modes[0], echo)
        trainable = tune.with_resources(tune.with_parameters(search_trainable, study=study, context=context),
                                        trial_resources(spec, echo, address))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=remaining,
                                        max_concurrent_trials=concurrency(spec), metric=metrics[0], mode=modes[0],
                                        reuse_actors=True),
            run_config=tune.RunConfig(name=f"{spec.name}-{study.dataset}", verbose=0,
                                      storage_path=tune_storage(store_url, spec.name),
                                      failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
                                      callbacks=[progress], stop=StopOnInterrupt()),
        )
        grid = fit(tuner)
        failed = sum(1 for r in grid if failed_result(r))
        totals["ok"] += len(grid) - failed
        totals["failed"] += failed
    return totals


def _requeue_interrupted(study) -> None:
    """Samples left RUNNING by a killed driver are marked failed and queued again with the
    same parameters: their trial ids (a hash of the parameters) find their checkpoints."""
    import optuna

    for t in study.trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(t.params, skip_if_exists=False)
