"""Medical Segmentation Decathlon tasks (``Task01_BrainTumour``, ``Task02_Heart``,
``Task05_Prostate``, or any task folder in the same layout), read exactly as the
official tars extract: ``dataset.json``, ``imagesTr/``, ``labelsTr/``, ``imagesTs/``.

Axis order. nibabel indexes a NIfTI array (X, Y, Z[, C]). Cases come out as
image (C, D, H, W) = (C, Z, Y, X), label (D, H, W) = (Z, Y, X) and spacing
(D, H, W) = (dz, dy, dx) mm from ``header.get_zooms()``: the reversed NIfTI order,
the one SimpleITK and nnU-Net use, so D is the slice axis (the thick one in
anisotropic scans: prostate spacing comes out ~(3.6, 0.63, 0.63)). Volumes are not
reoriented: MSD stores each task consistently, and resampling is preprocessing.

Quirks handled: macOS ``._<name>.nii.gz`` resource-fork files (not gzip) are
skipped and counted; the prostate file's ``relase`` key is read as ``release``;
BraTS labels 1/2/3 (edema / non-enhancing / enhancing) are kept as they are.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import SpatialImage

from dragsaw.workloads.data.base import Case, DatasetError, SegmentationDataset
from dragsaw.workloads.data.splits import kfold, saved_splits

_JUNK = "._"  # macOS resource forks beside every file of the official tars
_READ_ERRORS = (OSError, EOFError, zlib.error, ImageFileError, ValueError)


def case_id_of(path: str | Path) -> str:
    """``./imagesTr/BRATS_001.nii.gz`` -> ``BRATS_001``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _indexed_names(meta: dict, key: str, problems: list[str]) -> list[str]:
    """``{"0": "background", "1": "edema"}`` -> names in index order; keys must be 0..n-1."""
    value = meta.get(key)
    if not isinstance(value, dict) or not value:
        problems.append(f"`{key}` must be a non-empty mapping like {{\"0\": ...}}, but got {value!r}")
        return []
    try:
        items = sorted((int(k), str(v)) for k, v in value.items())
    except ValueError:
        problems.append(f"`{key}` keys must be integers, but got {sorted(value)}")
        return []
    if [k for k, _ in items] != list(range(len(items))):
        problems.append(f"`{key}` keys must be 0..{len(items) - 1}, but got {[k for k, _ in items]}")
    return [v for _, v in items]


