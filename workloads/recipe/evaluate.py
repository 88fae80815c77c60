"""Held-out evaluation: 2D predictions resized back to each mask's own size, 3D by
sliding windows with 50% overlap; per-case confusion counts per class."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dragsaw.workloads.data.cache import CaseCache
from dragsaw.workloads.data.loading import image_tensor_2d
from dragsaw.workloads.metrics import confusion


@torch.no_grad()
def predict_2d(model: torch.nn.Module, cache: CaseCache, case_ids: Sequence[str], device: torch.device,
               batch_size: int, autocast: Callable) -> dict[str, np.ndarray]:
    """Class maps at each case's own mask size: {case_id: (H, W) int64}."""
    out = {}
    for start in range(0, len(case_ids), batch_size):
        ids = case_ids[start:start + batch_size]
        x = torch.stack([image_tensor_2d(cache.get(c)["image"]) for c in ids]).to(device)
        with autocast():
            logits = model(x).float()
        for i, case_id in enumerate(ids):
            full = cache.get_full_label(case_id)
            up = F.interpolate(logits[i:i + 1], size=full.shape, mode="bilinear", align_corners=False)
            out[case_id] = up.argmax(1)[0].cpu().numpy()
    return out


@torch.no_grad()
def predict_3d(model: torch.nn.Module, cache: CaseCache, case_ids: Sequence[str], device: torch.device,
               patch_size: Sequence[int], overlap: float, sw_batch_size: int, autocast: Callable
               ) -> dict[str, np.ndarray]:
    """Class maps of the preprocessed volumes by Gaussian-weighted sliding windows."""
    from monai.inferers.utils import sliding_window_inference

    out = {}
    for case_id in case_ids:
        image = torch.from_numpy(cache.get(case_id)["image"]).unsqueeze(0).to(device)
        with autocast():
            logits = sliding_window_inference(image, roi_size=tuple(patch_size), sw_batch_size=sw_batch_size,
                                              predictor=model, overlap=overlap, mode="gaussian",
                                              padding_mode="constant")
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"the model returned {type(logits).__name__}; sliding windows need one logits tensor")
        out[case_id] = logits.float().argmax(1)[0].cpu().numpy()
    return out


def case_counts(predictions: dict[str, np.ndarray], cache: CaseCache, num_classes: int) -> dict[str, np.ndarray]:
    """{case_id: (M, 4) TP, FP, FN, TN} against the reference at the prediction's size."""
    return {c: confusion(p, cache.get_full_label(c).astype(np.int64), num_classes) for c, p in predictions.items()}
