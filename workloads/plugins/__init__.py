"""Attaching the paper's plug-ins to any PyTorch segmentation network."""

from dragsaw.workloads.plugins.attach import PluggedModel, Plugins, attach
from dragsaw.workloads.plugins.config import CBAMConfig, PluginsConfig, SEConfig, UAFRConfig
from dragsaw.workloads.plugins.stages import Stage, declared_stages

__all__ = ["attach", "Plugins", "PluggedModel", "PluginsConfig", "UAFRConfig", "SEConfig", "CBAMConfig",
           "Stage", "declared_stages"]
