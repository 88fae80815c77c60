"""A grid spec expanded into trials: variants x datasets x folds x fractions x seeds."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from dragsaw.platform.experiment.configs import deep_merge, flatten
from dragsaw.platform.experiment.datasets import folds_of, prepare_datasets, resolve_root, root_text
from dragsaw.platform.experiment.errors import Problem, SpecError, format_loc
from dragsaw.platform.experiment.schema import DatasetSpec, ExperimentSpec
from dragsaw.platform.experiment.variants import combine, components
from dragsaw.workloads.canonical import canonical_json, digest
from dragsaw.workloads.data import SegmentationDataset
from dragsaw.workloads.recipe import TrialConfig
from dragsaw.workloads.recipe.selection import split_cases


@dataclass(frozen=True)
class TrialSpec:
    """One trial of an experiment.

    trial_id: deterministic (see :func:`trial_id`); fold: ``"test"``, ``"0"`` ..; params:
    what this trial changes relative to the spec's base, as dotted keys (variant and axis
    values, or a search sample); config: a complete, validated TrialConfig dict (JSON types);
    resources: {"cpu": float, "gpu": float} per trial.
    """

    trial_id: str
    experiment: str
    variant: str
    dataset: str
    fold: str
    seed: int
    fraction: float
    params: dict = field(hash=False)
    config: dict = field(hash=False)
    resources: dict = field(hash=False)


#: Spec fields that say where results, caches or data live, or how a run is carried out
#: (per-trial resources, concurrency, retries), not what is run: outside the identity.
NOT_IDENTITY = ("store", "cache_dir", "description", "smoke", "resources", "concurrency", "failure")


def identity(spec: ExperimentSpec) -> dict[str, Any]:
    """What an experiment runs, as JSON types: the spec without :data:`NOT_IDENTITY`, the
    datasets' ``root`` folders and a search's ``storage`` URL. The same experiment stored
    in a relative, absolute, copied, moved or ``s3://`` store, or launched from another
    working directory or machine, has the same identity."""
    data = spec.model_dump(mode="json", exclude=set(NOT_IDENTITY))
    data["datasets"] = [{k: v for k, v in d.items() if k != "root"} for d in data["datasets"]]
    if data.get("search") is not None:
        data["search"] = {k: v for k, v in data["search"].items() if k != "storage"}
    return data


def spec_hash(spec: ExperimentSpec) -> str:
    """sha256 (hex, 64 digits) of the canonical JSON of :func:`identity`, defaults included
    (so writing a default out does not change it)."""
    return hashlib.sha256(canonical_json(identity(spec)).encode()).hexdigest()


def trial_id(experiment: str, variant: str, dataset: str, fold: Any, fraction: float, seed: int,
             params: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over (experiment, variant, dataset, fold, fraction, seed, params)."""
    return digest([experiment, variant, dataset, str(fold), float(fraction), int(seed), dict(params)], 16)


def trial_config(spec: ExperimentSpec, parts: Mapping[str, Any], d: DatasetSpec, dataset: SegmentationDataset,
                 fold: int | str, fraction: float, seed: int) -> dict[str, Any]:
    """A complete TrialConfig dict (JSON types) for ``parts`` (model/plugins/train/eval) on
    one dataset, fold, fraction and seed. The plug-ins get the dataset's class count; a
    CPU-only trial (``resources.gpus == 0``) runs on the CPU even where a GPU exists. With
    ``eval.selection: best_val`` its validation cases are carved here once, so a training
    split too small to carve from is a spec error (ConfigError) before anything runs."""
    config = {
        "data": {"name": d.name, "root": root_text(d.root), "options": dict(d.options), "fold": fold,
                 "fraction": fraction, "subset_seed": d.subset_seed, "max_eval_cases": d.max_eval_cases},
        "model": parts["model"],
        "plugins": parts.get("plugins"),
        "train": parts["train"], "eval": parts["eval"], "seed": seed,
        "device": "cpu" if spec.resources.gpus == 0 else "auto",
        "cache_dir": str(resolve_root(spec.cache_dir)) if spec.cache_dir else None,
    }
    trial = TrialConfig.model_validate(config).for_classes(dataset.num_classes)
    if trial.eval.selection == "best_val":
        split_cases(dataset, trial)
    return trial.model_dump(mode="json")


def resources(spec: ExperimentSpec) -> dict[str, float]:
    return {"cpu": float(spec.resources.cpus), "gpu": float(spec.resources.gpus)}


def expand(spec: ExperimentSpec, datasets: Mapping[str, SegmentationDataset] | None = None) -> list[TrialSpec]:
    """Every trial of a grid spec, in the order variants x datasets x folds x fractions x seeds.

    datasets: key -> opened dataset (default: :func:`prepare_datasets`, which writes absent
    synthetic look-alikes). Raises :class:`SpecError` for configs the datasets make invalid
    (e.g. ``pdcr.num_classes`` against the dataset's classes), ``ValueError`` for a search spec.
    """
    if spec.search is not None:
        raise ValueError(f"spec {spec.name!r} is a search: its trials come from the sampler; use studies(spec)")
    loaded = datasets if datasets is not None else prepare_datasets(spec)
    out: list[TrialSpec] = []
    problems: list[Problem] = []
    for variant, overrides in combine(spec.variants, spec.axes):
        params = flatten(overrides)
        for i, d in enumerate(spec.datasets):
            parts = deep_merge(spec.dataset_base(d), overrides)
            dataset = loaded[d.key]
            try:
                configs = {(fold, fraction, seed): trial_config(spec, parts, d, dataset, fold, fraction, seed)
                           for fold in folds_of(d, dataset) for fraction in d.fraction for seed in spec.seeds}
            except (ValidationError, ValueError) as exc:
                problems.append(Problem(format_loc(("datasets", i)), f"variant {variant!r}: {exc}"))
                continue
            for (fold, fraction, seed), config in configs.items():
                out.append(TrialSpec(
                    trial_id=trial_id(spec.name, variant, d.key, fold, fraction, seed, params),
                    experiment=spec.name, variant=variant, dataset=d.key, fold=str(fold), seed=seed,
                    fraction=float(fraction), params=params, config=config, resources=resources(spec)))
    if problems:
        raise SpecError(problems, spec.source)
    return out


def variant_names(spec: ExperimentSpec) -> list[str]:
    """The variants of a grid spec, in crossing order."""
    return [name for name, _ in combine(spec.variants, spec.axes)]


def baseline_of(spec: ExperimentSpec, variant: str) -> str | None:
    """The variant that ``variant`` is compared with: ``variant`` with the component that the
    spec's ``baseline`` label belongs to replaced by it (``fcn+pdcr`` -> ``fcn+baseline``);
    None without a baseline."""
    if spec.baseline is None:
        return None
    labels = variant.split("+")
    for k, component in enumerate(components(spec.variants, spec.axes)):
        if spec.baseline in [label for label, _ in component]:
            if k >= len(labels):
                break
            return "+".join(labels[:k] + [spec.baseline] + labels[k + 1:])
    raise ValueError(f"variant {variant!r} does not belong to spec {spec.name!r}")


__all__ = ["TrialSpec", "expand", "spec_hash", "identity", "NOT_IDENTITY", "trial_id", "trial_config",
           "canonical_json", "variant_names", "baseline_of", "resources"]
