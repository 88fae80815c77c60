"""Every shipped YAML in configs/ is validated (torchtune's habit)."""

from pathlib import Path

import pytest
import yaml

from dragsaw.workloads.demo import PLUGINS
from dragsaw.workloads.plugins import PluginsConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PLUGIN_FILES = sorted((CONFIGS / "plugins").glob("*.yaml"))


def test_configs_are_shipped():
    assert PLUGIN_FILES


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.name)
def test_plugin_config_validates(path):
    text = path.read_text()
    assert text.startswith("#"), "every shipped YAML opens with a comment saying what it is and how it is used"
    PluginsConfig.model_validate(yaml.safe_load(text))


def test_demo_uses_the_shipped_demo_config():
    shipped = PluginsConfig.model_validate(yaml.safe_load((CONFIGS / "plugins" / "demo_monai_unet.yaml").read_text()))
    assert PluginsConfig.model_validate(PLUGINS) == shipped
