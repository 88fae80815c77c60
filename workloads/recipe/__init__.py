"""One trial from data to per-case metrics: ``run_trial(config, report)``."""

from dragsaw.workloads.recipe.config import (
           DataConfig,
           EvalConfig,
           ModelConfig,
           TrainConfig,
           TrialConfig,
)
from dragsaw.workloads.recipe.trial import Trial, run_trial

__all__ = ["run_trial", "Trial", "TrialConfig", "DataConfig", "ModelConfig", "TrainConfig", "EvalConfig"]
