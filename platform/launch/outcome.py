"""What a run achieved, counted from the store (not from Ray Tune's view, which calls a trial
it stopped "terminated" just as one that finished), so that the summary a run prints
agrees with what ``dragsaw status`` reads afterwards."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """Trial counts of one experiment in its store, by trial id, as ``dragsaw status`` counts
    them (``status.count_attempts``): completed, failed (latest attempt failed), interrupted
    (latest attempt stopped or lost), running (latest attempt without an outcome yet), and
    for grids not_started (expected, no attempt). ``new``: completed by this run."""

    completed: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    interrupted: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)
    not_started: set[str] = field(default_factory=set)
    new: set[str] = field(default_factory=set)
    expected: int | None = None


def count(results, experiment: str, expected: Iterable[str] | None = None,
          completed_before: Iterable[str] = ()) -> Outcome:
    """Counts of ``experiment`` in ``results`` (a ResultStore). ``expected``: the grid's trial
    ids (None for a search); ``completed_before``: completed before this run."""
    from dragsaw.platform.launch.status import count_attempts

    table = results.trial_attempts(experiment)
    c = count_attempts(table.to_pylist() if table.num_rows else [])
    out = Outcome(completed=set(c.completed), failed=set(c.failed), interrupted=set(c.interrupted),
                  running=set(c.running), new=set(c.completed) - set(completed_before))
    if expected is not None:
        ids = set(expected)
        out.expected = len(ids)
        out.not_started = ids - out.completed - out.failed - out.interrupted - out.running
    return out


def mark_unfinished_lost(results, experiment: str, why: str) -> None:
    """Attempts still ``running`` once the driver has stopped every trial and Ray is down
    ended without writing an outcome: record them as lost (so they count as interrupted)."""
    from dragsaw.platform.launch.trainable import mark_lost

    for trial_id in count(results, experiment).running:
        mark_lost(results, experiment, trial_id, why)


def describe(name: str, outcome: Outcome, store_url: str, signal_name: str | None = None,
             reason: str | None = None, address: str | None = None) -> list[str]:
    """The lines a run ends with: what it finished, and when it stopped early, what is left
    and the dragsaw command that continues it."""
    of = f" of {outcome.expected}" if outcome.expected is not None else ""
    cluster = f" --address {address}" if address else ""
    if signal_name is None and reason is None:
        lost = f", {len(outcome.interrupted)} interrupted (lost)" if outcome.interrupted else ""
        lines = [f"{name}: {len(outcome.new)} trials finished, {len(outcome.failed)} failed{lost}; "
                 f"{len(outcome.completed)}{of} complete in {store_url}"]
        if outcome.interrupted:
            lines.append(f"continue with: dragsaw resume {name} --store {store_url}{cluster}")
        return lines
    why = f"interrupted by {signal_name}" if signal_name else f"stopped ({reason})"
    left = f", {len(outcome.not_started)} not started" if outcome.expected is not None else ""
    running = f", {len(outcome.running)} running" if outcome.running else ""
    return [f"{name}: {why}: {len(outcome.completed)}{of} trials complete ({len(outcome.new)} in this run), "
            f"{len(outcome.failed)} failed, {len(outcome.interrupted)} interrupted{running}{left}; "
            f"results in {store_url}",
            f"continue with: dragsaw resume {name} --store {store_url}{cluster}"]
