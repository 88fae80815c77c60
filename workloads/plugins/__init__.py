"""Attaching the paper's plug-ins to any PyTorch segmentation network."""

from dragsaw.workloads.plugins.attach import PluggedModel, Plugins, attach
from dragsaw.workloads.plugins.config import (
    KINDS,
    REWEIGHTING,
    CBAMConfig,
    Kind,
    PluginsConfig,
    SEConfig,
    UAFRConfig,
)
from dragsaw.workloads.plugins.stages import Stage, declared_stages

__all__ = ["attach", "Plugins", "PluggedModel", "PluginsConfig", "UAFRConfig", "SEConfig", "CBAMConfig",
           "KINDS", "REWEIGHTING", "Kind",
           "Stage", "declared_stages"]
