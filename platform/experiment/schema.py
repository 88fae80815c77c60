"""The experiment spec: one YAML file per experiment, validated by pydantic.

    name: quickstart                  # [a-z0-9_-]+ (names folders and studies)
    description: ...
    store: ./results                  # any fsspec URL (no credentials in it)
    model: {name: unet, width: 1.0, options: {}}          # ModelConfig
    plugins: null                     # PluginsConfig by stage names (num_classes/num_maps filled per dataset)
    train: {epochs: 50, lr: 1.0e-3, ...}                  # TrainConfig
    eval: {every: 1, selection: last, ...}                # EvalConfig (selection: last | best_val)
    datasets:                         # one or more (see DatasetSpec)
      - {name: isic2016, root: data/isic2016, folds: [test], fraction: 1.0, options: {},
         synthetic: {n_train: 40}, label: null, overrides: {}, subset_seed: 0, max_eval_cases: null}
    seeds: [0]
    resources: {cpus: 1, gpus: 0}     # per trial; gpus may be a fraction of one GPU
    concurrency: null                 # most trials at once (null: as many as the resources allow)
    failure: {max_failures: 1}        # retries, each from the trial's last checkpoint
    checkpoints: final                # or none, or {keep, top_k, every_epochs, every_minutes, upload_share}
    cache_dir: null                   # preprocessed-case cache (null: $DRAGSAW_CACHE or ~/.cache/dragsaw)
    variants: {baseline: {}, pdcr: {plugins.pdcr: {...}}}  # a grid (see variants.py) ...
    axes: {model.name: [unet, fcn]}
    baseline: baseline                # the label the leaderboard compares with
    search: {...}                     # ... or a search (see search_schema.py, space.py)
    smoke: {train.epochs: 1}          # overrides that --smoke applies (checked on every load)
    x-anything: &anchor {...}         # top-level x- keys only hold YAML anchors; ignored

Structure and invariants are checked here (unknown keys anywhere, types, ranges, variants
and search parameters that would make invalid trial configs); what depends on this machine
and installation (dataset roots, registered names, layer names of the models) is checked by
``check_paths``. Every problem is reported at once, with its path in the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dragsaw.platform.experiment.configs import OVERRIDABLE, deep_merge, part_problems, unflatten
from dragsaw.platform.experiment.errors import Loc, raise_problems
from dragsaw.platform.experiment.parts import Checkpoints, DatasetSpec, Failure, Resources
from dragsaw.platform.experiment.variants import axis_entries, combine, label_problems
from dragsaw.platform.search.probe import effective_space
from dragsaw.platform.search.schema import SearchSpec
from dragsaw.workloads._checks import closest
from dragsaw.workloads.recipe import EvalConfig, ModelConfig, TrainConfig

_NAME = re.compile(r"^[a-z0-9_-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExperimentSpec(_Strict):
    """One experiment (see the module docstring and ``configs/experiments``)."""

    name: str
    description: str = ""
    store: str = "./results"
    model: ModelConfig
    plugins: dict[str, Any] | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    datasets: list[DatasetSpec] = Field(min_length=1)  # after the base: its overrides are checked against it
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    resources: Resources = Field(default_factory=Resources)
    concurrency: int | None = Field(default=None, ge=1)
    failure: Failure = Field(default_factory=Failure)
    checkpoints: Checkpoints = Field(default_factory=Checkpoints)
    cache_dir: str | None = None
    variants: dict[str, dict[str, Any] | None] | None = None
    axes: dict[str, Any] | None = None
    baseline: str | None = None
    search: SearchSpec | None = None
    smoke: dict[str, Any] = Field(default_factory=dict)

    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _drop_anchor_holders(cls, data):
        """Top-level keys starting with ``x-`` only hold YAML anchors (``x-pdcr: &pdcr {...}``,
        used as ``*pdcr`` below): they are not part of the spec."""
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not str(k).startswith("x-")}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if not _NAME.match(v):
            raise ValueError(f"name must match [a-z0-9_-]+ (it names folders and studies), but got {v!r}")
        return v

    @field_validator("store")
    @classmethod
    def _store(cls, v):
        parts = urlsplit(v)
        if parts.username or parts.password:
            raise ValueError("the store URL must not hold credentials; give them through the environment "
                             "(AWS_ACCESS_KEY_ID ..., or the standard AWS chain)")
        return v

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, v, info: ValidationInfo):
        keys = [d.key for d in v]
        problems = [((i, "label"), f"dataset {k!r} appears twice; give the entries distinct labels")
                    for i, k in enumerate(keys) if keys.index(k) != i]
        for i, d in enumerate(v):
            problems += [((i, "overrides") + loc, msg) for loc, msg in _override_problems(d.overrides, info.data)]
        raise_problems("datasets", problems)
        return v

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, v):
        raise_problems("plugins", [(loc[1:], msg) for loc, msg in part_problems({"plugins": v}, ("plugins",))])
        return v

    @field_validator("seeds", mode="before")
    @classmethod
    def _one_seed(cls, v):
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, but got {v}")
        return v

    @field_validator("variants")
    @classmethod
    def _variants(cls, v, info: ValidationInfo):
        if v is None:
            return v
        if not v:
            raise ValueError("`variants` is empty: name at least one, e.g. `baseline: {}`")
        problems = label_problems(list(v))
        out = {}
        for name, overrides in v.items():
            entry_problems = _override_problems(overrides, info.data)
            problems += [((name,) + loc, msg) for loc, msg in entry_problems]
            out[name] = unflatten(overrides or {}) if not entry_problems else overrides
        raise_problems("variants", problems)
        return out

    @field_validator("axes")
    @classmethod
    def _axes(cls, v, info: ValidationInfo):
        if v is None:
            return v
        if not v:
            raise ValueError("`axes` is empty: give at least one axis, e.g. `model.name: [unet, fcn]`")
        problems: list[tuple[Loc, str]] = []
        for axis, values in v.items():
            try:
                entries = axis_entries(axis, values)
            except ValueError as exc:
                problems.append(((axis,), str(exc)))
                continue
            for where, _label, overrides in entries:
                problems += [((axis,) + where + loc, msg) for loc, msg in _override_problems(overrides, info.data)]
        raise_problems("axes", problems)
        return v

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v, info: ValidationInfo):
        if v is None:
            return v
        owners = _label_owners(info.data.get("variants"), info.data.get("axes"))
        if "variants" not in info.data and "axes" not in info.data:
            return v  # their own errors are reported
        if v not in owners:
            valid = sorted(owners)
            raise ValueError(f"baseline {v!r} is not a variant or axis label of this spec; "
                             f"{closest(v, valid) if valid else 'the spec has no variants or axes'}")
        if len(owners[v]) > 1:
            raise ValueError(f"baseline {v!r} labels values of {sorted(owners[v])}: it must name one")
        return v

    @field_validator("search")
    @classmethod
    def _search(cls, v: SearchSpec | None, info: ValidationInfo):
        if v is None:
            return v
        data = info.data
        problems: list[tuple[Loc, str]] = []
        for key in ("variants", "axes", "baseline"):
            if data.get(key) is not None:
                problems.append(((), (f"a search runs one study per dataset and cannot be crossed with `{key}`; "
                                     "write one spec per variant, or search the choice itself (e.g. a "
                                     "categorical model.name)")))
        if len(data.get("seeds") or [0]) != 1:
            problems.append(((), (f"a search trains each sample with one seed, but seeds={data['seeds']}; "
                                 "give one seed")))
        for i, d in enumerate(data.get("datasets") or ()):
            if len(d.fraction) != 1:
                problems.append(((), f"datasets[{i}].fraction lists {len(d.fraction)} fractions; a search takes one"))
            if v.objective == "single" and d.folds is not None and len(d.folds) != 1:
                problems.append(((), (f"objective 'single' scores one fold, but datasets[{i}].folds={d.folds}; give "
                                     "one fold or use objective: mean_over_folds")))
        train = data.get("train")
        if train is not None:
            problems += [(("scheduler",) + loc, msg) for loc, msg in v.scheduler_problems(train.epochs)]
        space = v.search_space()  # valid: SearchSpec checked it
        if "train.epochs" in space.names() and v.scheduler.type == "asha" and v.scheduler.max_t is None:
            problems.append((("scheduler", "max_t"), "train.epochs is searched: give ASHA's max_t explicitly"))
        if all(k in data for k in (*OVERRIDABLE, "datasets")):  # else their own errors are reported
            bases = {canonical(b): b for b in (_dataset_base(data, d) for d in data["datasets"])}
            for base in bases.values():
                problems += [(("space",) + loc, msg) for loc, msg in effective_space(space, base)[2]]
            if "val_dice" in v.metrics and any((b.get("eval") or {}).get("selection") != "best_val"
                                               for b in bases.values()):
                where = ("metric",) if v.objectives is None else ("objectives", v.metrics.index("val_dice"), "metric")
                problems.append((where, ("val_dice is measured only with eval.selection: best_val (validation "
                                         "cases carved from the training cases); set eval.selection: best_val, "
                                         "or search on dice (the evaluation fold)")))
        raise_problems("search", problems)
        return v

    @model_validator(mode="after")
    def _combinations_valid(self):
        """Each variant, axis value and dataset override is checked on its own above; crossed
        (several axes, or variants over a dataset's overrides), they may still clash."""
        crossed = (self.variants is not None) + len(self.axes or {})
        if crossed == 0 or (crossed == 1 and not any(d.overrides for d in self.datasets)):
            return self
        problems = []
        bases = {}
        for d in self.datasets:
            bases.setdefault(canonical(self.dataset_base(d)), (d.key, self.dataset_base(d)))
        for key, base in bases.values():
            where = f"dataset {key!r}, " if len(bases) > 1 else ""
            for name, overrides in combine(self.variants, self.axes):
                for loc, msg in part_problems(deep_merge(base, overrides)):
                    problems.append(((), f"{where}variant {name!r}: {'.'.join(map(str, loc))}: {msg}"))
        raise_problems("ExperimentSpec", problems)
        return self

    # -- convenience ------------------------------------------------------------------
    @property
    def source(self) -> str | None:
        """The file this spec was loaded from, if any."""
        return self._source

    def base_config(self) -> dict[str, Any]:
        """The parts shared by every trial (model / plugins / train / eval) as plain dicts."""
        return _base_parts(self.__dict__)

    def dataset_base(self, dataset: DatasetSpec) -> dict[str, Any]:
        """The base parts for one dataset: the spec's, with the dataset's ``overrides`` merged in."""
        return _dataset_base(self.__dict__, dataset)

    def dataset(self, key: str) -> DatasetSpec:
        for d in self.datasets:
            if d.key == key:
                return d
        raise KeyError(f"no dataset {key!r} in spec {self.name!r}; {closest(key, [d.key for d in self.datasets])}")


def _base_parts(data: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for part in OVERRIDABLE:
        value = data.get(part)
        out[part] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out


def _dataset_base(data: Mapping[str, Any], dataset: DatasetSpec) -> dict[str, Any]:
    return deep_merge(_base_parts(data), unflatten(dataset.overrides))


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _override_problems(overrides: Any, data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """What is wrong with one variant's (or axis value's) overrides, merged over the base."""
    if overrides is None:
        return []
    if not isinstance(overrides, Mapping):
        return [((), f"must be a mapping of overrides (keys under {list(OVERRIDABLE)}), but got {overrides!r}")]
    problems = []
    for key in overrides:
        top = str(key).split(".")[0]
        if top not in OVERRIDABLE:
            problems.append(((key,), (f"{top!r} cannot be overridden per variant; overridable: "
                                     f"{', '.join(OVERRIDABLE)}")))
    if problems:
        return problems
    nested = unflatten(overrides)
    parts = [p for p in OVERRIDABLE if p in nested and p in data]  # a base part with errors is skipped
    merged = deep_merge(_base_parts({p: data.get(p) for p in parts}), nested)
    return part_problems(merged, parts)


def _label_owners(variants, axes) -> dict[str, set[str]]:
    owners: dict[str, set[str]] = {}
    for name in variants or {}:
        owners.setdefault(name, set()).add("variants")
    for axis, values in (axes or {}).items():
        try:
            entries = axis_entries(axis, values)
        except ValueError:
            continue
        for _where, label, _overrides in entries:
            owners.setdefault(label, set()).add(f"axes.{axis}")
    return owners


__all__ = ["ExperimentSpec", "DatasetSpec", "Resources", "Failure"]
