"""attach() / detach() / PluggedModel on networks we did not write (MONAI UNet, DynUNet)
and on a model that declares its feature stages."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import DynUNet, UNet
from pydantic import ValidationError
from torch import nn

from dragsaw.workloads.pdcr.geometry import ReceptiveField, receptive_field
from dragsaw.workloads.plugins import PluggedModel, PluginsConfig, Stage, attach

MARK = "_dragsaw_plugins"

# MONAI UNet(2D, channels (8, 16, 32), strides (2, 2)) on a 32 x 32 input:
#   model.0                    (B,  8, 16, 16)   conv k3 s2 p1
#   model.1.submodule.0        (B, 16,  8,  8)   conv k3 s2 p1
#   model.1.submodule.2        (B,  8, 16, 16)   decoder (transposed conv)
#   model.2                    (B,  2, 32, 32)   output
UNET_UAFR = ("model.0", "model.1.submodule.0")
UNET_PDCR = {
    "num_classes": 2,
    "patch_sizes": [3, 5],
    "sites": [
        {"layers": ["model.0"], "n": 16},  # single layer, H-PDCR
        {"layers": ["model.1.submodule.0", "model.1.submodule.2"], "n": 8, "projection": 8},  # cross-layer
        {"layers": ["model.1.submodule.0"], "n": 9, "patch": "receptive_field"},  # RF-PDCR, probed
    ],
}
UNET_CONFIG = {"uafr": {"layers": list(UNET_UAFR), "hidden": 4}, "pdcr": UNET_PDCR}


def make_unet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2))


def make_dynunet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return DynUNet(spatial_dims=3, in_channels=1, out_channels=2, kernel_size=[3, 3, 3], strides=[1, 2, 2],
                   upsample_kernel_size=[2, 2], filters=[4, 8, 16])


def batch(spatial=(32, 32), b: int = 2, seed: int = 1):
    """Images and labels: a foreground box (class 1) in the middle, plus noise in the images."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(b, *spatial, dtype=torch.long)
    box = tuple(slice(s // 4, 3 * s // 4) for s in spatial)
    labels[(slice(None), *box)] = 1
    x = labels[:, None].float() + 0.3 * torch.randn(b, 1, *spatial, generator=g)
    return x, labels


def hooked(model: nn.Module) -> dict[str, int]:
    """Modules of ``model`` that carry forward (pre-)hooks or a plug-in mark -> hook count."""
    out = {}
    for name, module in model.named_modules():
        count = len(module._forward_hooks) + len(module._forward_pre_hooks)
        if count or hasattr(module, MARK):
            out[name] = count
    return out


def train_step(plugged: PluggedModel, x, labels, weight: float = 0.01):
    plugged.train()
    optimizer = torch.optim.SGD(plugged.parameters(), lr=0.1)
    optimizer.zero_grad()
    logits = plugged(x)
    reg = plugged.regularization(labels)
    loss = F.cross_entropy(logits, labels) + weight * reg
    loss.backward()
    optimizer.step()
    return loss.detach(), reg.detach()


def eval_out(model: nn.Module, x) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def assert_step_trains_plugins(plugged: PluggedModel, x, labels, uafr_keys, projection_sites):
    plugins = plugged.plugins
    params = {id(p) for p in plugged.parameters()}
    assert {id(p) for p in plugins.parameters()} <= params
    before = {k: v.detach().clone() for k, v in plugins.named_parameters()}
    loss, reg = train_step(plugged, x, labels)
    assert torch.isfinite(loss) and torch.isfinite(reg)
    assert reg.item() != 0.0  # PDCR contributed
    for key in uafr_keys:
        for name, p in plugins.reweight[key].named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{key}.{name}"
            assert p.grad.abs().sum() > 0, f"UAFR {key}.{name} got no gradient"
    assert set(plugins.pdcr.projections.keys()) == set(projection_sites)
    for name, p in plugins.pdcr.projections.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"projection {name} got no gradient"
    after = dict(plugins.named_parameters())
    changed = [k for k in before if not torch.equal(before[k], after[k].detach())]
    assert any(k.startswith("reweight.") for k in changed) and any(k.startswith("pdcr.projections") for k in changed)
    # Recorded features do not outlive the step.
    assert plugins.pdcr._features == {}


# -- networks we did not write -------------------------------------------------------------

def test_monai_unet_training_step_with_uafr_and_pdcr():
    model = make_unet()
    x, labels = batch()
    plugins = attach(model, UNET_CONFIG, example_input=x, num_classes=2)
    assert plugins.paths == {n: n for n in ("model.0", "model.1.submodule.0", "model.1.submodule.2")}
    assert hooked(model) == {"model.0": 2, "model.1.submodule.0": 2, "model.1.submodule.2": 1}
    assert plugins.reweight["model__0"].channels == 8 and plugins.reweight["model__1__submodule__0"].channels == 16
    # Cross-layer projections: 16 -> 8 and 8 -> 8 channels.
    proj = plugins.pdcr.projections["1"]
    assert (proj[0].in_features, proj[1].in_features, proj[0].out_features) == (16, 8, 8)
    # The gradient probe agrees with Eq. 5-7 for two k3 s2 p1 convolutions.
    size, stride, offset = receptive_field([(3, 2, 1), (3, 2, 1)])
    assert plugins.pdcr.fields["model.1.submodule.0"] == ReceptiveField((size,) * 2, (stride,) * 2, (offset,) * 2)

    plugged = PluggedModel(model, plugins)
    assert_step_trains_plugins(plugged, x, labels, ["model__0", "model__1__submodule__0"], ["1"])


def test_monai_dynunet_3d_training_step_with_uafr_and_pdcr():
    model = make_dynunet()
    x, labels = batch((32, 32, 32), b=1)
    config = {
        "uafr": {"layers": ["downsamples.0", "bottleneck"], "hidden": 4},
        "pdcr": {
            "num_classes": 2,
            "patch_sizes": [3, 5],
            "sites": [
                {"layers": ["input_block"], "n": 8},
                {"layers": ["downsamples.0", "bottleneck"], "n": 8, "projection": 4},
                {"layers": ["downsamples.0"], "n": 8, "patch": "receptive_field"},
            ],
        },
    }
    plugins = attach(model, config, example_input=(1, 1, 32, 32, 32), num_classes=2)
    assert hooked(model) == {"input_block": 1, "downsamples.0": 2, "bottleneck": 2}
    assert plugins.reweight["downsamples__0"].spatial_dims == 3
    # input_block: two k3 s1 p1 convs; downsamples.0: k3 s2 p1 then k3 s1 p1.
    size, stride, offset = receptive_field([(3, 1, 1), (3, 1, 1), (3, 2, 1), (3, 1, 1)])
    assert plugins.pdcr.fields["downsamples.0"] == ReceptiveField((size,) * 3, (stride,) * 3, (offset,) * 3)
    plugged = PluggedModel(model, plugins)
    assert_step_trains_plugins(plugged, x, labels, ["downsamples__0", "bottleneck"], ["1"])


# -- detach ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make, shape", [(make_unet, (2, 1, 32, 32)), (make_dynunet, (1, 1, 16, 16, 16))],
                         ids=["unet", "dynunet"])
def test_detach_restores_the_model_exactly(make, shape):
    model = make()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    names = ["model.0", "model.1.submodule.0"] if make is make_unet else ["downsamples.0", "bottleneck"]
    config = {"uafr": {"layers": names, "hidden": 4}, "pdcr": {"num_classes": 2, "sites": [{"layers": names[:1], "n": 4}]}}
    bare = eval_out(model, x)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    plugins = attach(model, config, example_input=x, num_classes=2)
    plugged = PluggedModel(model, plugins)
    assert set(hooked(model)) == set(names)
    attached = eval_out(plugged, x)
    assert not torch.equal(attached, bare)

    plugins.detach()
    assert not plugins.attached
    assert hooked(model) == {}, "hooks or marks left behind"
    assert torch.equal(eval_out(model, x), bare)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())

    # Attaching again after detach works, and gives the same plug-in output as before
    # for the same plug-in weights.
    again = attach(model, config, example_input=x, num_classes=2)
    again.load_state_dict(plugins.state_dict())
    again.eval()
    assert set(hooked(model)) == set(names)
    assert torch.equal(eval_out(model, x), attached)
    again.detach()
    assert torch.equal(eval_out(model, x), bare)


