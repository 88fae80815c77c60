"""The GPU path, measured: run this on a machine with CUDA.

Run: python benchmarks/bench_gpu.py [--steps 20] [--batch 16] [--size 512] [--workers 0 2 4 8]

1. DeepLabV3+ (aligned Xception-65, full width), 512 x 512, batch 16, training steps
   (forward + backward + Adam): bare, +PDCR, +UAFR, +both at the paper's placements
   (configs/plugins/paper_deeplabv3plus.yaml), with mixed precision off (float32) and on
   (bf16 autocast where the device has bfloat16, fp16 + GradScaler otherwise), channels-last
   as the recipe chooses on CUDA; step time (ms, median), images/s, peak memory, and each
   variant's overhead over bare at the same precision.
2. 3D: unet3d (nnU-Net-like DynUNet, full width), patches 128^3, batch 2: patches/s with
   mixed precision off and on.
3. The 2D loader with the paper's augmentation from the preprocessed cache, 512 x 512:
   images/s with N workers (pinned memory, persistent workers) — what a trial's CPUs feed.

Where CUDA is absent it says so and exits 0 (the CPU figures are in bench_trial.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
from dragsaw.workloads.models import build_model  # noqa: E402
from dragsaw.workloads.plugins import PluggedModel, attach  # noqa: E402

PAPER = yaml.safe_load((ROOT / "configs" / "plugins" / "paper_deeplabv3plus.yaml").read_text())
VARIANTS: dict[str, dict | None] = {
    "bare": None,
    "+PDCR": {"pdcr": PAPER["pdcr"]},
    "+UAFR": {"uafr": PAPER["uafr"]},
    "+both": PAPER,
}


DEVICE = torch.device("cuda")  # --cpu-smoke: torch.device("cpu"), to check this script without a GPU


def mixed_dtype() -> torch.dtype:
    """What ``train.precision: auto`` picks on this GPU."""
    if DEVICE.type == "cpu":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def make_step(model_name: str, plugins: dict | None, x_shape: tuple[int, ...], num_classes: int,
              dtype: torch.dtype | None) -> Callable[[], None]:
    """One training step of ``model_name`` with ``plugins`` attached, on CUDA, with autocast
    at ``dtype`` (None: float32) and a GradScaler for fp16."""
    dev = DEVICE
    torch.manual_seed(0)
    spatial = x_shape[2:]
    net = build_model(model_name, in_channels=x_shape[1], num_classes=num_classes, width=1.0)
    p = attach(net, plugins, example_input=(1, *x_shape[1:]), num_classes=num_classes) if plugins else None
    model: torch.nn.Module = PluggedModel(net, p) if p else net
    layout = torch.channels_last if len(spatial) == 2 else torch.channels_last_3d
    model = model.to(dev).to(memory_format=layout)  # pyright: ignore[reportCallIssue] - torch's stubs omit it
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(DEVICE.type, enabled=dtype == torch.float16)
    x = torch.randn(*x_shape, device=dev).contiguous(memory_format=layout)
    y = torch.zeros(x_shape[0], *spatial, dtype=torch.long, device=dev)
    y[(slice(None), *[slice(s // 4, 3 * s // 4) for s in spatial])] = 1
    model.train()

    def step() -> None:
        with torch.autocast(DEVICE.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), y)
        if p is not None and p.pdcr is not None:
            loss = loss + 0.01 * p.regularization(y)  # PDCR runs in float32 whatever the autocast
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def timed(step: Callable[[], None], steps: int) -> tuple[float, float]:
    """(median step ms, peak memory GiB) after 3 warm-up steps."""
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        step()
    sync()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if DEVICE.type == "cuda" else float("nan")
    return statistics.median(times) * 1e3, peak


def section_2d(args: argparse.Namespace) -> None:
    shape = (args.batch, 3, args.size, args.size)
    for label, dtype in (("float32", None), (f"mixed ({str(mixed_dtype()).split('.')[-1]})", mixed_dtype())):
        print(f"\n[1] DeepLabV3+ full width, {args.size}x{args.size}, batch {args.batch}, {label}")
        bare_ms = None
        for name, plugins in VARIANTS.items():
            ms, peak = timed(make_step("deeplabv3plus", plugins, shape, 2, dtype), args.steps)
            bare_ms = bare_ms or ms
            print(f"    {name:<7} {ms:8.1f} ms/step  {args.batch / ms * 1e3:7.1f} images/s  "
                  f"peak {peak:5.2f} GiB  x{ms / bare_ms:.3f} of bare")
            if DEVICE.type == "cuda":
                torch.cuda.empty_cache()


def section_3d(args: argparse.Namespace) -> None:
    side = 128 if DEVICE.type == "cuda" else 32
    print(f"\n[2] unet3d full width, patches {side}^3, batch 2")
    for label, dtype in (("float32", None), ("mixed", mixed_dtype())):
        ms, peak = timed(make_step("unet3d", None, (2, 1, side, side, side), 3, dtype), max(5, args.steps // 2))
        print(f"    {label:<8} {ms:8.1f} ms/step  {2 / ms * 1e3:7.2f} patches/s  peak {peak:5.2f} GiB")
        if DEVICE.type == "cuda":
            torch.cuda.empty_cache()


def section_loader(args: argparse.Namespace) -> None:
    from dragsaw.workloads.data import load_dataset
    from dragsaw.workloads.data.cache import CaseCache
    from dragsaw.workloads.data.loading import TrainingSamples
    from dragsaw.workloads.data.preprocess import Preprocessing
    from dragsaw.workloads.data.synthetic import write_isic2016
    from dragsaw.workloads.recipe.loaders import LoaderSettings, training_loader

    print(f"\n[3] 2D loader with the paper's augmentation, {args.size}x{args.size}, batch {args.batch}, to CUDA")
    with tempfile.TemporaryDirectory() as tmp:
        write_isic2016(Path(tmp) / "isic", n_train=128, n_test=2, size=(768, 1024), seed=0)
        ds = load_dataset("isic2016", Path(tmp) / "isic")
        ids = ds.splits["train"]
        cache = CaseCache(ds, Preprocessing(image_size=(args.size, args.size)), root=Path(tmp) / "cache")
        cache.warm(ids)
        samples = TrainingSamples(cache, ids, seed=0, length=len(ids) * 2)
        for workers in args.workers:
            settings = LoaderSettings(num_workers=workers, pin_memory=DEVICE.type == "cuda",
                                      persistent_workers=workers > 0)
            loader, sampler = training_loader(samples, args.batch, settings, seed=0)
            sampler.set_epoch(0)
            for x, _ in loader:  # warm-up epoch (workers start)
                x.to(DEVICE, non_blocking=True)
            sampler.set_epoch(1)
            t, n = time.perf_counter(), 0
            for x, _ in loader:
                x.to(DEVICE, non_blocking=True)
                n += x.shape[0]
            sync()
            print(f"    {workers:2d} workers: {n / (time.perf_counter() - t):8.1f} images/s")
            del loader


def main() -> int:
    parser = argparse.ArgumentParser(description="The GPU path, measured (CUDA only).")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant (default 20)")
    parser.add_argument("--batch", type=int, default=16, help="2D batch size (default 16)")
    parser.add_argument("--size", type=int, default=512, help="2D image side (default 512)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4, 8], help="loader workers to try")
    parser.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3], help="which sections to run")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run every section at tiny sizes on the CPU to check the script (no figures)")
    args = parser.parse_args()
    if args.cpu_smoke:
        global DEVICE
        DEVICE = torch.device("cpu")
        args.steps, args.batch, args.size, args.workers = 1, 2, 128, [0, 1]
        for number, section in ((1, section_2d), (2, section_3d), (3, section_loader)):
            if number in args.sections:
                section(args)
        return 0
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device on this machine: nothing to measure (CPU figures: bench_trial.py)")
        return 0
    torch.backends.cudnn.benchmark = True
    print(f"bench_gpu: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    for number, section in ((1, section_2d), (2, section_3d), (3, section_loader)):
        if number in args.sections:
            section(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
