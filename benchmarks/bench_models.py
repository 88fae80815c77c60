"""Model zoo sizes against the paper's Table IV (parameters and FLOPs at 512 x 384).

Run: python benchmarks/bench_models.py [--device meta|cpu]

1. Every 2D model at full width, input (1, 3, 384, 512) (H x W; "512 x 384" in the
   paper), 2 classes; unet3d at (1, 1, 128, 128, 128), which the paper does not report.
   Parameters in M; FLOPs in G from ``torch.utils.flop_counter.FlopCounterMode`` under
   ``torch.no_grad`` (one forward). FlopCounterMode counts convolutions and matrix
   products only (not norms, activations, pooling or interpolation) and counts one
   multiply-add as 2 FLOPs, so FLOPs = 2 x MACs; the paper's FLOPs match MACs (thop-style
   counters), so GMACs is the column to compare with it.
2. DeepLabV3+: the overhead of the shipped paper placement
   (configs/plugins/paper_deeplabv3plus.yaml): UAFR (num_maps 2, hidden 16) on every
   encoder and decoder stage, and PDCR's cross-layer projection (training only).

``--device meta`` (default) builds the models on PyTorch's meta device: shapes and
counts without memory or compute, a few seconds. ``--device cpu`` runs real forwards
and also reports their time (minutes on 2 cores for unet3d).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dragsaw.workloads.models import build_model  # noqa: E402
from dragsaw.workloads.plugins import attach  # noqa: E402

INPUTS = {"deeplabv3plus": (1, 3, 384, 512), "unet": (1, 3, 384, 512), "fcn": (1, 3, 384, 512),
          "unet3d": (1, 1, 128, 128, 128)}
PAPER = {"deeplabv3plus": (54.7, 62.7), "unet": (17.3, 120.4), "fcn": (18.6, 76.5)}  # Table IV: M, G
PAPER_PLUS_UAFR = (55.5, 64.1)  # Table IV: DeepLabV3+ with UAFR


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, float]:
    """(FLOPs of one no-grad forward, seconds it took)."""
    model.eval()
    start = time.perf_counter()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops(), time.perf_counter() - start


def build(name: str, device: str):
    shape = INPUTS[name]
    torch.manual_seed(0)
    with torch.device(device):
        model = build_model(name, in_channels=shape[1], num_classes=2)
        x = torch.randn(shape)
    return model, x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("meta", "cpu"), default="meta")
    args = parser.parse_args()

    print(f"1. Full width, 2 classes, device={args.device}; FLOPs = 2 x MACs (FlopCounterMode: "
          "convs and matmuls only)")
    header = f"{'model':<14} {'input':<18} {'params M':>9} {'GFLOPs':>9} {'GMACs':>8}  {'paper M / G':>13}"
    print(header + ("  forward s" if args.device == "cpu" else ""))
    for name, shape in INPUTS.items():
        model, x = build(name, args.device)
        total, seconds = flops(model, x)
        paper = "{:.1f} / {:.1f}".format(*PAPER[name]) if name in PAPER else "n/a (3D)"
        line = (f"{name:<14} {'x'.join(map(str, shape)):<18} {params(model) / 1e6:>9.2f} {total / 1e9:>9.1f} "
                f"{total / 2e9:>8.1f}  {paper:>13}")
        print(line + (f"  {seconds:9.2f}" if args.device == "cpu" else ""))
        del model, x

    print("\n2. DeepLabV3+ with the paper placement (configs/plugins/paper_deeplabv3plus.yaml)")
    config = yaml.safe_load((ROOT / "configs" / "plugins" / "paper_deeplabv3plus.yaml").read_text())
    model, x = build("deeplabv3plus", args.device)
    base_params = params(model)
    base_flops, _ = flops(model, x)
    uafr = attach(model, {"uafr": config["uafr"]})  # declared stages: no example forward needed
    uafr_params = params(uafr)
    uafr_flops, _ = flops(model, x)
    stages = {s.name: s for s in model.feature_stages}
    print(f"UAFR (num_maps={config['uafr']['num_maps']}, hidden={config['uafr']['hidden']}) on "
          f"{', '.join(config['uafr']['layers'])}")
    print("   per stage: " + ", ".join(f"{n} ({stages[n].channels} ch) {params(b) / 1e3:.1f} k"
                                       for n, b in zip(config["uafr"]["layers"], uafr.reweight.values())))
    print(f"   parameters +{uafr_params / 1e6:.3f} M = +{100 * uafr_params / base_params:.2f} % "
          f"({base_params / 1e6:.2f} -> {(base_params + uafr_params) / 1e6:.2f} M; "
          f"paper {PAPER['deeplabv3plus'][0]} -> {PAPER_PLUS_UAFR[0]} M)")
    print(f"   GMACs +{(uafr_flops - base_flops) / 2e9:.2f} = +{100 * (uafr_flops - base_flops) / base_flops:.2f} % "
          f"({base_flops / 2e9:.1f} -> {uafr_flops / 2e9:.1f}; paper {PAPER['deeplabv3plus'][1]} -> "
          f"{PAPER_PLUS_UAFR[1]})")
    assert uafr_params < 0.02 * base_params, "UAFR must stay a lightweight plug-in (< 2 % parameters)"
    uafr.detach()
    pdcr = attach(model, {"pdcr": config["pdcr"]})
    for key, pair in pdcr.pdcr.projections.items():
        site = config["pdcr"]["sites"][int(key)]
        dims = " + ".join(f"{layer.in_features}->{layer.out_features}" for layer in pair)
        print(f"PDCR cross projection {'+'.join(site['layers'])} ({dims}): {params(pair) / 1e3:.2f} k parameters "
              f"= {100 * params(pair) / base_params:.3f} % (training only; inference is unchanged)")
    pdcr.detach()


if __name__ == "__main__":
    main()