@pytest.mark.parametrize("kind", ["uafr", "se", "cbam"])
def test_reweighting_changes_the_output_while_attached(kind):
    model = make_unet()
    x, _ = batch()
    bare = eval_out(model, x)
    plugins = attach(model, {kind: {"layers": ["model.1.submodule.0"]}}, example_input=x, num_classes=2)
    plugged = PluggedModel(model, plugins)
    out = eval_out(plugged, x)
    assert out.shape == bare.shape
    assert (out - bare).abs().max() > 1e-4
    plugins.detach()
    assert torch.equal(eval_out(model, x), bare)


# -- names and configs -----------------------------------------------------------------------

def test_unknown_name_fails_before_anything_is_attached_with_closest_names():
    model = make_unet()
    x, _ = batch()
    with pytest.raises(ValueError) as err:
        attach(model, {"uafr": {"layers": ["model.0", "model.1.submodul.0"]}}, example_input=x, num_classes=2)
    msg = str(err.value)
    assert "'model.1.submodul.0'" in msg and "'model.1.submodule.0'" in msg and "did you mean" in msg
    assert hooked(model) == {}


def test_several_unknown_names_are_reported_at_once():
    model = make_unet()
    x, _ = batch()
    config = {
        "uafr": {"layers": ["model.0", "model.O"]},
        "se": {"layers": ["model.1.submodule.3"]},
        "pdcr": {"num_classes": 2, "sites": [{"layers": ["modle.2"], "n": 4}, {"layers": ["model.1.submodule.0"], "n": 4}]},
    }
    with pytest.raises(ValueError) as err:
        attach(model, config, example_input=x, num_classes=2)
    msg = str(err.value)
    for wrong in ("model.O", "model.1.submodule.3", "modle.2"):
        assert repr(wrong) in msg
    for right in ("model.0", "model.1.submodule.0", "model.2"):
        assert repr(right) in msg  # among the suggestions
    assert hooked(model) == {}


