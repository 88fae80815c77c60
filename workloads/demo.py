"""A few-minute demonstration of the plug-ins on a network we did not write.

Trains a small MONAI U-Net on synthetic lesion-like images twice, bare and with
PDCR + UAFR attached by module name, and reports Dice on held-out images, the
PDCR loss, the mean UAFR uncertainty, and that detach() restores the network.
The platform's quickstart replaces this once experiments run end to end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dragsaw.workloads.plugins import PluggedModel, attach
from dragsaw.workloads.runtime import tune_cpu_allocator
from dragsaw.workloads.uafr import UAFR

#: Same as configs/plugins/demo_monai_unet.yaml (a test keeps them equal).
PLUGINS = {
    "uafr": {"layers": ["model.0", "model.1.submodule.0"], "num_maps": 2},
    "pdcr": {
        "num_classes": 2,
        "sites": [
            {"layers": ["model.0"], "n": 64},
            {"layers": ["model.1.submodule.0"], "n": 32},
            {"layers": ["model.0", "model.1.submodule.0"], "n": 32},
        ],
    },
}


def lesions(count: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Irregular blurred blobs on textured skin-like background: (count, 1, size, size) float, labels int64."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    angle = torch.atan2(yy, xx)
    images, labels = [], []
    for _ in range(count):
        cy, cx = (torch.rand(2, generator=generator) - 0.5) * 0.8
        radius = 0.25 + 0.25 * torch.rand(1, generator=generator)
        wobble = 1 + 0.2 * torch.sin(3 * angle + 6.28 * torch.rand(1, generator=generator))
        dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt() / (radius * wobble)
        mask = dist < 1
        image = torch.sigmoid((1 - dist) * 6) * 0.8 + 0.3 * torch.rand(size, size, generator=generator)
        images.append(image)
        labels.append(mask.long())
    return torch.stack(images).unsqueeze(1), torch.stack(labels)


def dice(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Foreground Dice over a batch of binary masks."""
    inter = (pred & target).sum().item()
    total = pred.sum().item() + target.sum().item()
    return 2 * inter / total if total else 1.0


def _train(with_plugins: bool, steps: int, seed: int, size: int) -> dict:
    from monai.networks.nets.unet import UNet

    torch.manual_seed(seed)
    net = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(16, 32, 64), strides=(2, 2))
    gen = torch.Generator().manual_seed(seed)
    test_x, test_y = lesions(32, size, gen)
    net.eval()
    with torch.no_grad():
        bare_out = net(test_x[:4])
    plugins = attach(net, PLUGINS, example_input=(1, 1, size, size)) if with_plugins else None
    model = PluggedModel(net, plugins) if plugins else net
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    reg_total, start = 0.0, time.perf_counter()
    model.train()
    for _ in range(steps):
        x, y = lesions(8, size, gen)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if plugins:
            reg = plugins.regularization(y)
            loss = loss + 0.01 * reg
            reg_total += reg.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    step_ms = (time.perf_counter() - start) / steps * 1e3
    model.eval()
    with torch.no_grad():
        pred = model(test_x).argmax(1).bool()
    result = {"dice": dice(pred, test_y.bool()), "step_ms": step_ms,
              "params": sum(p.numel() for p in model.parameters())}
    if plugins:
        uafr, first = plugins.reweight["model__0"], net.model
        if not isinstance(uafr, UAFR) or not isinstance(first, nn.Sequential):
            raise TypeError(f"expected a UAFR block on model.0 of a sequential UNet, got "
                            f"{type(uafr).__name__} on {type(first).__name__}")
        with torch.no_grad():
            feats = first[0](test_x[:4])
            result["uncertainty"] = uafr.uncertainty(feats).mean().item()
        result["pdcr_loss"] = reg_total / steps
        plugins.detach()
        trained = net.state_dict()
        restored = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(16, 32, 64), strides=(2, 2))
        restored.load_state_dict(trained)
        restored.eval()
        net.eval()
        with torch.no_grad():
            result["detach_restores"] = torch.equal(net(test_x[:4]), restored(test_x[:4]))
        del bare_out
    return result


def plugin_demo(steps: int = 40, seed: int = 0, size: int = 64, echo: Callable[[str], None] = print) -> dict:
    """Train bare and with PDCR + UAFR; print and return the comparison."""
    tune_cpu_allocator()
    echo(f"dragsaw plug-in demo: MONAI UNet, synthetic lesions {size}x{size}, {steps} steps of batch 8, CPU")
    rows = {}
    for name, flag in (("baseline", False), ("+PDCR+UAFR", True)):
        rows[name] = _train(flag, steps, seed, size)
        r = rows[name]
        extra = ""
        if flag:
            extra = (f"  pdcr_loss={r['pdcr_loss']:.3f}  mean uncertainty(model.0)={r['uncertainty']:.3f}  "
                     f"detach restores the network: {r['detach_restores']}")
        echo(f"  {name:<11} dice={r['dice']:.3f}  params={r['params']:,}  step={r['step_ms']:.0f} ms{extra}")
    return rows
