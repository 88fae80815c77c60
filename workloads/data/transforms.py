"""Training augmentation: the paper's 2D pipeline (albumentations) and nnU-Net-like
3D patches (MONAI). Every sample's randomness comes from a seed derived from
(trial seed, epoch, sample index), so a resumed trial sees the same augmented
images as an uninterrupted one, whatever the number of loader workers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no PyPI check on import


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 31-bit seed for one sample of one epoch (any ints; ``index=-1`` names the epoch's order)."""
    words = [int(v) & 0xFFFFFFFFFFFFFFFF for v in (seed, epoch, index)]
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)


class Augment2D:
    """The paper's 2D augmentation: random scale 0.8-1.2, rotation +-90 deg, shear +-20 deg,
    shift 0.1, flips on both axes. image (H, W, C) uint8, label (H, W) uint8 -> same shapes."""

    def __init__(self, scale=(0.8, 1.2), rotate=(-90, 90), shear=(-20, 20), shift=0.1, flip=True):
        import albumentations as A
        from albumentations.core.composition import TransformsSeqType

        steps: TransformsSeqType = [A.Affine(scale=tuple(scale), rotate=tuple(rotate), shear=tuple(shear),
                          translate_percent=(-shift, shift), p=1.0)]
        if flip:
            steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
        self.pipeline = A.Compose(steps, seed=0)

    def __call__(self, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self.pipeline.set_random_seed(seed)
        out = self.pipeline(image=image, mask=label)
        return out["image"], out["mask"]


class Augment3D:
    """nnU-Net-like 3D training patches with MONAI: a crop of ``patch_size`` centred on
    foreground with probability ``foreground_ratio`` (else anywhere; padded if the volume
    is smaller), random flips on every axis, intensity scale and shift, Gaussian noise.
    image (C, D, H, W) float32, label (D, H, W) uint8 -> patch (C, *patch), (*patch)."""

    def __init__(self, patch_size: Sequence[int], foreground_ratio: float = 0.33):
        from monai.transforms.compose import Compose
        from monai.transforms.croppad.dictionary import RandCropByPosNegLabeld, SpatialPadd
        from monai.transforms.intensity.dictionary import (
            RandGaussianNoised,
            RandScaleIntensityd,
            RandShiftIntensityd,
        )
        from monai.transforms.spatial.dictionary import RandFlipd

        self.patch_size = tuple(int(p) for p in patch_size)
        keys = ["image", "label"]
        self.pipeline = Compose([
            SpatialPadd(keys, spatial_size=self.patch_size, mode="constant"),
            RandCropByPosNegLabeld(keys, label_key="label", spatial_size=self.patch_size,
                                   pos=foreground_ratio, neg=1 - foreground_ratio, num_samples=1,
                                   allow_smaller=False),
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandFlipd(keys, prob=0.5, spatial_axis=2),
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
            RandShiftIntensityd("image", offsets=0.1, prob=0.5),
            RandGaussianNoised("image", std=0.05, prob=0.2),
        ])

    def __call__(self, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self.pipeline.set_random_state(seed=seed)
        out = self.pipeline({"image": image, "label": label[None]})
        out = out[0] if isinstance(out, list) else out
        if not isinstance(out, Mapping):
            raise TypeError(f"the 3D pipeline returned {type(out).__name__}, expected a dict of image/label")
        return np.asarray(out["image"], dtype=np.float32), np.asarray(out["label"])[0]