def test_attaching_twice_to_one_module_is_refused_and_the_first_keeps_working():
    model = make_unet()
    x, labels = batch()
    first = attach(model, {"uafr": {"layers": ["model.0"], "hidden": 4}}, example_input=x, num_classes=2)
    plugged = PluggedModel(model, first)
    out = eval_out(plugged, x)
    hooks = hooked(model)
    assert hooks == {"model.0": 1}

    with pytest.raises(ValueError, match=r"'model.0' already has a reweight plug-in attached.*detach\(\)"):
        attach(model, {"uafr": {"layers": ["model.2", "model.0"]}}, example_input=x, num_classes=2)
    with pytest.raises(ValueError, match="already has a reweight plug-in"):
        attach(model, {"cbam": {"layers": ["model.0"]}}, example_input=x, num_classes=2)
    assert hooked(model) == hooks
    assert torch.equal(eval_out(plugged, x), out)

    # A PDCR recorder on the same module is a different kind of plug-in: allowed, once.
    pdcr_cfg = {"pdcr": {"num_classes": 2, "sites": [{"layers": ["model.0"], "n": 4}]}}
    second = attach(model, pdcr_cfg, example_input=x, num_classes=2)
    with pytest.raises(ValueError, match="already has a pdcr plug-in"):
        attach(model, pdcr_cfg, example_input=x, num_classes=2)
    plugged.train()
    plugged(x)
    assert torch.isfinite(second.regularization(labels))
    out = eval_out(plugged, x)  # the train forward moved UAFR's BatchNorm statistics
    second.detach()
    assert hooked(model) == hooks
    assert torch.equal(eval_out(plugged, x), out)
    first.detach()
    assert hooked(model) == {}
    attach(model, {"uafr": {"layers": ["model.0"]}}, example_input=x, num_classes=2)  # free again
    assert hooked(model) == {"model.0": 1}


