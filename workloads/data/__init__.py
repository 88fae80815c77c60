"""The eight datasets of the paper in their official layouts, users' own folders,
and synthetic look-alikes that write those layouts.

``load_dataset(name, root, **options)`` is the public entry point (the platform
and notebooks use it); loaders are imported on first use, so a 2D user never
imports NIfTI code.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from dragsaw.workloads._checks import closest
from dragsaw.workloads.data.base import (
    Case,
    DatasetError,
    SegmentationDataset,
    cache_dir,
    fold_split,
)
from dragsaw.workloads.data.splits import holdout, kfold, nested_subsets, saved_splits

#: Dataset name (as in configs) -> (module, class).
DATASETS: dict[str, tuple[str, str]] = {
    "isic2016": ("isic", "ISIC2016"),
    "isic2016_ph2": ("isic", "ISIC2016PH2"),
    "isic2017": ("isic", "ISIC2017"),
    "mc": ("mc", "Montgomery"),
    "digestpath": ("digestpath", "DigestPath"),
    "msd_brain": ("msd", "MSDBrain"),
    "msd_heart": ("msd", "MSDHeart"),
    "msd_prostate": ("msd", "MSDProstate"),
    "folder": ("folder", "FolderDataset"),
}


def dataset_class(name: str) -> type[SegmentationDataset]:
    """The loader class registered under ``name``; unknown names fail with the valid ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {sorted(DATASETS)} ({closest(name, DATASETS)})")
    module, cls = DATASETS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def load_dataset(name: str, root: str | os.PathLike[str], **options: Any) -> SegmentationDataset:
    """Open dataset ``name`` extracted under ``root`` (the folder the downloads were
    extracted into). Raises :class:`DatasetError` naming the missing or bad file."""
    return dataset_class(name)(root, **options)


__all__ = ["DATASETS", "load_dataset", "dataset_class", "Case", "DatasetError", "SegmentationDataset",
           "cache_dir", "fold_split", "kfold", "holdout", "saved_splits", "nested_subsets"]
