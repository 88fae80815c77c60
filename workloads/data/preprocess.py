"""Preprocessing of one case, done once and cached (nnU-Net's plan -> preprocess step).

2D: the image is resized to the training size (area interpolation when shrinking),
the label with nearest neighbour; the label at its own size is kept too, since
predictions are scored at each mask's own size.
3D: resampled to the target spacing (trilinear image, nearest label), cropped to
the bounding box of non-zero voxels, each channel z-normalised over its non-zero
voxels (MRI, as nnU-Net does).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field


class Preprocessing(BaseModel):
    """Settings that define a cached case (part of its cache key).

    image_size: (H, W) of 2D training images. spacing: target voxel spacing (D, H, W)
    in mm for 3D, or None to keep each volume's own. crop_nonzero / normalize: 3D steps.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: tuple[int, int] = (256, 256)
    spacing: tuple[float, float, float] | None = None
    crop_nonzero: bool = True
    normalize: bool = True
    version: int = Field(default=1, description="bumped when the preprocessing code changes its output")


def preprocess_2d(image: np.ndarray, label: np.ndarray, size: Sequence[int]) -> dict[str, np.ndarray]:
    """image (H, W, C) uint8, label (H, W) int -> {image (h, w, C) uint8, label (h, w) uint8,
    label_full (H, W) uint8} with (h, w) = ``size``."""
    h, w = int(size[0]), int(size[1])
    shrink = h * w < image.shape[0] * image.shape[1]
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if resized.ndim == 2:
        resized = resized[..., None]
    small = cv2.resize(label.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return {"image": resized, "label": small, "label_full": label.astype(np.uint8)}


def preprocess_3d(image: np.ndarray, label: np.ndarray, spacing: Sequence[float] | None,
                  settings: Preprocessing) -> dict[str, np.ndarray]:
    """image (C, D, H, W) float32, label (D, H, W) int -> {image, label uint8, spacing, bbox}."""
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    lab = torch.from_numpy(np.ascontiguousarray(label.astype(np.uint8)))
    out_spacing = np.asarray(spacing if spacing is not None else (1.0, 1.0, 1.0), dtype=np.float64)
    if settings.spacing is not None and spacing is not None:
        target = np.asarray(settings.spacing, dtype=np.float64)
        shape = [max(1, int(round(s * sp / t))) for s, sp, t in zip(img.shape[1:], spacing, target)]
        if list(shape) != list(img.shape[1:]):
            img = F.interpolate(img[None], size=shape, mode="trilinear", align_corners=False)[0]
            lab = F.interpolate(lab[None, None].float(), size=shape, mode="nearest")[0, 0].to(torch.uint8)
        out_spacing = target
    bbox = np.array([[0, s] for s in img.shape[1:]])
    if settings.crop_nonzero:
        nonzero = (img != 0).any(0)
        if bool(nonzero.any()):
            idx = nonzero.nonzero()
            lo, hi = idx.min(0).values.tolist(), (idx.max(0).values + 1).tolist()
            bbox = np.array(list(zip(lo, hi)))
            sl = tuple(slice(a, b) for a, b in zip(lo, hi))
            img, lab = img[(slice(None), *sl)], lab[sl]
    if settings.normalize:
        mask = (img != 0).any(0) if settings.crop_nonzero else torch.ones(img.shape[1:], dtype=torch.bool)
        for c in range(img.shape[0]):
            values = img[c][mask] if bool(mask.any()) else img[c].flatten()
            mean, std = values.mean(), values.std()
            img[c] = (img[c] - mean) / std.clamp_min(1e-8)
    return {"image": img.numpy().astype(np.float32), "label": lab.numpy(), "spacing": out_spacing, "bbox": bbox}