def test_duplicate_layers_are_refused_at_config_validation():
    with pytest.raises(ValidationError, match="gets both uafr and se"):
        PluginsConfig.model_validate({"uafr": {"layers": ["model.0"]}, "se": {"layers": ["model.1", "model.0"]}})
    with pytest.raises(ValidationError, match=r"\['model.0'\] more than once"):
        PluginsConfig.model_validate({"uafr": {"layers": ["model.0", "model.2", "model.0"]}})
    with pytest.raises(ValidationError, match="listed twice"):
        PluginsConfig.model_validate({"pdcr": {"num_classes": 2, "sites": [{"layers": ["a", "b"], "n": 4},
                                                                           {"layers": ["b", "a"], "n": 8}]}})
    model = make_unet()
    with pytest.raises(ValueError, match="gets both uafr and se"):
        attach(model, {"uafr": {"layers": ["model.0"]}, "se": {"layers": ["model.0"]}}, example_input=(1, 1, 32, 32), num_classes=2)
    assert hooked(model) == {}


@pytest.mark.parametrize("config, key", [
    ({"uafr": {"layerz": ["model.0"]}}, "layerz"),
    ({"uafr": {"layers": ["model.0"], "hiden": 4}}, "hiden"),
    ({"uafrr": {"layers": ["model.0"]}}, "uafrr"),
    ({"pdcr": {"num_classes": 2, "sites": [{"layers": ["model.0"], "n": 4, "projecton": 8}]}}, "projecton"),
])
def test_unknown_config_keys_are_validation_errors(config, key):
    model = make_unet()
    with pytest.raises(ValidationError) as err:
        attach(model, config, example_input=(1, 1, 32, 32), num_classes=2)
    assert isinstance(err.value, ValueError)
    assert key in str(err.value) and "Extra inputs are not permitted" in str(err.value)
    assert hooked(model) == {}


@pytest.mark.parametrize("layers, n", [(["model.1.submodule.0"], 65), (["model.0", "model.1.submodule.0"], 100)])
def test_pdcr_n_larger_than_the_layer_fails_at_attach(layers, n):
    model = make_unet()
    config = {"uafr": {"layers": ["model.0"]}, "pdcr": {"num_classes": 2, "sites": [{"layers": layers, "n": n}]}}
    with pytest.raises(ValueError) as err:
        attach(model, config, example_input=(1, 1, 32, 32), num_classes=2)
    msg = str(err.value)
    assert f"site {'+'.join(layers)!r}" in msg and "layer 'model.1.submodule.0'" in msg and "64 positions" in msg
    assert hooked(model) == {}
    # n that fits: attaches.
    ok = {"pdcr": {"num_classes": 2, "sites": [{"layers": layers, "n": 64}]}}
    attach(model, ok, example_input=(1, 1, 32, 32), num_classes=2).detach()


# -- recording ---------------------------------------------------------------------------------

def test_nothing_is_recorded_in_eval_mode_and_nothing_leaks():
    model = make_unet()
    x, labels = batch()
    config = {"pdcr": {"num_classes": 2, "sites": [{"layers": ["model.0"], "n": 4},
                                                   {"layers": ["model.0", "model.1.submodule.2"], "n": 4}]}}
    plugins = attach(model, config, example_input=x, num_classes=2)
    plugged = PluggedModel(model, plugins)
    pdcr = plugins.pdcr

    plugged.eval()
    plugged(x)
    assert pdcr._features == {}
    with pytest.raises(RuntimeError, match="no features recorded"):
        plugged.regularization(labels)

    plugged.train()
    with torch.no_grad():  # a no-grad forward (e.g. validation in train mode) records nothing either
        plugged(x)
    assert pdcr._features == {}

    plugged(x)
    assert set(pdcr._features) == {"model.0", "model.1.submodule.2"}
    reg = plugged.regularization(labels)
    assert torch.isfinite(reg) and reg.requires_grad
    assert pdcr._features == {}
    with pytest.raises(RuntimeError, match="no features recorded"):
        plugged.regularization(labels)  # the previous step's features are gone

    plugged(x)
    with pytest.raises(ValueError, match=r"layer 'model.0' output \(2, 8, 16, 16\) must be \(B=1, C, \*S\)"):
        plugged.regularization(labels[:1])  # a failing loss clears the step too
    assert pdcr._features == {}

    plugged(x)
    plugins.detach()
    assert pdcr._features == {}


