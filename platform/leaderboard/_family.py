"""Which variant each variant is compared with, and the family of comparisons that Holm's
correction runs over: both fixed by the experiment's spec, never by what is on the board.

The spec is read from the experiment record kept with the results (``_experiments/<name>/
spec.json``, written by ``dragsaw run``); read only. A grid with axes compares each variant
with the variant that has the spec's baseline label in its place (``fcn+pdcr`` with
``fcn+baseline``), as ``experiment.grid.baseline_of`` defines.
"""

from __future__ import annotations

from dataclasses import dataclass

from dragsaw.platform.store import ResultStore

#: The ``baseline`` argument that means "the spec's declared baseline".
FROM_SPEC = "spec"


@dataclass(frozen=True)
class Family:
    """baselines: variant -> the variant it is compared with (itself for a baseline);
    members: every variant of the family, also those without results; source: where it
    came from ("spec <name>" or "--baseline <variant>"); axes: the spec's crossed axes, in
    order (a variant's name starts with one label per axis)."""

    baselines: dict[str, str]
    members: tuple[str, ...]
    source: str
    axes: tuple[str, ...] = ()

    def baseline_of(self, variant: str) -> str | None:
        return self.baselines.get(variant)

    def size(self) -> int:
        """Comparisons in the family: members that are not their own baseline."""
        return sum(1 for v in self.members if self.baselines.get(v, v) != v)


def spec_family(store: ResultStore, experiment: str) -> Family | None:
    """The family the experiment's spec defines, or None when the store keeps no record of
    the experiment, the spec declares no ``baseline``, or it is a search (no fixed variants)."""
    spec_data = _record_spec(store, experiment)
    if spec_data is None or not spec_data.get("baseline") or spec_data.get("search"):
        return None
    try:
        from dragsaw.platform.experiment.errors import SpecError
        from dragsaw.platform.experiment.grid import baseline_of, variant_names
        from dragsaw.platform.experiment.loading import validate_spec
    except ImportError:  # pragma: no cover - the experiment package is part of dragsaw
        return _plain_family(spec_data, experiment)
    try:
        spec = validate_spec(spec_data)
        names = variant_names(spec)
        baselines = {v: baseline_of(spec, v) or v for v in names}
    except (SpecError, ValueError, TypeError):  # a record of an older spec format: its plain baseline
        return _plain_family(spec_data, experiment)
    return Family(baselines, tuple(names), f"spec {experiment!r}", tuple(spec.axes or {}))


def spec_axes(store: ResultStore, experiment: str) -> tuple[str, ...]:
    """The crossed axes of the experiment's spec (its ``axes`` keys, in order), () without."""
    spec_data = _record_spec(store, experiment)
    axes = spec_data.get("axes") if spec_data else None
    return tuple(axes) if isinstance(axes, dict) else ()


def explicit_family(baseline: str, variants: list[str]) -> Family:
    """Every variant in ``variants`` compared with ``baseline``."""
    members = tuple(dict.fromkeys([*variants, baseline]))
    return Family(dict.fromkeys(members, baseline), members, f"--baseline {baseline}")


def _plain_family(spec_data: dict, experiment: str) -> Family | None:
    names = list((spec_data.get("variants") or {}).keys())
    baseline = spec_data["baseline"]
    if spec_data.get("axes") or baseline not in names:
        return None
    return Family(dict.fromkeys(names, baseline), tuple(names), f"spec {experiment!r}")


def _record_spec(store: ResultStore, experiment: str) -> dict | None:
    """The spec saved with the experiment's results (read only), or None."""
    from dragsaw.platform.store.records import RecordMissing, load_record

    try:
        record = load_record(store.url, experiment)
    except (RecordMissing, OSError, ValueError):
        return None
    spec = record.get("spec") if isinstance(record, dict) else None
    return spec if isinstance(spec, dict) else None


__all__ = ["FROM_SPEC", "Family", "explicit_family", "spec_axes", "spec_family"]
