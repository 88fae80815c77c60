"""Completeness: a completed trials row records what its attempt wrote (``written_json``:
rows, bytes and sha256 of its epochs and cases files); readers compare that record with the
files there are, so that a completed trial whose data is missing or replaced is named,
never silently dropped.

    bad = incomplete_trials(trials, {"cases": sources})   # [] when every record matches
    if bad: raise IncompleteTrials(store.url, bad)
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pyarrow as pa

from dragsaw.platform.store._files import Source
from dragsaw.platform.store._location import StoreError

#: (experiment, dataset, trial_id): where a trial's epochs and cases files live.
FileKey = tuple[str, str, str]


class IncompleteTrials(StoreError):
    """Completed trials whose stored data is missing or differs from what they recorded.

    ``trials``: one dict per such trial (experiment, dataset, trial_id, attempt, problems).
    """

    def __init__(self, url: str, trials: list[dict], hint: str = ""):
        self.trials = trials
        names = ", ".join(f"{t['experiment']}/{t['trial_id']} ({'; '.join(t['problems'])})" for t in trials[:20])
        more = f" and {len(trials) - 20} more" if len(trials) > 20 else ""
        super().__init__(f"result store {url}: {len(trials)} completed trial(s) have missing or changed data: "
                         f"{names}{more}{hint}")


def incomplete_trials(trials: pa.Table, sources: Mapping[str, Mapping[FileKey, Source]]) -> list[dict]:
    """The rows of ``trials`` (completed rows with experiment, dataset, trial_id, attempt,
    written_json) whose recorded data does not match ``sources`` ({table: {file key: Source}}
    for "epochs" and/or "cases"). A Source with a sha256 is compared by hash and rows, one
    without (listed, not read) by size. Rows without a record (written before records
    existed) are not checked. Returns dicts (experiment, dataset, trial_id, attempt, problems)."""
    out = []
    cols = {c: trials.column(c).to_pylist() for c in ("experiment", "dataset", "trial_id", "attempt",
                                                        "written_json")}
    for i in range(trials.num_rows):
        record = cols["written_json"][i]
        if record is None:
            continue
        written = json.loads(record)
        key = (cols["experiment"][i], cols["dataset"][i], cols["trial_id"][i])
        problems = []
        for table, found in sources.items():
            expected = written.get(table)
            if not expected or not expected.get("rows"):
                continue
            problem = _compare(table, expected, found.get(key))
            if problem:
                problems.append(problem)
        if problems:
            out.append({"experiment": key[0], "dataset": key[1], "trial_id": key[2],
                        "attempt": cols["attempt"][i], "problems": problems})
    return out


def _compare(table: str, expected: Mapping, found: Source | None) -> str | None:
    if found is None:
        return f"{table} file missing"
    if found.sha256 is not None:
        if found.sha256 != expected.get("sha256") or found.rows != expected.get("rows"):
            return f"{table} file differs from what the attempt wrote (sha256)"
        return None
    size = (found.fingerprint or "").split(":", 1)[0]
    if size.isdigit() and int(size) != expected.get("bytes"):
        return f"{table} file differs from what the attempt wrote ({size} bytes, not {expected.get('bytes')})"
    return None