def test_regularization_without_pdcr_is_zero():
    model = make_unet()
    x, labels = batch()
    plugins = attach(model, {"se": {"layers": ["model.0"]}}, example_input=x, num_classes=2)
    reg = plugins.regularization(labels)
    assert reg.shape == () and reg.item() == 0.0


# -- checkpoints -------------------------------------------------------------------------------

def test_state_dict_round_trip_gives_identical_outputs():
    x, labels = batch()
    model = make_unet(seed=0)
    plugged = PluggedModel(model, attach(model, UNET_CONFIG, example_input=x, num_classes=2))
    train_step(plugged, x, labels)
    state = plugged.state_dict()
    for key in ("plugins.reweight.model__0.f.0.weight", "plugins.reweight.model__0.f.1.running_mean",
                "plugins.reweight.model__1__submodule__0.f.3.bias",
                "plugins.pdcr.projections.1.0.weight", "plugins.pdcr.projections.1.1.bias"):
        assert key in state, key
    assert not any(MARK in k for k in state)

    fresh_model = make_unet(seed=5)
    fresh = PluggedModel(fresh_model, attach(fresh_model, UNET_CONFIG, example_input=x, num_classes=2))
    expected = eval_out(plugged, x)
    assert not torch.equal(eval_out(fresh, x), expected)
    fresh.load_state_dict(state)  # strict
    assert torch.equal(eval_out(fresh, x), expected)
    for name, p in fresh.plugins.pdcr.projections.named_parameters():
        assert torch.equal(p, plugged.plugins.pdcr.projections.get_parameter(name))
    # Same training step from the same state: same regularization.
    plugged.train(), fresh.train()
    plugged(x), fresh(x)
    assert torch.equal(plugged.regularization(labels), fresh.regularization(labels))


# -- declared stages ---------------------------------------------------------------------------

class StagedNet(nn.Module):
    """A tiny segmentation net that declares its feature stages."""

    spatial_dims = 2

    def __init__(self):
        super().__init__()
        self.enc0 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.enc1 = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 2, 1)
        self.feature_stages = [
            Stage(name="encoder.0", module="enc0", channels=4, stride=1),
            Stage(name="encoder.1", module="enc1", channels=8, stride=2),
        ]

    def forward(self, x):
        return F.interpolate(self.head(self.enc1(self.enc0(x))), scale_factor=2.0)


def test_declared_stages_attach_without_example_input():
    torch.manual_seed(0)
    model = StagedNet()
    config = {
        "uafr": {"layers": ["encoder.1"], "hidden": 4},
        "pdcr": {"num_classes": 2, "patch_sizes": [3, 5], "sites": [
            {"layers": ["encoder.1"], "n": 8},
            {"layers": ["encoder.0", "encoder.1"], "n": 8, "projection": 4},
            {"layers": ["encoder.0"], "n": 8, "patch": "receptive_field", "receptive_field": [[3, 1, 1]]},
        ]},
    }
    x, labels = batch((16, 16))
    model.train()
    plugins = attach(model, config, num_classes=2)
    assert plugins.paths == {"encoder.0": "enc0", "encoder.1": "enc1"}
    assert hooked(model) == {"enc0": 1, "enc1": 2}
    assert plugins.reweight["encoder__1"].channels == 8 and plugins.reweight["encoder__1"].spatial_dims == 2
    assert plugins.pdcr.fields["encoder.0"] == ReceptiveField((3,), (1,), (-1,))
    plugged = PluggedModel(model, plugins)
    assert_step_trains_plugins(plugged, x, labels, ["encoder__1"], ["1"])
    plugins.detach()
    assert hooked(model) == {}


