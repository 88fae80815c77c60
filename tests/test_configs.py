"""Every shipped YAML under configs/ is loaded and validated the way its command reads it
(torchtune's habit): experiment and search specs by the spec loader (and their ``smoke:``
versions), plug-in configs by ``PluginsConfig`` and by attaching them to the model they are
written for. A YAML in a folder this file does not know fails, so a new kind of config
cannot ship unchecked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dragsaw.platform.experiment.loading import load_spec
from dragsaw.workloads.demo import PLUGINS
from dragsaw.workloads.plugins import PluginsConfig, attach

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ALL = sorted(CONFIGS.rglob("*.y*ml"))
SPECS = [p for p in ALL if p.relative_to(CONFIGS).parts[0] in ("experiments", "search")]
PLUGIN_FILES = [p for p in ALL if p.relative_to(CONFIGS).parts[0] == "plugins"]


def _monai_unet() -> torch.nn.Module:
    from monai.networks.nets import UNet

    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(16, 32, 64), strides=(2, 2))


def _deeplabv3plus() -> torch.nn.Module:
    from dragsaw.workloads.models import build_model

    return build_model("deeplabv3plus", in_channels=3, num_classes=2, width=0.25)


#: Plug-in config -> (the model it is written for, an input for attach's shape pass or None
#: when every layer is a stage the model declares).
PLUGIN_MODELS = {
    "demo_monai_unet.yaml": (_monai_unet, (1, 1, 64, 64)),
    "paper_deeplabv3plus.yaml": (_deeplabv3plus, None),
}


def test_every_shipped_yaml_is_checked_here():
    assert ALL and SPECS and PLUGIN_FILES
    assert sorted(SPECS + PLUGIN_FILES) == ALL, "a YAML under configs/ that no test here loads"
    assert sorted(PLUGIN_MODELS) == sorted(p.name for p in PLUGIN_FILES), "a plug-in config without its model"


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_opens_with_a_comment(path):
    assert path.read_text().startswith("#"), "every shipped YAML opens with a comment saying what it is and how it is used"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_spec_validates(path):
    spec = load_spec(path)
    assert spec.name and spec.datasets
    if "smoke" in (yaml.safe_load(path.read_text()) or {}):
        small = load_spec(path, smoke=True)
        assert small.name == spec.name


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: p.name)
def test_plugin_config_validates_and_attaches_to_its_model(path):
    config = PluginsConfig.model_validate(yaml.safe_load(path.read_text()))
    build, example = PLUGIN_MODELS[path.name]
    model = build()
    plugins = attach(model, config, example_input=example, num_classes=2)
    assert plugins.attached
    plugins.detach()


def test_demo_uses_the_shipped_demo_config():
    shipped = PluginsConfig.model_validate(yaml.safe_load((CONFIGS / "plugins" / "demo_monai_unet.yaml").read_text()))
    assert PluginsConfig.model_validate(PLUGINS) == shipped
