"""A local cache of preprocessed cases, keyed by a hash of the source files and the
preprocessing settings. Entries are written whole (temp file, then rename), so two
trials starting at once on one node never read a half-written case."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from dragsaw.workloads.data.base import SegmentationDataset, cache_dir
from dragsaw.workloads.data.preprocess import Preprocessing, preprocess_2d, preprocess_3d


def source_key(dataset: SegmentationDataset, case_id: str) -> str:
    """Hash of where a case comes from: each source file's path, size and mtime (so an
    edited or replaced file gives a new key without rereading gigabytes to hash them)."""
    h = hashlib.sha256()
    h.update(f"{dataset.name}\0{case_id}\0{type(dataset).__qualname__}".encode())
    for path in dataset.source_files(case_id):
        st = Path(path).stat()
        h.update(f"\0{Path(path).resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def settings_key(settings: Preprocessing, dataset: SegmentationDataset) -> str:
    payload = json.dumps({"settings": settings.model_dump(mode="json"), "dims": dataset.spatial_dims,
                          "options": getattr(dataset, "options", {})}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class CaseCache:
    """Preprocessed cases of one dataset under ``root`` (default: $DRAGSAW_CACHE/preprocessed).

    ``get(case_id)`` returns the training arrays (see preprocess_2d / preprocess_3d),
    computing and storing the entry on a miss; ``get_full_label(case_id)`` the 2D label
    at its own size, for scoring. Training arrays are stored uncompressed (fast to
    load every epoch), the full-size label compressed in a second file.
    """

    def __init__(self, dataset: SegmentationDataset, settings: Preprocessing, root: str | Path | None = None):
        self.dataset = dataset
        self.settings = settings
        base = Path(root) if root is not None else cache_dir() / "preprocessed"
        self.folder = base / (dataset.name or "dataset") / settings_key(settings, dataset)
        self._keys: dict[str, str] = {}

    def path(self, case_id: str) -> Path:
        if case_id not in self._keys:
            self._keys[case_id] = source_key(self.dataset, case_id)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_id)
        return self.folder / f"{safe}-{self._keys[case_id]}.npz"

    def get(self, case_id: str) -> dict[str, np.ndarray]:
        path = self.path(case_id)
        if not path.exists():
            entry = self.compute(case_id)
            self._write(path, entry)
            return {k: v for k, v in entry.items() if k != "label_full"}
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    def get_full_label(self, case_id: str) -> np.ndarray:
        """2D: the label at the mask's own size (H, W) uint8; 3D: the preprocessed label."""
        path = self.path(case_id)
        if not path.exists():
            self.get(case_id)
        full = path.with_suffix(".full.npz")
        if full.exists():
            with np.load(full) as data:
                return data["label_full"]
        return self.get(case_id)["label"]

    def compute(self, case_id: str) -> dict[str, np.ndarray]:
        case = self.dataset.read(case_id)
        if self.dataset.spatial_dims == 2:
            return preprocess_2d(case.image, case.label, self.settings.image_size)
        return preprocess_3d(case.image, case.label, case.spacing, self.settings)

    def warm(self, case_ids) -> None:
        """Preprocess every case not cached yet (before training starts)."""
        for case_id in case_ids:
            if not self.path(case_id).exists():
                self._write(self.path(case_id), self.compute(case_id))

    @staticmethod
    def _write(path: Path, entry: dict[str, np.ndarray]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        train = {k: v for k, v in entry.items() if k != "label_full"}
        if "label_full" in entry:  # written first: the training file's presence means both exist
            _atomic_save(path.with_suffix(".full.npz"), {"label_full": entry["label_full"]}, compressed=True)
        _atomic_save(path, train, compressed=False)


def _atomic_save(path: Path, arrays: dict[str, np.ndarray], compressed: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # allow_pickle named so that pyright does not match it against **arrays
            (np.savez_compressed if compressed else np.savez)(handle, allow_pickle=True, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
