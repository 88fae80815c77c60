"""What every dataset loader returns: splits, classes and cases read from the
files exactly as the user extracted them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A dataset on disk is missing, incomplete or malformed; the message names the file."""


class Case(tuple):
    """``(image, label)`` of one case, unpackable as a pair, with ``spacing`` and ``case_id``.

    2D: image (H, W, C) uint8, label (H, W) int64, spacing None.
    3D: image (C, D, H, W) float32, label (D, H, W) int64, spacing (D, H, W) in mm.
    """

    spacing: tuple[float, ...] | None
    case_id: str

    def __new__(cls, image: np.ndarray, label: np.ndarray, spacing: tuple[float, ...] | None = None,
                case_id: str = ""):
        obj = super().__new__(cls, (image, label))
        obj.spacing = spacing
        obj.case_id = case_id
        return obj

    @property
    def image(self) -> np.ndarray:
        return self[0]

    @property
    def label(self) -> np.ndarray:
        return self[1]


def cache_dir() -> Path:
    """Where dragsaw keeps derived files (splits, preprocessed cases): $DRAGSAW_CACHE or ~/.cache/dragsaw."""
    return Path(os.environ.get("DRAGSAW_CACHE", Path.home() / ".cache" / "dragsaw")).expanduser()


class SegmentationDataset:
    """Base of every loader. Subclasses fill ``files`` (case id -> source files, first the
    image, then the mask(s)) in ``__init__`` and implement :meth:`_read`.

    Attributes: ``name``, ``root`` (Path), ``classes`` (background first),
    ``spatial_dims`` (2 or 3), ``splits`` (split name -> case ids), ``files``.
    Official splits are named ``train``/``val``/``test``; cross-validation splits are
    ``fold0`` .. ``fold4`` (the held-out cases of each fold, see :func:`fold_split`).
    """

    name: str = ""
    spatial_dims: int = 2

    def __init__(self, root: str | os.PathLike[str], classes: Sequence[str]):
        self.root = Path(root).expanduser()
        self.classes = list(classes)
        self.files: dict[str, list[Path]] = {}
        self.splits: dict[str, list[str]] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def case_ids(self) -> list[str]:
        return list(self.files)

    def read(self, case_id: str) -> Case:
        """Read one case from its source files (no caching, no resizing)."""
        if case_id not in self.files:
            raise KeyError(f"{self.name}: no case {case_id!r} under {self.root}")
        return self._read(case_id)

    def _read(self, case_id: str) -> Case:  # pragma: no cover - every loader implements it
        raise NotImplementedError

    def check(self, read: bool = False) -> list[str]:  # pragma: no cover - every loader implements it
        """Human-readable lines for ``dragsaw datasets check``: what was found against the
        official counts. ``read=True`` also reads every case and adds one ``unreadable: ...``
        line per failing file."""
        raise NotImplementedError

    def source_files(self, case_id: str) -> list[Path]:
        """The files a case is read from (for cache keys)."""
        return list(self.files[case_id])

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"<{type(self).__name__} {self.name!r} at {self.root}: {len(self)} cases, classes={self.classes}, {sizes}>"


def fold_split(dataset: SegmentationDataset, fold: int | str) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids) for one evaluation fold.

    ``fold`` is an official split name (``test``, ``val``: train is ``train``) or a
    cross-validation fold (``0``..``4`` / ``fold0``..: train is every other fold).
    """
    splits = dataset.splits
    name = f"fold{fold}" if isinstance(fold, int) or str(fold).isdigit() else str(fold)
    if name not in splits:
        raise ValueError(f"{dataset.name}: no split {fold!r}; valid: {sorted(splits)}")
    if name.startswith("fold"):
        train = [c for k, ids in splits.items() if k.startswith("fold") and k != name for c in ids]
        return train, list(splits[name])
    if "train" not in splits:
        raise ValueError(f"{dataset.name}: split {name!r} has no 'train' split beside it")
    return list(splits["train"]), list(splits[name])