def test_declared_stages_errors():
    torch.manual_seed(0)
    model = StagedNet()
    with pytest.raises(ValueError, match=r"'encoder\.2'.*did you mean 'encoder\.1'"):
        attach(model, {"uafr": {"layers": ["encoder.2"]}}, num_classes=2)
    # A plain module path is not a declared stage: its channels need an example input.
    with pytest.raises(ValueError, match="needs `example_input`"):
        attach(model, {"uafr": {"layers": ["enc1.0"]}}, num_classes=2)
    # RF-PDCR without a declared chain is probed, which needs an example input.
    with pytest.raises(ValueError, match="needs `example_input`"):
        attach(model, {"pdcr": {"num_classes": 2, "sites": [{"layers": ["encoder.1"], "n": 4,
                                                              "patch": "receptive_field"}]}}, num_classes=2)
    # A stage and its module path name one module: refused.
    with pytest.raises(ValueError, match="all denote module 'enc1'"):
        attach(model, {"uafr": {"layers": ["encoder.1"]}, "pdcr": {"num_classes": 2, "sites": [
            {"layers": ["enc1"], "n": 4}]}}, example_input=(1, 1, 16, 16), num_classes=2)
    assert hooked(model) == {}
    # With an example input, a stage name and a module path attach side by side.
    plugins = attach(model, {"uafr": {"layers": ["encoder.1", "enc0.0"]}}, example_input=(1, 1, 16, 16), num_classes=2)
    assert plugins.paths == {"encoder.1": "enc1", "enc0.0": "enc0.0"}
    plugins.detach()


def test_attach_leaves_the_model_state_and_mode_alone():
    """attach()'s shape pass runs in eval mode without grad: no BatchNorm statistics move,
    and every module's training flag is restored."""
    torch.manual_seed(0)
    model = StagedNet().train()
    model.enc0[1].eval()  # a mixed-mode model stays mixed
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    plugins = attach(model, {"uafr": {"layers": ["enc0.1"]}, "pdcr": {"num_classes": 2, "sites": [
        {"layers": ["enc1"], "n": 4, "patch": "receptive_field"}]}}, example_input=(2, 1, 16, 16), num_classes=2)
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # Probed receptive field of enc1 (k3 s1 p1 then k3 s2 p1; BatchNorm is per-pixel).
    size, stride, offset = receptive_field([(3, 1, 1), (3, 2, 1)])
    assert plugins.pdcr.fields["enc1"] == ReceptiveField((size, size), (stride, stride), (offset, offset))


# -- regressions -------------------------------------------------------------------------------

def test_attach_does_not_move_the_statistics_of_earlier_plugins():
    """attach()'s shape pass is an eval forward: UAFR blocks attached before must not
    update their BatchNorm statistics in it (they did while Plugins sat in train mode)."""
    model = make_unet().train()
    x, _ = batch()
    first = attach(model, {"uafr": {"layers": ["model.0"]}}, example_input=x, num_classes=2)
    state = {k: v.clone() for k, v in first.state_dict().items()}
    attach(model, {"se": {"layers": ["model.2"]}, "pdcr": {"num_classes": 2, "sites": [
        {"layers": ["model.1.submodule.0"], "n": 4}]}}, example_input=x, num_classes=2)
    assert all(torch.equal(v, state[k]) for k, v in first.state_dict().items())


def test_reweighting_runs_in_the_mode_of_its_layer():
    """model.eval() alone (plug-ins not switched) gives the same output as PluggedModel.eval()
    and leaves the UAFR statistics alone; model.train() trains them."""
    x, _ = batch()
    model = make_unet()
    plugins = attach(model, {"uafr": {"layers": ["model.0"]}}, example_input=x, num_classes=2)
    plugged = PluggedModel(model, plugins)
    expected = eval_out(plugged, x)
    plugins.train()
    state = {k: v.clone() for k, v in plugins.state_dict().items()}
    assert torch.equal(eval_out(model, x), expected)
    assert all(torch.equal(v, state[k]) for k, v in plugins.state_dict().items())
    model.train()
    with torch.no_grad():
        model(x)
    assert plugins.reweight["model__0"].f[1].num_batches_tracked.item() == 1


@pytest.mark.parametrize("split", [False, True], ids=["one_attach", "pdcr_attached_first"])
def test_pdcr_records_the_features_the_network_passes_on(split):
    """With UAFR and PDCR on one module, PDCR records the re-weighted output (what the next
    layer receives), also when the PDCR recorder was attached before the UAFR block."""
    model = make_unet()
    x, _ = batch()
    uafr = {"uafr": {"layers": ["model.0"]}}
    pdcr = {"pdcr": {"num_classes": 2, "sites": [{"layers": ["model.0"], "n": 4}]}}
    if split:
        recorder = attach(model, pdcr, example_input=x, num_classes=2)
        attach(model, uafr, example_input=x, num_classes=2)
    else:
        recorder = attach(model, {**uafr, **pdcr}, example_input=x, num_classes=2)
    received = []
    model.model[1].register_forward_pre_hook(lambda m, args: received.append(args[0]))
    model.train()
    model(x)
    assert recorder.pdcr._features["model.0"] is received[0]


