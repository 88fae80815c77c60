"""``dragsaw status``: how far each experiment in a store got, by trials and by attempts.
It only reads (a read-only store or bucket works as for ``leaderboard``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dragsaw.platform.launch.run import LaunchError, absolute, load_record
from dragsaw.platform.store import ResultStore, StoreError


@dataclass
class Counts:
    """Trials by their latest state and attempts by outcome, of one experiment.

    completed: trials with a completed attempt; failed: trials whose latest attempt failed
    (none completed); interrupted: trials whose latest attempt was stopped or lost (none
    completed): ``dragsaw resume`` continues them from their last checkpoint; running:
    trials whose latest attempt has started and has no outcome yet. Attempts: every row; ``lost``: attempts
    whose worker or node died (a ``lost`` row, or a ``running`` row with a later attempt)."""

    completed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    interrupted: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    pruned: set[str] = field(default_factory=set)  # search samples its scheduler stopped early
    attempts: int = 0
    attempts_failed: int = 0
    attempts_lost: int = 0
    attempts_stopped: int = 0


def count_attempts(rows: Iterable[Mapping]) -> Counts:
    """:class:`Counts` from trials rows (dicts with trial_id, attempt, status)."""
    by_trial: dict[str, list[Mapping]] = {}
    for r in rows:
        by_trial.setdefault(r["trial_id"], []).append(r)
    out = Counts()
    for trial_id, attempts in by_trial.items():
        attempts.sort(key=lambda r: r["attempt"])
        latest = attempts[-1]["attempt"]
        for r in attempts:
            out.attempts += 1
            status = r["status"]
            if status == "lost" or (status == "running" and r["attempt"] < latest):
                out.attempts_lost += 1
            elif status == "failed":
                out.attempts_failed += 1
            elif status == "stopped":
                out.attempts_stopped += 1
        statuses = {r["status"] for r in attempts}
        if "completed" in statuses:
            out.completed.add(trial_id)
        elif "pruned" in statuses:
            out.pruned.add(trial_id)
        elif attempts[-1]["status"] == "running":
            out.running.add(trial_id)
        elif attempts[-1]["status"] == "failed":
            out.failed.add(trial_id)
        else:  # stopped or lost: interrupted, not failed
            out.interrupted.add(trial_id)
    return out


def status(store: str, name: str | None = None) -> str:
    """One line per experiment in ``store`` (or just ``name``): trials completed, failed,
    running (or lost with their driver: a running attempt of an experiment no driver runs)
    and expected, and attempts with their failures and lost ones. Reads only."""
    store_url = absolute(store)
    try:
        results = ResultStore(store_url)
        results.check_readable()
        names = [name] if name else results.experiments()
    except StoreError as err:
        raise LaunchError(str(err)) from None
    if not names:
        return f"no experiments in {store_url}"
    lines = []
    for exp in names:
        try:
            table = results.trial_attempts(exp)
            bad = results.incomplete(exp)
        except StoreError as err:
            raise LaunchError(str(err)) from None
        c = count_attempts(table.to_pylist() if table.num_rows else [])
        # Completed trials whose data is missing or changed count as incomplete, not completed.
        c.completed -= {t["trial_id"] for t in bad}
        incomplete = (f", {len(bad)} incomplete ({_names(bad)}: data missing or changed; `dragsaw resume` "
                      f"re-runs them)" if bad else "")
        expected = "?"
        try:
            expected = str(_expected_trials(load_record(store_url, exp)["spec"]))
        except (LaunchError, KeyError, OSError):
            pass
        running = f", {len(c.running)} running (or lost, if no driver runs it)" if c.running else ""
        lines.append(f"{exp}: {len(c.completed)} completed{incomplete}, {len(c.failed)} failed, "
                     f"{len(c.interrupted)} interrupted"
                     f"{f', {len(c.pruned)} pruned' if c.pruned else ''}{running}; {expected} expected; "
                     f"{c.attempts} attempts: {c.attempts_failed} failed, {c.attempts_lost} lost, "
                     f"{c.attempts_stopped} stopped")
    return "\n".join(lines)


def _names(trials: list[dict], most: int = 10) -> str:
    names = ", ".join(t["trial_id"] for t in trials[:most])
    return names + (f" and {len(trials) - most} more" if len(trials) > most else "")


def _expected_trials(spec_data: dict) -> int | str:
    """Trials of a saved spec, expanded without its data (see ``preview_datasets``)."""
    from dragsaw.platform.experiment.datasets import preview_datasets
    from dragsaw.platform.experiment.errors import SpecError
    from dragsaw.platform.experiment.grid import expand
    from dragsaw.platform.experiment.loading import validate_spec

    try:
        spec = validate_spec(spec_data)
        if spec.search is not None:
            return f"{spec.search.num_samples} samples per dataset"
        return len(expand(spec, preview_datasets(spec)[0]))
    except (SpecError, ValueError):
        return "?"


__all__ = ["status", "count_attempts", "Counts"]
