"""The preflight probe: feature-map sizes from one meta-device forward pass, and the
problems of a trial config that its model refuses (PDCR ``n``, patches larger than the image)."""

import pytest
import torch

from dragsaw.workloads.models import build_model
from dragsaw.workloads.plugins import declared_stages
from dragsaw.workloads.recipe.config import ConfigError
from dragsaw.workloads.recipe.preflight import config_problems, feature_sizes, preflight


@pytest.mark.parametrize("name", ["unet", "fcn", "deeplabv3plus"])
def test_feature_sizes_agree_with_the_declared_strides(name):
    with torch.device("meta"):
        stages = declared_stages(build_model(name, in_channels=3, num_classes=2, width=0.125))
    sizes = feature_sizes({"name": name, "width": 0.125}, (128, 96), list(stages))
    assert set(sizes) == set(stages)
    for stage in stages.values():
        assert sizes[stage.name] == (128 // stage.stride, 96 // stage.stride), stage


def test_unknown_layers_are_left_out_and_bad_models_raise():
    assert feature_sizes({"name": "fcn"}, (64, 64), ["encoder.1", "no.such.layer"]) == {"encoder.1": (32, 32)}
    with pytest.raises(ConfigError, match="cannot build model 'nope'"):
        feature_sizes({"name": "nope"}, (64, 64), ["encoder.1"])


def test_3d_sites_are_checked_at_the_patch_size():
    model = {"name": "unet3d", "width": 0.25}
    d, h, w = feature_sizes(model, (32, 32, 32), ["encoder.2"])["encoder.2"]
    positions = d * h * w
    config = {"model": model, "train": {"patch_size": [32, 32, 32]},
              "plugins": {"pdcr": {"patch_sizes": [3, 40], "sites": [{"layers": ["encoder.2"], "n": positions + 1}]}}}
    problems = dict(config_problems(config))
    assert problems[("plugins", "pdcr", "patch_sizes")].startswith("patch sizes [40] exceed the training input's "
                                                                  "shortest side (32 px, train.patch_size")
    assert (f"n={positions + 1} exceeds the {positions} positions of layer 'encoder.2' ({d}x{h}x{w} feature map "
            "of unet3d at train.patch_size [32, 32, 32])") in problems[("plugins", "pdcr", "sites", 0, "n")]
    config["plugins"]["pdcr"].update(patch_sizes=[3, 5], sites=[{"layers": ["encoder.2"], "n": positions}])
    preflight(config)  # at the bound: fine


def test_a_cross_layer_site_is_bounded_by_its_smaller_layer():
    # fcn at 64 px: encoder.2 is 16x16 (256 positions), encoder.3 is 8x8 (64)
    config = {"model": {"name": "fcn"}, "train": {"image_size": [64, 64]},
              "plugins": {"pdcr": {"sites": [{"layers": ["encoder.2", "encoder.3"], "n": 65}]}}}
    ((loc, msg),) = config_problems(config)
    assert loc == ("plugins", "pdcr", "sites", 0, "n") and "the 64 positions of layer 'encoder.3'" in msg


def test_configs_without_pdcr_have_nothing_to_probe():
    assert config_problems({"model": {"name": "fcn"}, "train": {"image_size": [64, 64]}, "plugins": None}) == []
    assert config_problems({"model": {"name": "fcn"}, "train": {"image_size": [64, 64]},
                            "plugins": {"uafr": {"layers": ["encoder.2"]}}}) == []
