"""Attaching the paper's plug-ins to any PyTorch segmentation network."""

from .attach import PluggedModel, Plugins, attach
from .config import CBAMConfig, PluginsConfig, SEConfig, UAFRConfig
from .stages import Stage, declared_stages

__all__ = ["attach", "Plugins", "PluggedModel", "PluginsConfig", "UAFRConfig", "SEConfig", "CBAMConfig",
           "Stage", "declared_stages"]
