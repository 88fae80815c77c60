"""Launching experiments on Ray: validate, run (grid or search), resume, status."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dragsaw.platform.launch.run import LaunchError, absolute, load_record, open_store, save_record

__all__ = ["LaunchError", "validate", "launch", "resume", "status"]


def _load(spec_path: str, overrides: Sequence[str], store: str | None, smoke: bool = False):
    from dragsaw.platform.experiment.loading import load_spec

    overrides = list(overrides)
    if store:
        overrides.append(f"store={store}")
    return load_spec(spec_path, overrides, smoke=smoke)


def validate(spec_path: str, overrides: Sequence[str] = (), store: str | None = None, smoke: bool = False):
    """Load and check a spec; returns (spec, trials or None for a search). Writes nothing
    (a synthetic dataset that is not written yet is expanded from its writer's settings
    when the experiment runs). ``smoke``: apply the spec's ``smoke:`` overrides first.
    Raises SpecError / LaunchError."""
    from dragsaw.platform.experiment.checks import check_paths
    from dragsaw.platform.experiment.datasets import prepare_datasets
    from dragsaw.platform.experiment.errors import SpecError
    from dragsaw.platform.experiment.grid import expand

    spec = _load(spec_path, overrides, store, smoke)
    problems = check_paths(spec)
    if problems:
        raise LaunchError(f"{spec_path}: cannot run here:\n" + "\n".join(f"  {p}" for p in problems))
    if spec.search is not None:
        return spec, None
    try:
        datasets = prepare_datasets(spec, write=False)
    except SpecError:
        return spec, []  # synthetic roots not written yet: trials are known once they are
    return spec, expand(spec, datasets)


def launch(spec_path: str, overrides: Sequence[str] = (), store: str | None = None, address: str | None = None,
           dry_run: bool = False, echo: Callable[[str], None] = print, spec=None, smoke: bool = False) -> int:
    """``dragsaw run``: check everything, then run the spec's trials on Ray and print the
    leaderboard. Trials already completed in the store are skipped (a re-run or ``resume``
    finishes an experiment; nothing counts twice). ``smoke``: apply the spec's ``smoke:``
    overrides (its tiny CI version) before ``overrides``. Returns the exit status."""
    from dragsaw.platform.experiment.checks import check_paths
    from dragsaw.platform.experiment.datasets import prepare_datasets
    from dragsaw.platform.experiment.grid import expand, spec_hash
    from dragsaw.platform.launch.provenance import git_commit, versions
    from dragsaw.platform.search.study import studies

    spec = spec or _load(spec_path, overrides, store, smoke)
    problems = check_paths(spec)
    if problems:
        raise LaunchError(f"{spec_path}: cannot run here:\n" + "\n".join(f"  {p}" for p in problems))
    store_url = absolute(spec.store)
    if dry_run:
        return _dry_run(spec, store_url, echo)
    results = open_store(store_url)
    digest = spec_hash(spec)
    _same_spec_or_fail(store_url, results, spec, digest)
    datasets = prepare_datasets(spec, write=True)
    context = {"store_url": store_url, "spec_hash": digest, "git_commit": git_commit(), "versions": versions(),
               "synthetic": _synthetic_recipes(spec)}
    save_record(store_url, spec, digest)
    if spec.search is None:
        from dragsaw.platform.launch.run import run_grid

        trials = expand(spec, datasets)
        done = results.completed(spec.name)
        todo = [t for t in trials if t.trial_id not in done]
        echo(f"{spec.name}: {len(trials)} trials, {len(trials) - len(todo)} already complete in {store_url}; "
             f"running {len(todo)} ({spec.concurrency} at once, {spec.resources.cpus:g} CPU / "
             f"{spec.resources.gpus:g} GPU each)")
        outcome = run_grid(spec, todo, store_url, context, address, echo) if todo else {"ok": 0, "failed": 0}
    else:
        from dragsaw.platform.launch.search_run import run_searches

        outcome = run_searches(spec, studies(spec, datasets), store_url, context, address, echo)
    echo(f"{spec.name}: {outcome['ok']} trials finished, {outcome['failed']} failed; results in {store_url}")
    results.compact(spec.name)  # one file per partition: leaderboards read it in one request
    _print_leaderboard(results, spec, echo)
    return 1 if outcome["failed"] else 0


def _synthetic_recipes(spec) -> dict[str, dict]:
    """Absolute dataset root -> synthetic writer settings, for nodes that lack the data."""
    from dragsaw.platform.experiment.datasets import resolve_root

    return {str(resolve_root(d.root)): dict(d.synthetic) for d in spec.datasets if d.synthetic is not None}


def _same_spec_or_fail(store_url: str, results, spec, digest: str) -> None:
    """An experiment name stands for one experiment: results of a changed spec under the same
    name would be mixed into one leaderboard row, so that is refused. Identity is what is
    run (``grid.identity``), never where the store, data or working directory are; it is
    recomputed from the saved spec, so a record written by an older dragsaw compares fairly."""
    from dragsaw.platform.experiment.grid import identity

    try:
        record = load_record(store_url, spec.name)
    except LaunchError:
        return
    saved = _saved_identity(record)
    if saved is None:
        same = record.get("spec_hash") == digest
        changed = []
    else:
        current = identity(spec)
        same = saved == current
        changed = _changed_fields(saved, current)
    if not same and results.completed(spec.name):
        what = f"changed: {', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''}" if changed else \
            f"spec hash {record.get('spec_hash')} != {digest}"
        raise LaunchError(
            f"experiment {spec.name!r} in {store_url} already has results of a different spec ({what}); "
            f"run it under another name (--set name=...), or use another store")


def _saved_identity(record: dict) -> dict | None:
    from dragsaw.platform.experiment.errors import SpecError
    from dragsaw.platform.experiment.grid import identity
    from dragsaw.platform.experiment.loading import validate_spec

    try:
        return identity(validate_spec(record["spec"]))
    except (SpecError, KeyError, TypeError):
        return None


def _changed_fields(a, b, path: str = "") -> list[str]:
    """Dotted paths where two JSON-like values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b), key=str)
                for p in _changed_fields(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _changed_fields(x, y, f"{path}[{i}]")]
    return [] if a == b else [path or "(whole spec)"]


