"""Torch datasets over the preprocessed cache: augmented training samples in a
per-epoch order fixed by (seed, epoch), and held-out cases for evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dragsaw.workloads.data.cache import CaseCache
from dragsaw.workloads.data.transforms import Augment2D, Augment3D, sample_seed


def image_tensor_2d(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 -> (C, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


class TrainingSamples(torch.utils.data.Dataset):
    """``length`` augmented samples per epoch from ``case_ids`` (cycled in a shuffled
    order). Call :meth:`set_epoch` before iterating an epoch.

    2D items: image (C, H, W) float32, label (H, W) int64. 3D items: a patch
    (C, *patch_size) float32 and its label (*patch_size) int64.
    """

    def __init__(self, cache: CaseCache, case_ids: Sequence[str], seed: int, length: int | None = None,
                 augment: bool = True, patch_size: Sequence[int] | None = None, foreground_ratio: float = 0.33):
        if not case_ids:
            raise ValueError("no training cases: the split / subset is empty")
        self.cache, self.case_ids, self.seed = cache, list(case_ids), int(seed)
        self.length = int(length or len(self.case_ids))
        self.dims = cache.dataset.spatial_dims
        if self.dims == 2:
            self.augment = Augment2D() if augment else None
        else:
            if patch_size is None:
                raise ValueError("3D training needs `patch_size`")
            self.augment = Augment3D(patch_size, foreground_ratio)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        gen = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1))
        reps = -(-self.length // len(self.case_ids))
        order = torch.cat([torch.randperm(len(self.case_ids), generator=gen) for _ in range(reps)])
        self.order = order[: self.length].tolist()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        entry = self.cache.get(self.case_ids[self.order[index]])
        image, label = entry["image"], entry["label"]
        seed = sample_seed(self.seed, self.epoch, index)
        if self.dims == 2:
            if self.augment is not None:
                image, label = self.augment(image, label, seed)
            return image_tensor_2d(image), torch.from_numpy(np.ascontiguousarray(label)).long()
        if not isinstance(self.augment, Augment3D):
            raise RuntimeError("3D training samples need an Augment3D (set in __init__)")
        image, label = self.augment(image, label, seed)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(label)).long()
