"""Everything a report reads from a store, once: the experiment's saved record (spec,
commit, versions), its trial attempts, its completed trials with their configs, and
which variant each is compared with."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dragsaw.platform.experiment.variants import combine, components
from dragsaw.platform.store import IncompleteTrials, ResultStore
from dragsaw.platform.store.records import RecordMissing, load_record

#: The baseline label assumed when the experiment has no saved spec.
DEFAULT_BASELINE = "baseline"


class ReportError(ValueError):
    """The report cannot be made from this input (e.g. an unknown experiment): the CLI prints it
    and exits with status 2 (one of its input errors)."""


@dataclass
class TrialRow:
    """One completed trial (its latest completed attempt)."""

    trial_id: str
    attempt: int
    variant: str
    dataset: str
    fold: str
    seed: int
    fraction: float
    convention: str | None
    dice: float | None
    config: dict
    params: dict

    @property
    def model(self) -> str:
        return str(self.config.get("model", {}).get("name", "?"))

    @property
    def data_name(self) -> str:
        return str(self.config.get("data", {}).get("name", self.dataset))

    @property
    def plugins(self) -> dict:
        return self.config.get("plugins") or {}


@dataclass
class Experiment:
    name: str
    store_url: str
    store: ResultStore
    record: dict | None
    attempts: list[dict]
    trials: list[TrialRow]
    variant_order: list[str] = field(default_factory=list)
    baseline_label: str | None = None
    _parts: list = field(default_factory=list, repr=False)

    @property
    def spec(self) -> dict:
        return (self.record or {}).get("spec") or {}

    def datasets(self) -> list[str]:
        """Datasets in the spec's order (then any other, sorted)."""
        keys = [d.get("label") or d.get("name") for d in self.spec.get("datasets", [])]
        seen = {t.dataset for t in self.trials}
        return [k for k in keys if k in seen] + sorted(seen - set(keys))

    def ordered(self, variants: Iterable[str]) -> list[str]:
        """``variants`` in the spec's crossing order (then the rest: baseline first, sorted)."""
        variants = set(variants)
        known = [v for v in self.variant_order if v in variants]
        rest = sorted(variants - set(known), key=lambda v: (v != self.baseline_label, v))
        return known + rest

    def baseline_of(self, variant: str) -> str | None:
        """The variant ``variant`` is compared with: the same labels with the baseline label in
        place of the component it belongs to (``fcn+pdcr`` -> ``fcn+baseline``)."""
        b = self.baseline_label
        if b is None:
            return None
        labels = variant.split("+")
        for k, component in enumerate(self._parts):
            if b in [label for label, _ in component] and k < len(labels):
                return "+".join(labels[:k] + [b] + labels[k + 1:])
        return None

    def synthetic(self, dataset: str) -> bool:
        """Whether the dataset may be a synthetic look-alike: its spec entry has a writer, or its
        root (when readable here) carries the writer's marker."""
        for d in self.spec.get("datasets", []):
            if (d.get("label") or d.get("name")) == dataset and d.get("synthetic") is not None:
                return True
        roots = {t.config.get("data", {}).get("root") for t in self.trials if t.dataset == dataset}
        return any(root and Path(root).is_dir() and any(Path(root).glob(".dragsaw_synthetic_*.json"))
                   for root in roots)


def load_experiment(store_url: str, name: str) -> Experiment:
    """Read experiment ``name`` from the store; ReportError when the store holds no trial
    attempt of it (the message lists the experiments it has), StoreError when it cannot be read."""
    store = ResultStore(store_url)
    store.check_readable()
    known = store.experiments()
    try:
        record = load_record(store_url, name)
    except RecordMissing:
        record = None
    if name not in known:
        if record is not None:
            raise ReportError(f"experiment {name!r} in {store.url} has a saved spec but no trial results yet")
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise ReportError(f"experiment {name!r} is not in the store {store.url}; {hint}"
                          f"experiments there: {', '.join(known) if known else 'none'}")
    bad = store.incomplete(name)
    if bad:
        raise IncompleteTrials(store.url, bad, hint="; `dragsaw resume` re-runs them (or `dragsaw leaderboard "
                                                    "--exclude-incomplete` shows the board without them)")
    attempts = store.trial_attempts(name).to_pylist()
    completed = store.completed_trials(name).to_pylist()
    trials = [_trial_row(r) for r in completed]
    exp = Experiment(name=name, store_url=store_url, store=store, record=record, attempts=attempts, trials=trials)
    _read_variants(exp)
    return exp


def _trial_row(r: dict) -> TrialRow:
    config = json.loads(r["config_json"])
    return TrialRow(trial_id=r["trial_id"], attempt=r["attempt"], variant=r["variant"], dataset=r["dataset"],
                    fold=r["fold"], seed=r["seed"], fraction=float(config.get("data", {}).get("fraction", 1.0)),
                    convention=r["convention"], dice=r["dice"], config=config, params=json.loads(r["params_json"]))


def _read_variants(exp: Experiment) -> None:
    spec = exp.spec
    present = {t.variant for t in exp.trials}
    if spec.get("variants") is not None or spec.get("axes") is not None:
        try:
            exp._parts = components(spec.get("variants"), spec.get("axes"))
            exp.variant_order = [name for name, _ in combine(spec.get("variants"), spec.get("axes"))]
        except (ValueError, TypeError):  # a record of an older spec layout: fall back to the labels
            exp._parts = []
    if spec:
        exp.baseline_label = spec.get("baseline")
    elif any(DEFAULT_BASELINE in v.split("+") for v in present):
        exp.baseline_label = DEFAULT_BASELINE
    b = exp.baseline_label
    if b and not exp._parts:
        # No usable spec: the baseline label's place among the "+"-joined labels, when it is
        # the same in every variant that has it (unet+baseline, fcn+baseline -> place 1).
        places = {v.split("+").index(b) for v in present if b in v.split("+")}
        if len(places) == 1:
            k = places.pop()
            exp._parts = [[(b, {})] if i == k else [] for i in range(k + 1)]


__all__ = ["Experiment", "ReportError", "TrialRow", "load_experiment"]