def _dry_run(spec, store_url: str, echo) -> int:
    from dragsaw.platform.experiment.datasets import prepare_datasets
    from dragsaw.platform.experiment.grid import expand
    from dragsaw.platform.search.study import studies

    # Synthetic look-alikes are written (data, not results) so that folds are known exactly;
    # the store is not touched.
    datasets = prepare_datasets(spec, write=True)
    if spec.search is not None:
        for study in studies(spec, datasets):
            echo(f"study {study.study_name}: {spec.search.num_samples} samples on {study.dataset} folds "
                 f"{list(study.folds)}, {study.resources}, objective {spec.search.objective} "
                 f"{study.metrics} {study.modes}, scheduler {study.scheduler}")
        return 0
    trials = expand(spec, datasets)
    echo(f"{spec.name}: {len(trials)} trials -> {store_url} ({spec.concurrency} at once)")
    for t in trials:
        echo(f"  {t.trial_id}  {t.variant:<24} {t.dataset:<14} fold {t.fold:<5} fraction {t.fraction:<5g} "
             f"seed {t.seed:<3} cpu {t.resources['cpu']:g} gpu {t.resources['gpu']:g}")
    return 0


def _print_leaderboard(results, spec, echo) -> None:
    """The experiment's leaderboard, each variant tested against its own baseline (with axes,
    ``fcn+pdcr`` against ``fcn+baseline``)."""
    from dragsaw.platform.experiment.grid import baseline_of
    from dragsaw.platform.leaderboard import format_rows, leaderboard

    rows = leaderboard(results, experiment=spec.name)
    if not rows:
        return
    if spec.baseline is not None and spec.search is None:
        groups: dict[str, list[str]] = {}
        for variant in sorted({r["variant"] for r in rows}):
            groups.setdefault(baseline_of(spec, variant) or variant, []).append(variant)
        by_key = {(r["dataset"], r["variant"]): r for r in rows}
        for base, variants in groups.items():
            if base not in variants:  # the baseline has no completed trial: no tests
                continue
            for tested in leaderboard(results, experiment=spec.name, variants=variants, baseline=base):
                row = by_key[(tested["dataset"], tested["variant"])]  # keep the experiment-wide rank
                row.update({k: v for k, v in tested.items() if k not in row or k.startswith("p_")
                            or k in ("baseline", "delta", "n_cases")})
    echo("")
    echo(format_rows(rows, "table"))


def resume(name: str, store: str, address: str | None = None, echo: Callable[[str], None] = print) -> int:
    """``dragsaw resume NAME``: run the experiment's saved spec again; completed trials are
    skipped and interrupted ones continue from their last checkpoint."""
    from dragsaw.platform.experiment.loading import validate_spec

    store_url = absolute(store)
    open_store(store_url)
    record = load_record(store_url, name)
    spec = validate_spec(record["spec"], f"{store_url}/_experiments/{name}/spec.json")
    spec = spec.model_copy(update={"store": store_url})
    return launch(name, spec=spec, address=address, echo=echo)


def status(store: str, name: str | None = None) -> str:
    """Experiments in a store with their trial counts (completed, failed attempts, expected)."""
    store_url = absolute(store)
    results = open_store(store_url)
    names = [name] if name else results.experiments()
    if not names:
        return f"no experiments in {store_url}"
    lines = []
    for exp in names:
        table = results.trial_attempts(exp)
        rows = table.to_pylist() if table.num_rows else []
        completed = {r["trial_id"] for r in rows if r["status"] == "completed"}
        failed = {r["trial_id"] for r in rows if r["status"] != "completed"} - completed
        expected = "?"
        try:
            record = load_record(store_url, exp)
            spec_data = record["spec"]
            expected = str(_expected_trials(spec_data))
        except LaunchError:
            pass
        lines.append(f"{exp}: {len(completed)} completed, {len(failed)} with failed attempts only, "
                     f"{expected} expected")
    return "\n".join(lines)


def _expected_trials(spec_data: dict) -> int | str:
    from dragsaw.platform.experiment.datasets import prepare_datasets
    from dragsaw.platform.experiment.errors import SpecError
    from dragsaw.platform.experiment.grid import expand
    from dragsaw.platform.experiment.loading import validate_spec

    spec = validate_spec(spec_data)
    if spec.search is not None:
        return f"{spec.search.num_samples} samples per dataset"
    try:
        return len(expand(spec, prepare_datasets(spec, write=False)))
    except SpecError:
        return "?"
