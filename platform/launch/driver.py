"""The driver of an experiment: validate, launch (grid or search), resume, status; the lease,
interrupts and the summary around a run. Re-exported by ``dragsaw.platform.launch``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dragsaw.platform.launch.run import LaunchError, absolute, load_record, open_store, save_record

if TYPE_CHECKING:
    from dragsaw.platform.experiment.schema import ExperimentSpec
    from dragsaw.platform.launch.preview import Preview

__all__ = ["LaunchError", "validate", "launch", "resume", "status"]


def _load(spec_path: str, overrides: Sequence[str], store: str | None, smoke: bool = False) -> ExperimentSpec:
    from dragsaw.platform.experiment.loading import load_spec

    overrides = list(overrides)
    if store:
        overrides.append(f"store={store}")
    return load_spec(spec_path, overrides, smoke=smoke)


def validate(spec_path: str, overrides: Sequence[str] = (), store: str | None = None, smoke: bool = False
             ) -> tuple[ExperimentSpec, Preview]:
    """Load and check a spec without its data; returns (spec, Preview): the whole grid (or
    the searches), resources, an estimate of the cost and the dataset roots missing here.
    Writes nothing. ``smoke``: apply the spec's ``smoke:`` overrides first. Raises SpecError /
    LaunchError (exit status 2) for anything that cannot run, on this machine included."""
    from dragsaw.platform.experiment.checks import check_paths
    from dragsaw.platform.launch.preview import local_resource_problems, preview, refuse

    spec = _load(spec_path, overrides, store, smoke)
    refuse(check_paths(spec, require_data=False), spec_path)
    result = preview(spec, absolute(spec.store))
    result.notes += local_resource_problems(spec)  # a preview may be for a cluster: `run` refuses these
    return spec, result


def launch(spec_path: str, overrides: Sequence[str] = (), store: str | None = None, address: str | None = None,
           dry_run: bool = False, echo: Callable[[str], None] = print, spec: ExperimentSpec | None = None,
           smoke: bool = False, wait_for_resources: float | None = None, take_over: bool = False) -> int:
    """``dragsaw run`` (see :func:`_launch`), with its exits made safe: Ray is shut down on
    every path, and SIGINT / SIGTERM stop the run in order (see ``launch.interrupts``): the
    command then prints what is complete, interrupted, failed and not started (counted from
    the store, as ``dragsaw status`` counts), the command that continues, and returns 130
    (SIGINT) or 143 (SIGTERM). One driver per experiment: the store's lease (``store.Lease``)
    is taken before anything is written, renewed while the run lasts and released on every
    exit path; a live holder makes the run exit 2 naming it, unless ``take_over``."""
    from dragsaw.platform.launch.interrupts import Interrupted, Interrupts
    from dragsaw.platform.launch.run import ray_shutdown

    interrupts = Interrupts(echo)
    state = _RunState(address=address)
    state.take_over = take_over
    with interrupts:
        try:
            try:
                status = _launch(spec_path, overrides, store, address, dry_run, echo, spec, smoke,
                                 wait_for_resources, interrupts=interrupts, state=state)
            except Interrupted:
                status = None
            finally:
                interrupts.closing()  # from here on a signal is noted, never raised: cleanup must finish
                ray_shutdown()
            if status is None:
                status = _stopped(state, interrupts, echo)
        finally:
            if state.lease is not None:
                state.lease.release()  # last: until Ray is down, trials of this driver may write
    return status


class _RunState:
    """What a run knows so far, for the summary of a run that is stopped early."""

    def __init__(self, address: str | None):
        self.address = address
        self.take_over = False
        self.lease: Any = None  # the store's Lease, once held
        self.name: str | None = None
        self.store_url: str | None = None
        self.results: Any = None  # the ResultStore
        self.recorded = False  # the spec record is in the store: `dragsaw resume` can continue
        self.expected: list[str] | None = None  # a grid's trial ids
        self.completed_before: set[str] = set()


def _stopped(state: _RunState, interrupts, echo: Callable[[str], None]) -> int:
    """Print the summary of a run stopped by a signal (or a lost lease); its exit status."""
    import signal as signals

    from dragsaw.platform.launch.outcome import count, describe, mark_unfinished_lost

    name = signals.Signals(interrupts.signum).name if interrupts.signum else None
    status = interrupts.exit_status or 1
    if state.results is None or state.name is None:
        echo(f"dragsaw: {name or interrupts.reason}: stopped before any trial started; nothing was written")
        return status
    if name is not None:  # a lost lease: the new holder's attempts are not ours to mark
        mark_unfinished_lost(state.results, state.name, f"the driver was stopped ({name})")
    outcome = count(state.results, state.name, state.expected, state.completed_before)
    lines = describe(state.name, outcome, state.store_url or "", name, interrupts.reason, state.address)
    if not state.recorded:
        lines = lines[:1] + ["nothing to resume yet: run the spec again"]
    for line in lines:
        echo(line)
    return status


def _launch(spec_path: str, overrides: Sequence[str], store: str | None, address: str | None, dry_run: bool,
            echo: Callable[[str], None], spec: ExperimentSpec | None, smoke: bool,
            wait_for_resources: float | None, *, interrupts,
            state: _RunState) -> int | None:
    """``dragsaw run``: check everything, then run the spec's trials on Ray and print the
    leaderboard. Trials already completed in the store are skipped (a re-run or ``resume``
    finishes an experiment; nothing counts twice). ``smoke``: apply the spec's ``smoke:``
    overrides (its tiny CI version) before ``overrides``. ``wait_for_resources``: seconds to
    wait for an autoscaler to add a node that fits one trial (else no fitting node: exit 2).
    Returns the exit status."""
    from dragsaw.platform.experiment.checks import check_paths
    from dragsaw.platform.experiment.datasets import prepare_datasets
    from dragsaw.platform.experiment.grid import expand, spec_hash
    from dragsaw.platform.launch.preview import local_resource_problems, refuse
    from dragsaw.platform.search.study import studies
    from dragsaw.platform.store.provenance import git_commit, versions

    spec = spec or _load(spec_path, overrides, store, smoke)
    refuse(check_paths(spec, require_data=not dry_run)
           + (local_resource_problems(spec) if address is None and not dry_run else []), spec_path)
    store_url = absolute(spec.store)
    if dry_run and address is None:
        return _dry_run(spec, store_url, echo)
    if address is not None:  # before anything is written: can any node of the cluster place a trial?
        from dragsaw.platform.launch.preview import cluster_resource_problems
        from dragsaw.platform.launch.run import ray_init

        ray_init(address)
        refuse(cluster_resource_problems(spec, wait_for_resources, echo), spec_path)
        if dry_run:
            return _dry_run(spec, store_url, echo)
    results = open_store(store_url)
    digest = spec_hash(spec)
    _same_spec_or_fail(store_url, results, spec, digest)
    state.lease = _take_lease(store_url, spec.name, state.take_over, interrupts, echo)
    state.name, state.store_url, state.results = spec.name, store_url, results
    datasets = prepare_datasets(spec, write=True)
    context = {"store_url": store_url, "spec_hash": digest, "git_commit": git_commit(), "versions": versions(),
               "synthetic": _synthetic_recipes(spec), "checkpoints": spec.checkpoints.model_dump()}
    save_record(store_url, spec, digest)
    state.recorded = True
    state.completed_before = results.completed(spec.name)
    failed_before = set() if spec.search is None else _failed(results, spec.name)
    tuned = {"ok": 0, "failed": 0}  # as Tune saw the trials (a lost attempt fails there, not in the store)
    if spec.search is None:
        from dragsaw.platform.launch.run import run_grid

        trials = expand(spec, datasets)
        state.expected = [t.trial_id for t in trials]
        todo = [t for t in trials if t.trial_id not in state.completed_before]
        echo(f"{spec.name}: {len(trials)} trials, {len(trials) - len(todo)} already complete in {store_url}; "
             f"running {len(todo)} ({spec.concurrency} at once, {spec.resources.cpus:g} CPU / "
             f"{spec.resources.gpus:g} GPU each)")
        if todo:
            with interrupts.graceful():
                tuned = run_grid(spec, todo, store_url, context, address, echo)
    else:
        from dragsaw.platform.launch.search_run import run_searches

        with interrupts.graceful():
            tuned = run_searches(spec, studies(spec, datasets), store_url, context, address, echo)
    if interrupts.stopping:
        return None  # the summary is printed once Ray is down and nothing writes any more
    from dragsaw.platform.launch.outcome import count, describe

    outcome = count(results, spec.name, state.expected, state.completed_before)
    for line in describe(spec.name, outcome, store_url, address=address):
        echo(line)
    results.compact(spec.name)  # one file per partition: leaderboards read it in one request
    if outcome.completed:
        _print_leaderboard(results, spec, echo)
    # A grid retries every failed trial; a search samples anew, so its old failures stay.
    return 1 if outcome.failed - failed_before or tuned["failed"] else 0


def _failed(results, name: str) -> set[str]:
    from dragsaw.platform.launch.outcome import count

    return count(results, name).failed


def _take_lease(store_url: str, name: str, take_over: bool, interrupts, echo: Callable[[str], None]):
    """The experiment's lease, held and renewed (LeaseHeld, exit 2, names a live holder). Losing
    it later (another driver used --take-over) stops this run as a signal would."""
    from dragsaw.platform.store import Lease

    lease = Lease(store_url, name, on_lost=interrupts.stop)
    previous = lease.acquire(take_over)
    if previous is not None:
        echo(f"{name}: took over the experiment from the driver on {previous.describe()}")
    lease.start_heartbeat()
    return lease


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
    """The whole grid (or the searches) with resources, cost and missing roots; nothing is
    written, no data is needed."""
    from dragsaw.platform.launch import preview as previews

    local_resource_problems, preview = previews.local_resource_problems, previews.preview
    print_trials, ray_connected = previews.print_trials, previews.ray_connected

    result = preview(spec, store_url)
    if not ray_connected():
        result.notes += local_resource_problems(spec)  # `run` refuses these here; a cluster may not
    print_trials(result, store_url, echo)
    return 0


def _print_leaderboard(results, spec, echo) -> None:
    """The experiment's leaderboard: each variant compared with its own baseline as the spec
    declares it (with axes, ``fcn+pdcr`` against ``fcn+baseline``), over runs and cases, Holm's
    correction over the spec's variants (all done by ``leaderboard`` from the saved spec)."""
    from dragsaw.platform.leaderboard import format_rows, leaderboard

    rows = leaderboard(results, experiment=spec.name)
    if not rows:
        return
    echo("")
    echo(format_rows(rows, "table"))


def resume(name: str, store: str, address: str | None = None, echo: Callable[[str], None] = print,
           take_over: bool = False) -> int:
    """``dragsaw resume NAME``: run the experiment's saved spec again, from the store given
    (wherever it is now, whatever working directory); completed trials are skipped and
    interrupted ones continue from their last checkpoint. ``take_over``: see :func:`launch`."""
    from dragsaw.platform.experiment.loading import validate_spec

    store_url = absolute(store)
    open_store(store_url)
    record = load_record(store_url, name)
    spec = validate_spec(record["spec"], f"{store_url}/_experiments/{name}/spec.json")
    spec = spec.model_copy(update={"store": store_url})
    return launch(name, spec=spec, address=address, echo=echo, take_over=take_over)


def status(store: str, name: str | None = None) -> str:
    """``dragsaw status``: trials and attempts of each experiment in a store (reads only);
    see :func:`dragsaw.platform.launch.status.status`."""
    from dragsaw.platform.launch.status import status as _status

    return _status(store, name)
