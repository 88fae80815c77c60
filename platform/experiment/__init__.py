"""Experiment specs: one YAML file per experiment, validated by pydantic, expanded into trials.

    spec = load_spec("configs/experiments/quickstart.yaml", ["train.epochs=3"])
    problems = check_paths(spec)          # [] when it can run here
    trials = expand(spec)                 # a grid: TrialSpec per variant x dataset x fold x fraction x seed

Every problem of a file is reported at once by :class:`SpecError`, with its path in the file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dragsaw.platform.experiment.checks import check_paths
    from dragsaw.platform.experiment.configs import deep_merge, flatten, unflatten
    from dragsaw.platform.experiment.datasets import default_folds, prepare_datasets
    from dragsaw.platform.experiment.errors import Problem, SpecError
    from dragsaw.platform.experiment.grid import (
        TrialSpec,
        baseline_of,
        expand,
        spec_hash,
        trial_id,
        variant_names,
    )
    from dragsaw.platform.experiment.loading import apply_overrides, load_spec, validate_spec
    from dragsaw.platform.experiment.schema import DatasetSpec, ExperimentSpec, Failure, Resources

# Loaded on first use (PEP 562), not here: the search language (platform/search) imports
# errors / configs from this package while the spec schema imports the search language, so
# an eager __init__ made `import dragsaw.platform.search.space` fail with a circular import.
_HOME = {
    "check_paths": "checks", "deep_merge": "configs", "flatten": "configs", "unflatten": "configs",
    "default_folds": "datasets", "prepare_datasets": "datasets", "Problem": "errors", "SpecError": "errors",
    "TrialSpec": "grid", "baseline_of": "grid", "expand": "grid", "spec_hash": "grid", "trial_id": "grid",
    "variant_names": "grid", "apply_overrides": "loading", "load_spec": "loading", "validate_spec": "loading",
    "DatasetSpec": "schema", "ExperimentSpec": "schema", "Failure": "schema", "Resources": "schema",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


__all__ = [
    "load_spec", "validate_spec", "apply_overrides", "check_paths", "expand", "prepare_datasets",
    "default_folds", "spec_hash", "trial_id", "variant_names", "baseline_of",
    "ExperimentSpec", "DatasetSpec", "Resources", "Failure",
    "TrialSpec", "SpecError", "Problem",
    "deep_merge", "flatten", "unflatten",
]
