"""Costs of one trial's pieces on CPU.

Run: python benchmarks/bench_trial.py [--widths 0.25 0.5] [--repeats 10]

1. Training step (forward + backward + Adam) of DeepLabV3+ at reduced width, 256 x 256,
   batch 8: bare, +UAFR, +PDCR, +both at the paper's placements
   (configs/plugins/paper_deeplabv3plus.yaml); each plug-in's share (target: both <= 1.15x);
   PDCR's forward + backward against the model's (target <= 5%).
2. The 2D loader with the paper's augmentation: images/s of 256 x 256 per core from the
   preprocessed cache vs from the raw files (decode + resize each time); target >= 200/s/core.
3. Peak memory (max RSS) of a 3D trial's training steps at patch 64^3 (unet3d, full width,
   batch 2), measured in a subprocess.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
from dragsaw.workloads.models import build_model  # noqa: E402
from dragsaw.workloads.plugins import PluggedModel, attach  # noqa: E402
from dragsaw.workloads.runtime import tune_cpu_allocator  # noqa: E402

PAPER = yaml.safe_load((ROOT / "configs" / "plugins" / "paper_deeplabv3plus.yaml").read_text())


def make_step(plugins: dict | None, width: float):
    """A closure running one training step of DeepLabV3+ with ``plugins`` attached."""
    torch.manual_seed(0)
    net = build_model("deeplabv3plus", in_channels=3, num_classes=2, width=width)
    p = attach(net, plugins, example_input=(1, 3, 256, 256)) if plugins else None
    model = PluggedModel(net, p) if p else net
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(8, 3, 256, 256)
    y = torch.zeros(8, 256, 256, dtype=torch.long)
    y[:, 64:192, 80:200] = 1
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        if p is not None and p.pdcr is not None:
            loss = loss + 0.01 * p.regularization(y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, net, p, x, y


def step_times(variants: dict[str, dict | None], width: float, repeats: int) -> dict[str, float]:
    """Median step time per variant, steps interleaved round-robin so that the machine's
    drift over time affects every variant alike."""
    steps = {name: make_step(plugins, width)[0] for name, plugins in variants.items()}
    for step in steps.values():
        step()
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def pdcr_share(width: float, repeats: int) -> tuple[float, float]:
    """(PDCR forward + backward alone, model forward + backward) in ms, on the features
    the model produced, at the paper's PDCR placement."""
    _, net, p, x, y = make_step({"pdcr": PAPER["pdcr"]}, width)
    net.train()

    def model_only():
        p.pdcr.clear()
        F.cross_entropy(net(x), y).backward()

    net(x)
    feats = {k: v.detach().requires_grad_() for k, v in p.pdcr._features.items()}

    def pdcr_only():
        for k, v in feats.items():
            p.pdcr.record(k, v)
        p.pdcr(y).backward()

    out = []
    for fn in (pdcr_only, model_only):
        fn()
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        out.append(statistics.median(ts) * 1e3)
    return out[0], out[1]


def loader_throughput(n_images: int = 64) -> tuple[float, float]:
    from dragsaw.workloads.data import load_dataset
    from dragsaw.workloads.data.cache import CaseCache
    from dragsaw.workloads.data.loading import TrainingSamples
    from dragsaw.workloads.data.preprocess import Preprocessing, preprocess_2d
    from dragsaw.workloads.data.synthetic import write_isic2016
    from dragsaw.workloads.data.transforms import Augment2D

    with tempfile.TemporaryDirectory() as tmp:
        write_isic2016(Path(tmp) / "isic", n_train=n_images, n_test=2, size=(768, 1024), seed=0)
        ds = load_dataset("isic2016", Path(tmp) / "isic")
        ids = ds.splits["train"]
        cache = CaseCache(ds, Preprocessing(image_size=(256, 256)), root=Path(tmp) / "cache")
        cache.warm(ids)
        samples = TrainingSamples(cache, ids, seed=0)
        samples[0]
        t = time.perf_counter()
        for i in range(len(samples)):
            samples[i]
        cached = len(samples) / (time.perf_counter() - t)
        aug = Augment2D()
        t = time.perf_counter()
        for i, case_id in enumerate(ids):
            case = ds.read(case_id)
            entry = preprocess_2d(case.image, case.label, (256, 256))
            aug(entry["image"], entry["label"], seed=i)
        raw = len(ids) / (time.perf_counter() - t)
    return cached, raw


MEMORY_SCRIPT = """
import torch, torch.nn.functional as F
from dragsaw.workloads.models import build_model
from dragsaw.workloads.runtime import tune_cpu_allocator
tune_cpu_allocator()
torch.manual_seed(0)
net = build_model("unet3d", in_channels=1, num_classes=3, width=1.0)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
x = torch.randn(2, 1, 64, 64, 64); y = torch.randint(0, 3, (2, 64, 64, 64))
def hwm():  # this process's peak RSS in MiB (ru_maxrss would include the parent's, kept across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
before = hwm()
for _ in range(2):
    loss = F.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
print(before, hwm(), sum(p.numel() for p in net.parameters()) / 1e6)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    tune_cpu_allocator()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    variants = {"bare": None, "+UAFR": {"uafr": PAPER["uafr"]}, "+PDCR": {"pdcr": PAPER["pdcr"]},
                "+PDCR +UAFR": PAPER}
    for width in args.widths:
        t = step_times(variants, width, args.repeats)
        bare = t["bare"]
        print(f"\n[1] DeepLabV3+ width {width}, 256x256, batch 8: training step (fwd + bwd + Adam), "
              f"median of {args.repeats}, variants interleaved")
        for name, ms in t.items():
            print(f"    {name:<14}: {ms:8.1f} ms  = {ms / bare:.3f}x bare  (+{(ms - bare) / bare:6.1%})")
        pdcr_ms, model_ms = pdcr_share(width, args.repeats)
        print(f"    PDCR fwd+bwd alone {pdcr_ms:.1f} ms = {pdcr_ms / model_ms:.1%} of the model's fwd+bwd "
              f"({model_ms:.0f} ms; target <= 5%)")

    cached, raw = loader_throughput()
    print("\n[2] 2D loader with the paper's augmentation, 256x256 output, one process (one core)")
    print(f"    from the cache    : {cached:8.1f} images/s (target >= 200)")
    print(f"    from raw files    : {raw:8.1f} images/s (1024x768 JPEG decode + resize + augment)")

    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode == 0:
        before, peak, params = (float(v) for v in out.stdout.split())
        print("\n[3] 3D trial, unet3d full width (params %.1f M), patch 64^3, batch 2, CPU training steps" % params)
        print(f"    peak RSS          : {peak:8.0f} MiB (after model build: {before:.0f} MiB)")
    else:
        print("\n[3] 3D memory measurement failed:\n" + out.stderr[-2000:])


if __name__ == "__main__":
    main()
