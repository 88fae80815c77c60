"""Deterministic, saved splits: k-fold cross-validation and seeded hold-out lists
(nnU-Net's habit: generate once from the sorted case ids, save, reuse)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from dragsaw.workloads.data.base import cache_dir


def kfold(case_ids: Sequence[str], k: int = 5, seed: int = 12345) -> dict[str, list[str]]:
    """Shuffle the sorted ids with ``seed`` and deal them into ``fold0`` .. ``fold{k-1}``."""
    if k < 2 or k > len(case_ids):
        raise ValueError(f"`k` must be in [2, {len(case_ids)}] (number of cases), but got {k}")
    ids = sorted(case_ids)
    random.Random(seed).shuffle(ids)
    return {f"fold{i}": sorted(ids[i::k]) for i in range(k)}


def holdout(case_ids: Sequence[str], n_test: int, seed: int = 12345) -> dict[str, list[str]]:
    """A seeded train/test split of the sorted ids with ``n_test`` test cases."""
    if not 0 < n_test < len(case_ids):
        raise ValueError(f"`n_test` must be in [1, {len(case_ids) - 1}], but got {n_test}")
    ids = sorted(case_ids)
    random.Random(seed).shuffle(ids)
    return {"train": sorted(ids[n_test:]), "test": sorted(ids[:n_test])}


def saved_splits(name: str, case_ids: Sequence[str], make: Callable[[], dict[str, list[str]]],
                 path: str | Path | None = None) -> dict[str, list[str]]:
    """Splits read from ``path`` (default: the cache, keyed by the dataset and its ids),
    or made with ``make()`` and saved there atomically the first time."""
    digest = hashlib.sha256("\n".join(sorted(case_ids)).encode()).hexdigest()[:16]
    path = Path(path) if path else cache_dir() / "splits" / f"{name}-{digest}.json"
    if path.exists():
        splits = json.loads(path.read_text())
        unknown = sorted({c for ids in splits.values() for c in ids} - set(case_ids))
        if unknown:
            raise ValueError(f"split file {path} names cases that are not in the dataset: {unknown[:5]}")
        return splits
    splits = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(splits, tmp, indent=1)
    os.replace(tmp.name, path)  # whole file or nothing, even with two trials starting at once
    return splits


def nested_subsets(case_ids: Sequence[str], fractions: Sequence[float], seed: int = 0) -> dict[float, list[str]]:
    """Limited-data subsets (Fig. 7): one seeded order of the ids, each fraction a prefix
    of it, so a smaller subset is always inside a larger one. At least one case each."""
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"fractions must be in (0, 1], but got {f}")
    order = sorted(case_ids)
    random.Random(seed).shuffle(order)
    return {f: sorted(order[: max(1, round(f * len(order)))]) for f in fractions}
