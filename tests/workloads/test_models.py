"""Contract suite for the model zoo: one set of checks run against every registered model
(output shape, declared stages, the paper's plug-in placement, detach), plus the registry's
and the input contract's errors. Small widths and inputs keep it fast on CPU."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from dragsaw.workloads.models import build_model, model_names, model_options, register_model
from dragsaw.workloads.plugins import PluggedModel, PluginsConfig, attach

WIDTH = 0.125
SPATIAL = {2: (64, 64), 3: (32, 32, 32)}
ODD = {2: (64, 96), 3: (32, 32, 48)}  # non-square, still multiples of 32 / 16
# (name, options): every registered model with its defaults, plus option variants.
VARIANTS = [(name, {}) for name in model_names()] + [
    ("unet", {"upsampling": "transposed"}),
    ("deeplabv3plus", {"output_stride": 8}),
    ("unet3d", {"strides": [1, 2, 2, 2]}),
]
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "plugins"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These nets run hundreds of tiny ops: on shared cores, two OpenMP threads waiting on
    each other at every op made one forward 300x slower (5 s against 15 ms) under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def variant_id(variant) -> str:
    name, options = variant
    return name + "".join(f"-{k}={v}" for k, v in options.items()).replace(" ", "")


def make(name: str, seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, in_channels=1, num_classes=2, width=WIDTH, **options)


def batch(spatial, b: int = 2, seed: int = 1):
    """Images (B, 1, *S) and labels (B, *S): a foreground box (class 1) plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(b, *spatial, dtype=torch.long)
    labels[(slice(None), *(slice(s // 4, 3 * s // 4) for s in spatial))] = 1
    return labels[:, None].float() + 0.3 * torch.randn(b, 1, *spatial, generator=g), labels


def eval_out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def hooked(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks}


def paper_placement(model: nn.Module) -> dict:
    """The paper's placement (Sec. IV-B) at test scale: UAFR on every encoder and decoder
    stage; H-PDCR on encoder.2/3/4, across encoder.2-encoder.3 and on decoder.1."""
    names = [s.name for s in model.feature_stages if s.name.startswith(("encoder.", "decoder."))]
    return {
        "uafr": {"layers": names, "num_maps": 2, "hidden": 4},
        "pdcr": {"num_classes": 2, "patch_sizes": [3, 5], "sites": [
            {"layers": ["encoder.2"], "n": 8}, {"layers": ["encoder.3"], "n": 8}, {"layers": ["encoder.4"], "n": 4},
            {"layers": ["encoder.2", "encoder.3"], "n": 4, "projection": 8}, {"layers": ["decoder.1"], "n": 4},
        ]},
    }


# -- the contract, for every model -------------------------------------------------------------

def test_the_zoo_holds_the_papers_models():
    assert model_names() == ["deeplabv3plus", "fcn", "unet", "unet3d"]


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_logits_at_input_resolution_and_stages_as_declared(variant):
    name, options = variant
    model = make(name, **options).eval()
    dims = model.spatial_dims
    x = torch.randn(2, 1, *ODD[dims])
    modules = dict(model.named_modules())
    outputs: dict[str, list] = {}
    handles = [modules[s.module].register_forward_hook(
        lambda mod, args, out, n=s.name: outputs.setdefault(n, []).append(out)) for s in model.feature_stages]
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    assert y.shape == (2, 2, *ODD[dims]) and torch.isfinite(y).all()

    stages = model.feature_stages
    names = [s.name for s in stages]
    assert len(set(names)) == len(names) and len({s.module for s in stages}) == len(stages)
    encoder = [n for n in names if n.startswith("encoder.")]
    decoder = [n for n in names if n.startswith("decoder.")]
    assert encoder == [f"encoder.{k}" for k in range(1, len(encoder) + 1)] and len(encoder) >= 4
    assert decoder == [f"decoder.{k}" for k in range(1, len(decoder) + 1)] and decoder
    assert set(names) - set(encoder) - set(decoder) <= {"aspp"}
    by_name = {s.name: s for s in stages}
    enc_strides = [by_name[n].stride for n in encoder]
    assert enc_strides == sorted(enc_strides), "encoder stages by increasing stride"
    assert model.size_divisor % max(s.stride for s in stages) == 0
    for stage in stages:
        assert stage.module in modules, stage
        calls = outputs.get(stage.name, [])
        assert len(calls) == 1, f"{stage.name} ({stage.module}) ran {len(calls)} times"
        out = calls[0]
        assert isinstance(out, torch.Tensor) and out.ndim == dims + 2, stage.name
        assert out.shape[1] == stage.channels, f"{stage.name}: {out.shape[1]} channels, declared {stage.channels}"
        assert [s * stage.stride for s in out.shape[2:]] == list(x.shape[2:]), \
            f"{stage.name}: output {tuple(out.shape)} for input {tuple(x.shape)}, declared stride {stage.stride}"


@pytest.mark.parametrize("name", model_names())
def test_paper_placement_attaches_and_trains_one_step(name):
    model = make(name)
    x, labels = batch(SPATIAL[model.spatial_dims])
    config = paper_placement(model)
    plugins = attach(model, config, example_input=x)
    stages = {s.name: s for s in model.feature_stages}
    assert plugins.paths == {n: stages[n].module for n in plugins.paths}
    assert hooked(model) == {stages[n].module for n in config["uafr"]["layers"]}
    assert all(plugins.reweight[n.replace(".", "__")].channels == stages[n].channels
               for n in config["uafr"]["layers"])

    plugged = PluggedModel(model, plugins).train()
    optimizer = torch.optim.SGD(plugged.parameters(), lr=0.01)
    before = {k: v.detach().clone() for k, v in plugins.named_parameters()}
    logits = plugged(x)
    reg = plugged.regularization(labels)
    loss = F.cross_entropy(logits, labels) + 0.01 * reg
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and torch.isfinite(reg) and reg.item() != 0.0
    grads = [p.grad for p in plugged.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    changed = {k for k, v in plugins.named_parameters() if not torch.equal(v.detach(), before[k])}
    assert any(k.startswith("reweight.") for k in changed) and any(k.startswith("pdcr.projections") for k in changed)


@pytest.mark.parametrize("name", model_names())
def test_detach_restores_the_outputs(name):
    model = make(name)
    x, _ = batch(SPATIAL[model.spatial_dims], seed=3)
    bare = eval_out(model, x)
    plugins = attach(model, paper_placement(model), example_input=x)
    plugins.eval()
    assert not torch.equal(eval_out(model, x), bare)
    plugins.detach()
    assert hooked(model) == set()
    assert torch.equal(eval_out(model, x), bare)


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("bad", ["size", "channels", "rank"])
def test_bad_input_is_refused_naming_its_shape(name, bad):
    model = make(name)
    spatial = SPATIAL[model.spatial_dims]
    shape = {"size": (1, 1, *(s + 8 for s in spatial)), "channels": (1, 3, *spatial), "rank": (1, 1, *spatial[1:])}[bad]
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        model(torch.zeros(shape))


# -- the paper's DeepLabV3+ -------------------------------------------------------------------

def test_full_width_models_match_the_papers_sizes():
    """Table IV: DeepLabV3+ 54.7 M, UNet 17.3 M parameters (built on the meta device: no memory)."""
    with torch.device("meta"):
        deeplab = build_model("deeplabv3plus", in_channels=3, num_classes=2)
        unet = build_model("unet", in_channels=3, num_classes=2)

    def params(module):
        return sum(p.numel() for p in module.parameters())

    assert round(params(deeplab) / 1e6, 1) == 54.7
    assert round(params(unet) / 1e6, 1) == 17.3
    table = {s.name: (s.module, s.channels, s.stride) for s in deeplab.feature_stages}
    assert table == {
        "encoder.1": ("encoder.stem", 64, 2), "encoder.2": ("encoder.entry1", 128, 4),
        "encoder.3": ("encoder.entry2", 256, 8), "encoder.4": ("encoder.middle", 728, 16),
        "encoder.5": ("encoder.exit", 2048, 16), "aspp": ("aspp", 256, 16),
        "decoder.1": ("decoder.fuse1", 256, 4), "decoder.2": ("decoder.fuse2", 256, 4),
    }


def test_shipped_paper_config_names_deeplab_stages():
    config = PluginsConfig.model_validate(yaml.safe_load((CONFIGS / "paper_deeplabv3plus.yaml").read_text()))
    model = make("deeplabv3plus")
    # N = 32 at encoder.4 (stride 16) needs at least 32 positions: 128 x 128 gives 64.
    plugins = attach(model, config, example_input=(1, 1, 128, 128))
    stages = {s.name: s.module for s in model.feature_stages}
    assert "aspp" not in config.uafr.layers
    assert hooked(model) == {stages[n] for n in plugins.paths}
    assert set(config.uafr.layers) == {n for n in stages if n != "aspp"}
    plugins.detach()


# -- the registry and its errors --------------------------------------------------------------

def test_unknown_model_lists_the_names_and_the_closest():
    with pytest.raises(ValueError, match=r"unknown model 'deeplabv3'.*'unet3d'.*did you mean 'deeplabv3plus'"):
        build_model("deeplabv3", in_channels=1, num_classes=2)


@pytest.mark.parametrize("kwargs, argument", [
    ({"in_channels": 0}, "in_channels"), ({"in_channels": 1.0}, "in_channels"),
    ({"num_classes": 1}, "num_classes"), ({"num_classes": True}, "num_classes"),
    ({"width": 0}, "width"), ({"width": -0.5}, "width"), ({"width": math.inf}, "width"),
    ({"upsample": "bilinear"}, "upsample"),
])
def test_bad_arguments_name_the_argument(kwargs, argument):
    args = {"in_channels": 1, "num_classes": 2, "width": WIDTH, **kwargs}
    with pytest.raises(ValueError, match=argument) as info:
        build_model("unet", **args)
    assert argument in str(info.value)
    if argument == "upsample":
        assert "did you mean 'upsampling'" in str(info.value)


@pytest.mark.parametrize("name, options, argument", [
    ("unet", {"upsampling": "nearest"}, "upsampling"),
    ("deeplabv3plus", {"output_stride": 32}, "output_stride"),
    ("fcn", {"dropout": 1.0}, "dropout"),
    ("unet3d", {"strides": [2, 2, 2, 2]}, "strides"),
    ("unet3d", {"strides": [1, [1, 2, 2], 2]}, "strides"),
])
def test_bad_option_values_name_the_option(name, options, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        build_model(name, in_channels=1, num_classes=2, width=WIDTH, **options)


def test_options_are_listed():
    assert model_options("unet3d") == {"strides": (1, 2, 2, 2, 2)}
    assert set(model_options("deeplabv3plus")) == {"output_stride", "dropout", "middle_blocks"}


def test_duplicate_registration_is_refused():
    original = build_model("unet", in_channels=1, num_classes=2, width=WIDTH)
    with pytest.raises(ValueError, match="'unet' is already registered"):
        @register_model("unet")
        class Impostor(nn.Module):
            def __init__(self, *, in_channels, num_classes, width=1.0):
                super().__init__()
    assert type(build_model("unet", in_channels=1, num_classes=2, width=WIDTH)) is type(original)


def test_width_scales_channels_with_a_floor_of_one():
    tiny = build_model("fcn", in_channels=1, num_classes=2, width=0.001)
    assert [s.channels for s in tiny.feature_stages if s.name.startswith("encoder.")] == [1] * 5
    half = build_model("unet", in_channels=1, num_classes=2, width=0.5)
    assert [s.channels for s in half.feature_stages][:5] == [32, 64, 128, 256, 256]
