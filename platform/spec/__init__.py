"""Experiment specs: one YAML file per experiment, validated by pydantic, expanded into trials.

    spec = load_spec("configs/experiments/quickstart.yaml", ["train.epochs=3"])
    problems = check_paths(spec)          # [] when it can run here
    trials = expand(spec)                 # a grid: TrialSpec per variant x dataset x fold x fraction x seed
    studies(spec)                         # a search: one StudySpec (Optuna study) per dataset

Every problem of a file is reported at once by :class:`SpecError`, with its path in the file.
"""

from .checks import check_paths
from .configs import deep_merge, flatten, unflatten
from .datasets import default_folds, prepare_datasets
from .distributions import CategoricalDist, FloatDist, IntDist, SubsetDist
from .errors import Problem, SpecError
from .grid import TrialSpec, baseline_of, canonical_json, expand, spec_hash, trial_id, variant_names
from .loading import apply_overrides, load_spec, validate_spec
from .schema import DatasetSpec, ExperimentSpec, Failure, Resources
from .search_schema import METRIC_MODES, SAMPLERS, Objective, Scheduler, SearchSpec
from .space import SearchSpace, SpaceError
from .study import StudySpec, studies

__all__ = [
    "load_spec", "validate_spec", "apply_overrides", "check_paths", "expand", "studies", "prepare_datasets",
    "default_folds", "spec_hash", "trial_id", "canonical_json", "variant_names", "baseline_of",
    "ExperimentSpec", "DatasetSpec", "Resources", "Failure", "SearchSpec", "Scheduler", "Objective",
    "TrialSpec", "StudySpec", "SearchSpace", "SpaceError", "SpecError", "Problem",
    "FloatDist", "IntDist", "CategoricalDist", "SubsetDist", "SAMPLERS", "METRIC_MODES",
    "deep_merge", "flatten", "unflatten",
]