def _load(path: Path) -> SpatialImage:
    try:
        img = nib.load(str(path))
    except _READ_ERRORS as exc:
        raise DatasetError(f"cannot read NIfTI file {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(img, SpatialImage):
        raise DatasetError(f"{path} is a {type(img).__name__}, not a NIfTI image with a voxel grid")
    return img


def _data(img, path: Path, dtype=None) -> np.ndarray:
    try:
        return img.get_fdata(dtype=dtype, caching="unchanged") if dtype else np.asanyarray(img.dataobj)
    except _READ_ERRORS as exc:  # truncated or corrupt gzip stream
        raise DatasetError(f"cannot read NIfTI file {path}: {type(exc).__name__}: {exc}") from exc


class MSDDataset(SegmentationDataset):
    """One MSD-style task folder: ``root`` holds ``dataset.json``.

    ``classes``: names for the label values 0..n-1 (background first); default the
    ``labels`` of dataset.json, otherwise exactly one name per label.
    Attributes beyond the base: ``modalities`` (channel names), ``unlabeled``
    (imagesTs case ids: not in the splits), ``meta`` (dataset.json as parsed).
    Splits: ``fold0`` .. ``fold4``, 5-fold cross-validation over the training cases,
    saved in the cache on first use. Reading: see the module docstring for axes.
    """

    spatial_dims = 3
    folds = 5

    def __init__(self, root: str | os.PathLike[str], classes: Sequence[str] | None = None):
        task = Path(root).expanduser()
        meta_path = task / "dataset.json"
        if not meta_path.is_file():
            raise DatasetError(f"expected dataset.json in {task}" + ("" if task.is_dir() else " (no such folder)"))
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"cannot parse {meta_path}: {exc}") from exc
        if not isinstance(meta, dict):
            raise DatasetError(f"{meta_path} must hold a JSON object, but got {type(meta).__name__}")
        problems: list[str] = []
        labels = _indexed_names(meta, "labels", problems)
        modalities = _indexed_names(meta, "modality", problems)
        training = self._entries(meta, "training", problems)
        test = self._entries(meta, "test", problems) if "test" in meta else []
        if problems:
            raise DatasetError(f"{meta_path} is malformed:\n  " + "\n  ".join(problems))
        super().__init__(task, labels if classes is None else classes)
        self.name = self.name or f"msd_{task.name.lower()}"
        if len(self.classes) != len(labels):
            raise DatasetError(f"{self.name}: {meta_path} defines {len(labels)} labels {labels}, "
                               f"but {len(self.classes)} classes were given: {self.classes}")
        self.meta, self.meta_path, self.modalities, self.label_names = meta, meta_path, modalities, labels

        self.junk_listed = 0
        missing: list[Path] = []
        self.unlabeled_files: dict[str, Path] = {}
        for pair in training:
            paths = [task / pair["image"], task / pair["label"]]
            if paths[0].name.startswith(_JUNK):
                self.junk_listed += 1
                continue
            missing += [p for p in paths if not p.is_file()]
            cid = case_id_of(paths[0])
            if cid in self.files:
                raise DatasetError(f"{meta_path} lists training case {cid!r} twice")
            self.files[cid] = paths
        for entry in test:
            path = task / entry["image"]
            if path.name.startswith(_JUNK):
                self.junk_listed += 1
                continue
            if not path.is_file():
                missing.append(path)
            self.unlabeled_files[case_id_of(path)] = path
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
            raise DatasetError(f"{meta_path} lists files that do not exist: {shown}")
        self.unlabeled = sorted(self.unlabeled_files)

        self.junk_skipped, self.unlisted = 0, []
        listed = {p.name for paths in self.files.values() for p in paths}
        listed |= {p.name for p in self.unlabeled_files.values()}
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            if (task / sub).is_dir():
                names = [p.name for p in (task / sub).iterdir()]
                self.junk_skipped += sum(n.startswith(_JUNK) for n in names)
                self.unlisted += sorted(f"{sub}/{n}" for n in names
                                        if n.endswith((".nii.gz", ".nii")) and not n.startswith(_JUNK)
                                        and n not in listed)

        ids = sorted(self.files)
        if len(ids) < self.folds:
            raise DatasetError(f"{self.name}: {self.folds}-fold cross-validation needs at least {self.folds} "
                               f"training cases, but {meta_path} lists {len(ids)}")
        self.splits = saved_splits(self.name, ids, lambda: kfold(ids, self.folds))

    @staticmethod
    def _entries(meta: dict, key: str, problems: list[str]) -> list[dict]:
        """``training``: [{"image", "label"}]; ``test``: ["./imagesTs/x.nii.gz"] (or {"image"})."""
        value = meta.get(key)
        if not isinstance(value, list):
            problems.append(f"`{key}` must be a list, but got {value!r:.80}")
            return []
        out, need = [], ("image", "label") if key == "training" else ("image",)
        for i, item in enumerate(value):
            if key == "test" and isinstance(item, str):
                item = {"image": item}
            if not (isinstance(item, dict) and all(isinstance(item.get(k), str) for k in need)):
                problems.append(f"`{key}[{i}]` must have string {' and '.join(need)} paths, but got {item!r:.80}")
                continue
            out.append(item)
        return out

    @property
    def release(self) -> str | None:
        """The release string; the prostate file spells the key ``relase``."""
        return self.meta.get("release", self.meta.get("relase"))

    def read_image(self, case_id: str) -> tuple[np.ndarray, tuple[float, float, float]]:
        """Image (C, D, H, W) float32 and spacing (D, H, W) mm of a training or imagesTs case."""
        if case_id in self.files:
            return self._image(self.files[case_id][0])
        if case_id in self.unlabeled_files:
            return self._image(self.unlabeled_files[case_id])
        raise KeyError(f"{self.name}: no case {case_id!r} under {self.root}")

    def _image(self, path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
        img = _load(path)
        shape = img.shape
        channels = shape[3] if len(shape) == 4 else 1
        if len(shape) not in (3, 4) or channels != len(self.modalities):
            raise DatasetError(f"image {path} has shape {shape} (X, Y, Z[, C]), but {self.meta_path} lists "
                               f"{len(self.modalities)} modalities {self.modalities}")
        sx, sy, sz = (float(z) for z in img.header.get_zooms()[:3])
        zooms = (sx, sy, sz)
        if not all(np.isfinite(z) and z > 0 for z in zooms):
            raise DatasetError(f"image {path} has voxel sizes {zooms} in its header; they must be > 0")
        data = _data(img, path, np.float32)
        if data.ndim == 3:
            data = data[..., None]
        return np.ascontiguousarray(data.transpose(3, 2, 1, 0)), (sz, sy, sx)

    def _read(self, case_id: str) -> Case:
        image_path, label_path = self.files[case_id]
        image, spacing = self._image(image_path)
        label = _data(_load(label_path), label_path)
        if label.ndim == 4 and label.shape[3] == 1:
            label = label[..., 0]
        xyz = image.shape[:0:-1]
        if label.shape != xyz:
            raise DatasetError(f"label {label_path} has shape {label.shape} (X, Y, Z), but its image "
                               f"{image_path} has spatial shape {xyz}")
        if not np.issubdtype(label.dtype, np.integer) and not np.array_equal(label, np.round(label)):
            raise DatasetError(f"label {label_path} holds non-integer values (dtype {label.dtype})")
        n = self.num_classes
        if label.size and (label.min() < 0 or label.max() >= n):
            bad = [v.item() for v in np.unique(label) if not 0 <= v < n]
            raise DatasetError(f"label {label_path} holds values {bad[:10]} outside the classes "
                               f"0..{n - 1} {self.classes}")
        label = np.ascontiguousarray(label.transpose(2, 1, 0), dtype=np.int64)
        return Case(image, label, spacing, case_id)

    def check(self, read: bool = False) -> list[str]:
        """What was found against what dataset.json promises, as human-readable lines.
        ``read=True`` also reads every training case (image and label) and every imagesTs
        image, and lists the files that fail (slow on the full datasets)."""
        promised, promised_test = self.meta.get("numTraining"), self.meta.get("numTest")

        def versus(found: int, n) -> str:
            if n is None:
                return "dataset.json gives no count"
            return f"as promised ({n})" if n == found else f"MISMATCH: dataset.json promises {n}"

        lines = [
            f"{self.name}: {self.meta_path} (name {self.meta.get('name')!r}, release {self.release!r})",
            f"training cases listed and found: {len(self.files)}, {versus(len(self.files), promised)}",
            f"unlabeled imagesTs cases listed and found: {len(self.unlabeled)}, "
            f"{versus(len(self.unlabeled), promised_test)}" + ("" if "test" in self.meta else " (no `test` key)"),
            f"modalities ({len(self.modalities)}): {', '.join(self.modalities)}",
            f"classes ({self.num_classes}): " + ", ".join(
                f"{i} {c}" + (f" (dataset.json: {n})" if n != c else "")
                for i, (c, n) in enumerate(zip(self.classes, self.label_names))),
            f"skipped macOS '._' resource-fork files: {self.junk_skipped} on disk"
            + (f", {self.junk_listed} listed in dataset.json" if self.junk_listed else ""),
            f"{self.folds}-fold cross-validation, held-out cases per fold: "
            + ", ".join(str(len(v)) for v in self.splits.values()),
        ]
        if self.unlisted:
            shown = ", ".join(self.unlisted[:5]) + (", ..." if len(self.unlisted) > 5 else "")
            lines.append(f"NOT USED: {len(self.unlisted)} NIfTI files on disk not listed in dataset.json: {shown}")
        if read:
            bad = []
            for cid in self.files:
                try:
                    self.read(cid)
                except DatasetError as exc:
                    bad.append(f"unreadable: {exc}")
            for cid in self.unlabeled:
                try:
                    self.read_image(cid)
                except DatasetError as exc:
                    bad.append(f"unreadable: {exc}")
            n = len(self.files) + len(self.unlabeled)
            lines.append(f"read {n - len(bad)} of {n} cases without error "
                         f"({len(self.files)} training, {len(self.unlabeled)} imagesTs)")
            lines += bad
        return lines


def task_folder(root: str | os.PathLike[str], task: str) -> Path:
    """``root/<task>``, ``root`` itself when it is the task folder (by name), or
    ``root/<top>/<task>`` for exactly one top folder (one level down)."""
    root = Path(root).expanduser()
    candidates = [root, root / task] if root.name == task else [root / task]
    for folder in candidates:
        if (folder / "dataset.json").is_file():
            return folder
    if root.is_dir():  # one level down: inside a top folder that wraps the task folder
        inner = sorted(p / task for p in root.iterdir()
                       if p.is_dir() and not p.name.startswith(".") and (p / task / "dataset.json").is_file())
        if len(inner) == 1:
            return inner[0]
        if inner:
            raise DatasetError(f"{task} is in several folders under {root}: {', '.join(map(str, inner))}; "
                               "pass the one to use as the root")
    if not root.is_dir():
        hint = " (that folder does not exist)"
    else:
        others = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("Task"))
        hint = f"; found {others}" if others else ""
    where = f"dataset.json in {root}" if root.name == task else f"{task}/dataset.json under {root}"
    raise DatasetError(f"expected {where}{hint}")


class _MSDTask(MSDDataset):
    """An official task: found by its folder name, with fixed class names."""

    task = ""
    task_classes: tuple[str, ...] = ()

    def __init__(self, root: str | os.PathLike[str]):
        super().__init__(task_folder(root, self.task), classes=self.task_classes)


class MSDBrain(_MSDTask):
    """``Task01_BrainTumour``: 4D (FLAIR, T1w, T1gd, T2w); labels 1/2/3 as they are (ED/NE/EN)."""

    name = "msd_brain"
    task = "Task01_BrainTumour"
    task_classes = ("background", "edema", "non-enhancing tumour", "enhancing tumour")


class MSDHeart(_MSDTask):
    """``Task02_Heart``: 3D MRI (one channel), left atrium."""

    name = "msd_heart"
    task = "Task02_Heart"
    task_classes = ("background", "left atrium")


class MSDProstate(_MSDTask):
    """``Task05_Prostate``: 4D (T2, ADC); peripheral (PZ) and transition (TZ) zones."""

    name = "msd_prostate"
    task = "Task05_Prostate"
    task_classes = ("background", "PZ", "TZ")


__all__ = ["MSDBrain", "MSDDataset", "MSDHeart", "MSDProstate", "case_id_of", "task_folder"]
