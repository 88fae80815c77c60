"""Pixel contents of patches, for the affinities that look inside a patch
(Dice, Eq. 16) or at its centre (centre-label w)."""

from __future__ import annotations

import itertools

import torch


def patch_masks(labels: torch.Tensor, boxes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot masks of same-size boxes, pixel-aligned in patch coordinates.

    labels: (B, *S) int64; boxes: (B, N, d, 2) inclusive, all of one size per axis.
    Returns (B, N, M, P) bool with P the number of pixels of a box; pixels outside
    the image belong to no class. Memory O(B N M P): meant for small patches.
    """
    b, n, d, _ = boxes.shape
    spatial = labels.shape[1:]
    extent = (boxes[0, 0, :, 1] - boxes[0, 0, :, 0] + 1).tolist()
    offsets = torch.tensor(list(itertools.product(*[range(e) for e in extent])), device=labels.device)
    coords = boxes[..., 0].unsqueeze(2) + offsets.view(1, 1, -1, d)  # (B, N, P, d)
    size = torch.tensor(list(spatial), device=labels.device)
    inside = ((coords >= 0) & (coords < size)).all(-1)
    coords = torch.minimum(coords.clamp_min(0), size - 1)
    flat = torch.zeros_like(coords[..., 0])
    for k, s in enumerate(spatial):
        flat = flat * s + coords[..., k]
    values = labels.reshape(b, -1).gather(1, flat.reshape(b, -1)).view(b, n, -1)
    values = torch.where(inside, values, torch.full_like(values, -1))
    classes = torch.arange(num_classes, device=labels.device).view(1, 1, -1, 1)
    return values.unsqueeze(2) == classes


def labels_at(labels: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Labels at integer pixels (B, N, d) (clamped into the image) -> (B, N)."""
    b = labels.shape[0]
    spatial = labels.shape[1:]
    flat = torch.zeros_like(pixels[..., 0])
    for k, s in enumerate(spatial):
        flat = flat * s + pixels[..., k].clamp(0, s - 1)
    return labels.reshape(b, -1).gather(1, flat)