def test_a_module_called_twice_per_forward_is_refused():
    """DynUNet reuses one activation module twice in each block: a plug-in there would
    re-weight both calls and PDCR would see only the last."""
    model = make_dynunet()
    with pytest.raises(ValueError, match=r"'input_block\.lrelu': 2.*more than once"):
        attach(model, {"uafr": {"layers": ["input_block.lrelu"]}}, example_input=(1, 1, 16, 16, 16), num_classes=2)
    assert hooked(model) == {}


def test_sizes_that_follow_the_classes_are_filled_from_num_classes_or_named():
    """pdcr.num_classes and uafr.num_maps may be left out of a config: attach(num_classes=M)
    (the trial: its dataset's classes) fills them; without it, what is unset is named before
    any hook is registered; a pdcr.num_classes that contradicts M is refused."""
    model = make_unet()
    x, _ = batch()
    with pytest.raises(ValueError, match=r"uafr\.num_maps is not set"):
        attach(model, {"uafr": {"layers": ["model.0"]}}, example_input=x)
    with pytest.raises(ValueError, match="PDCR needs `num_classes`"):
        attach(model, {"pdcr": {"sites": [{"layers": ["model.0"], "n": 4}]}}, example_input=x)
    assert hooked(model) == {}
    with pytest.raises(ValueError, match="plugins.pdcr.num_classes is 2 but the dataset has 3 classes"):
        attach(model, {"pdcr": {"num_classes": 2, "sites": [{"layers": ["model.0"], "n": 4}]}},
               example_input=x, num_classes=3)
    plugins = attach(model, {"uafr": {"layers": ["model.0"]}, "pdcr": {"sites": [{"layers": ["model.0"], "n": 4}]}},
                     example_input=x, num_classes=3)
    assert plugins.reweight["model__0"].num_maps == 3 and plugins.config.pdcr.num_classes == 3
    plugins.detach()

    given = PluginsConfig.model_validate({"uafr": {"layers": ["a"], "num_maps": 5}})
    assert given.for_classes(3).uafr.num_maps == 5  # M is free (Table IX varies it)
    assert PluginsConfig().for_classes(3) == PluginsConfig()


def test_one_table_of_plugin_kinds():
    """Every plug-in kind is one row of KINDS: PluginsConfig has a field per row, and each
    re-weighting row builds exactly the block its config describes (2D and 3D)."""
    from dragsaw.workloads.plugins import KINDS, REWEIGHTING
    from dragsaw.workloads.uafr import CBAM, UAFR, SqueezeExcitation

    assert set(PluginsConfig.model_fields) == set(KINDS)
    assert REWEIGHTING == tuple(k for k in KINDS if k != "pdcr")
    rows = {"uafr": ({"num_maps": 3, "hidden": 5, "kernel_size": 5, "use_f": True},
                     lambda d: UAFR(8, 3, 5, 5, True, spatial_dims=d)),
            "se": ({"reduction": 4}, lambda d: SqueezeExcitation(8, 4, spatial_dims=d)),
            "cbam": ({"reduction": 2, "kernel_size": 3}, lambda d: CBAM(8, 2, 3, spatial_dims=d))}
    assert sorted(rows) == sorted(REWEIGHTING)
    for name, (options, direct) in rows.items():
        kind = KINDS[name]
        build = kind.build
        assert build is not None
        for dims in (2, 3):
            torch.manual_seed(0)
            block = build(kind.config.model_validate({"layers": ["a"], **options}), 8, dims)
            torch.manual_seed(0)
            expected = direct(dims)
            q = torch.randn(2, 8, *([6] * dims))
            assert {k: v.shape for k, v in block.state_dict().items()} == \
                   {k: v.shape for k, v in expected.state_dict().items()}, name
            assert torch.equal(block.eval()(q), expected.eval()(q)), name
