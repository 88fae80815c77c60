"""What a trial's checkpoints cost: bytes kept, bytes uploaded and the share of its time spent
uploading, with the spec's default rule (``checkpoints`` in the spec), against the old way
(the full checkpoint uploaded after every epoch and kept after the trial).

Run: python benchmarks/bench_checkpoints.py [--width 0.25] [--epochs 6] [--no-s3]

1. One real trial (U-Net, synthetic ISIC 2016, 96 x 96, CPU) through the platform's trial
   runner (``run_one``) into a local store and into S3 (moto_server on 127.0.0.1): training
   seconds, uploads, upload seconds and their share (target: at most the default upload_share,
   1%, of the training time plus one upload: the first is always made),
   bytes uploaded, bytes kept after it completed (target: its weights only).
2. At the paper's scale, sized on the meta device (no memory): a full-width U-Net's weights
   and resume checkpoint, and what a 300-epoch trial uploads and keeps, old way and new.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
from dragsaw.platform.launch.checkpoints import (  # noqa: E402
    DEFAULTS,
    RESUME_FACTOR,
    UPLOAD_BYTES_PER_S,
    model_bytes,
    uploads_per_trial,
)
from dragsaw.platform.launch.trainable import run_one  # noqa: E402
from dragsaw.platform.store.checkpoints import CheckpointStore  # noqa: E402
from dragsaw.workloads.data.synthetic import write_isic2016  # noqa: E402


def mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def one_trial(store_url: str, data: Path, cache: Path, width: float, epochs: int, label: str) -> None:
    trial = {"experiment": "bench", "trial_id": f"t-{label}", "variant": "baseline", "dataset": "isic2016",
             "fold": "test", "seed": 0, "params": {}, "resources": {"cpu": 1},
             "config": {"data": {"name": "isic2016", "root": str(data)}, "model": {"name": "unet", "width": width},
                        "train": {"epochs": epochs, "batch_size": 4, "image_size": [96, 96]}, "device": "cpu",
                        "cache_dir": str(cache)}}
    context = {"store_url": store_url, "spec_hash": "bench", "git_commit": "bench", "versions": {}, "synthetic": {},
               "checkpoints": dict(DEFAULTS)}
    final = run_one(trial, context)
    kept = CheckpointStore(store_url, "bench").sizes()
    weights = model_bytes({"name": "unet", "width": width}, 3, 2) or 0
    share, uploads, seconds = final["upload_share"], max(final["checkpoint_uploads"], 1), final["upload_seconds"]
    resume = final["uploaded_bytes"] / uploads
    # The rule's bound: uploads take at most upload_share of the training time plus one upload
    # (the first is always made: its cost is unknown before it); a long trial tends to the share.
    bound = DEFAULTS["upload_share"] * final["train_seconds"] + seconds / uploads
    print(f"  {label:<6} train {final['train_seconds']:6.1f} s, {final['checkpoint_uploads']:.0f} uploads "
          f"({mb(final['uploaded_bytes'])}) in {seconds:.2f} s = {share:.1%} of training (target: <= "
          f"{DEFAULTS['upload_share']:.0%} of it + one upload = {bound:.2f} s){'  OVER TARGET' if seconds > bound else ''}")
    over = sum(kept.values()) > weights + 64 * 1024
    print(f"         kept after completion: {', '.join(f'{k} {mb(v)}' for k, v in kept.items())} "
          f"(weights {mb(weights)}){'  OVER TARGET' if over else ''}")
    print(f"         old way: {epochs} x {mb(resume)} uploaded, {mb(resume)} kept")


def paper_scale(epochs: int = 300, epoch_seconds: float = 60.0) -> None:
    weights = model_bytes({"name": "unet", "width": 1.0}, 3, 2) or 0
    resume = RESUME_FACTOR * weights
    n = uploads_per_trial(DEFAULTS, epochs, epoch_seconds, resume)
    print(f"2. full-width U-Net: weights {mb(weights)}, resume checkpoint ~{mb(resume)}; a {epochs}-epoch trial "
          f"at an assumed {epoch_seconds:g} s/epoch and {UPLOAD_BYTES_PER_S / 1e6:g} MB/s:")
    print(f"   old way: {mb(epochs * resume)} uploaded, {mb(resume)} kept per trial; 430 trials keep "
          f"{mb(430 * resume)}")
    share = n * resume / UPLOAD_BYTES_PER_S / (epochs * epoch_seconds)
    print(f"   default rule: {n} uploads = {mb(n * resume + weights)} uploaded ({share:.1%} of training time), "
          f"{mb(weights)} kept per trial; 430 trials keep {mb(430 * weights)}")


def main() -> None:
    parser = argparse.ArgumentParser(description="What a trial's checkpoints cost (see the module doc).")
    parser.add_argument("--width", type=float, default=0.25, help="U-Net width of the real trial")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the real trial")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto_server) store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        data, cache = Path(tmp) / "isic", Path(tmp) / "cache"
        write_isic2016(data, n_train=24, n_test=4, size=(96, 128), seed=0)
        print(f"1. one trial, U-Net width {args.width:g}, {args.epochs} epochs, default checkpoints {DEFAULTS}")
        one_trial(str(Path(tmp) / "store"), data, cache, args.width, args.epochs, "local")
        if not args.no_s3:
            from tests.platform.s3_server import create_bucket, s3_environment, start_moto, stop

            proc, endpoint = start_moto()
            try:
                bucket = f"bench-{uuid.uuid4().hex[:8]}"
                create_bucket(endpoint, bucket)
                os.environ.update(s3_environment(endpoint))
                one_trial(f"s3://{bucket}/results", data, cache, args.width, args.epochs, "s3")
            finally:
                stop(proc)
    paper_scale()


if __name__ == "__main__":
    main()
