"""Experiment specs: one YAML file per experiment, validated by pydantic, expanded into trials.

    spec = load_spec("configs/experiments/quickstart.yaml", ["train.epochs=3"])
    problems = check_paths(spec)          # [] when it can run here
    trials = expand(spec)                 # a grid: TrialSpec per variant x dataset x fold x fraction x seed

Every problem of a file is reported at once by :class:`SpecError`, with its path in the file.
"""

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

__all__ = [
    "load_spec", "validate_spec", "apply_overrides", "check_paths", "expand", "prepare_datasets",
    "default_folds", "spec_hash", "trial_id", "variant_names", "baseline_of",
    "ExperimentSpec", "DatasetSpec", "Resources", "Failure",
    "TrialSpec", "SpecError", "Problem",
    "deep_merge", "flatten", "unflatten",
]
