"""Users' own data: a folder of 2D images with masks matched by file name, or an
MSD-style 3D folder (one with a ``dataset.json``), handed to the MSD loader."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dragsaw.workloads.data._image2d import (
    Dataset2D,
    binary_values,
    decode,
    list_folder,
    pairing_problems,
    to_array,
)
from dragsaw.workloads.data.base import Case, DatasetError
from dragsaw.workloads.data.splits import holdout, kfold, saved_splits

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
SPLIT_SEED = 12345
#: The 2D-only options and their defaults (given with a dataset.json folder, they would be ignored).
_2D_DEFAULTS = {"images": "images", "masks": "masks", "mask_suffix": "", "test_fraction": None, "folds": 5,
                "channels": 3}


def _msd(root, classes, options: dict):
    """The 3D MSD-style loader for a folder with ``dataset.json``."""
    given = sorted(k for k, v in options.items() if k not in _2D_DEFAULTS or v != _2D_DEFAULTS[k])
    if given:
        raise ValueError(f"{Path(root) / 'dataset.json'} makes this an MSD-style 3D folder, which takes only "
                         f"`classes`; got 2D-only options {given}")
    try:
        from dragsaw.workloads.data.msd import (
            MSDDataset,  # 3D/NIfTI code, imported only for 3D folders
        )
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.msd":
            raise
        raise DatasetError(f"{Path(root) / 'dataset.json'} makes this an MSD-style 3D folder, but the MSD "
                           f"loader ({__package__}.msd) is not available in this installation") from exc
    return MSDDataset(root, classes=classes)


class FolderDataset(Dataset2D):
    """Your own data, 2D: ``root/<images>/<stem>.<ext>`` with ``root/<masks>/<stem><mask_suffix>.<ext>``
    (ext: png, jpg, jpeg, bmp, tif, tiff; images and masks are matched by stem). An image
    without its mask, or a mask without its image, is an error naming the file.

    If ``root/dataset.json`` exists the folder is read as an MSD-style 3D dataset instead
    (``MSDDataset(root, classes=classes)``, see ``msd.py``); the 2D options must then be
    left at their defaults.

    Mask values, per mask file: class indices ``0 .. len(classes) - 1`` (8- or 16-bit
    grayscale, palette indices for palette PNGs, or RGB with equal channels). With two
    classes a mask may instead be 0/255 (values exactly {0, 255}: 255 -> class 1); a mask
    holding both 1 and 255 is an error. JPEG masks are accepted only with two classes and
    are thresholded at 127 (JPEG changes values, which would corrupt class indices).
    Anything else is an error naming the file and its values.

    Options:
        classes: class names, background first (required for 2D).
        images, masks: the two folders under ``root``.
        mask_suffix: what a mask's stem adds to its image's stem (``"_mask"`` for
            ``a.png`` -> ``a_mask.png``).
        test_fraction: hold out this fraction of the cases as ``test`` (seeded ``holdout``);
            the rest is ``train`` and is also dealt into the folds.
        folds: number of cross-validation folds ``fold0``.. (seeded ``kfold``); ``None``
            for none (then ``test_fraction`` is required).
        channels: 3 (RGB) or 1 (grayscale): every image is converted to it.
    Splits are made once from the sorted ids and saved under ``$DRAGSAW_CACHE/splits/``.
    """

    name = "folder"

    def __new__(cls, root: str | os.PathLike[str], classes: Sequence[str] | None = None, **options: Any):
        if (Path(root).expanduser() / "dataset.json").is_file():
            return _msd(root, classes, options)
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike[str], classes: Sequence[str] | None = None, images: str = "images",
                 masks: str = "masks", mask_suffix: str = "", test_fraction: float | None = None,
                 folds: int | None = 5, channels: int = 3):
        if classes is None or isinstance(classes, str) or len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError("`classes` must list two or more distinct class names, background first "
                             f"(e.g. ['background', 'lesion']), but got {classes!r}")
        if test_fraction is not None and not 0 < test_fraction < 1:
            raise ValueError(f"`test_fraction` must be in (0, 1) or None, but got {test_fraction!r}")
        if folds is not None and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
            raise ValueError(f"`folds` must be an integer >= 2 or None, but got {folds!r}")
        if folds is None and test_fraction is None:
            raise ValueError("`folds` and `test_fraction` cannot both be None: the dataset would have no split")
        if images == masks and not mask_suffix:
            raise ValueError(f"`images` and `masks` are the same folder {images!r}: set `mask_suffix` "
                             "(e.g. '_mask') to tell masks from images")
        if channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3, but got {channels!r}")
        self.expected = f"{images}/ and {masks}/ holding images and masks of matching file names"
        super().__init__(root, list(classes))
        self.channels = channels
        folders = self._folders({images: "the images", masks: f"the masks, named <image stem>{mask_suffix}.<ext>"})
        image_dir, mask_dir = folders[images], folders[masks]
        shared = image_dir == mask_dir  # one folder holding both: masks are the stems with the suffix
        found: dict[str, dict[str, Path]] = {"image": {}, "mask": {}}
        problems = []
        for role, folder, suffix in (("image", image_dir, ""), ("mask", mask_dir, mask_suffix)):
            files, subfolders, junk = list_folder(folder)
            ok = [f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
            if not (shared and role == "mask"):  # report a shared folder once
                self._ignored(folder, [f for f in files if f not in ok] + [f"{d}/" for d in subfolders], junk)
            for f in ok:
                stem = Path(f).stem
                if shared and stem.endswith(mask_suffix) != (role == "mask"):
                    continue
                if not stem.endswith(suffix):
                    problems.append(f"mask {folder / f} does not end with mask_suffix {suffix!r}")
                    continue
                cid = stem[: len(stem) - len(suffix)]
                if cid in found[role]:
                    raise DatasetError(f"{self.name}: two {role}s for case {cid!r}: "
                                       f"{found[role][cid]} and {folder / f}")
                found[role][cid] = folder / f
        self._unpaired(problems + pairing_problems(
            found["image"], found["mask"], lambda c: mask_dir / f"{c}{mask_suffix}.<png|bmp|tif>"))
        if self.num_classes > 2:
            jpeg = [str(p) for p in found["mask"].values() if p.suffix.lower() in JPEG_SUFFIXES]
            if jpeg:
                raise DatasetError(f"{self.name}: masks of {self.num_classes} classes must be lossless (png, bmp, "
                                   f"tif), JPEG changes class indices: {jpeg[:5]}")
        self.files = {cid: [found["image"][cid], found["mask"][cid]] for cid in sorted(found["image"])}
        self._report.append(f"found {len(self.files)} images, each with its mask, in {images}/ and {masks}/ "
                            "(your own data: no official size)")
        self.splits = self._make_splits(test_fraction, folds)

    def _make_splits(self, test_fraction: float | None, folds: int | None) -> dict[str, list[str]]:
        ids = list(self.files)
        n_test = None if test_fraction is None else min(max(round(test_fraction * len(ids)), 1), len(ids) - 1)
        if len(ids) - (n_test or 0) < max(folds or 0, 1) or len(ids) < 2:
            raise DatasetError(f"{self.name}: the splits (folds={folds}, test_fraction={test_fraction}) need "
                               f"{folds or 0} cases outside the test set and at least 2 in all, but found "
                               f"{len(ids)} under {self.root}")

        def make() -> dict[str, list[str]]:
            splits = holdout(ids, n_test, SPLIT_SEED) if n_test else {}
            rest = splits.get("train", ids)
            return {**splits, **(kfold(rest, folds, SPLIT_SEED) if folds else {})}

        tag = re.sub(r"[^\w.-]+", "_", self.root.resolve().name) or "root"
        return saved_splits(f"folder-{tag}-test{test_fraction}-folds{folds}-seed{SPLIT_SEED}", ids, make)

    def _read(self, case_id: str) -> Case:
        """image (H, W, channels) uint8, label (H, W) int64 class indices."""
        image_path, mask_path = self.files[case_id]
        img, size = decode(image_path)
        return Case(to_array(img, self.channels), self._label(mask_path, size, image_path), None, case_id)

    def _label(self, path: Path, size: tuple[int, int], image_path: Path) -> np.ndarray:
        img, stored = decode(path, eight_bit=False)
        if stored != size:
            raise DatasetError(f"mask {path} is {stored[0]}x{stored[1]} (WxH) but its image {image_path} "
                               f"is {size[0]}x{size[1]}")
        if path.suffix.lower() in JPEG_SUFFIXES:
            return binary_values(np.asarray(img.convert("L")), path, lossy=True).astype(np.int64)
        if img.mode in ("RGB", "RGBA"):
            rgb = np.asarray(img.convert("RGB"))
            if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
                raise DatasetError(f"mask {path} is a colour image: masks must hold class indices (one value per "
                                   "pixel), not colours")
            arr = rgb[..., 0]
        elif img.mode in ("LA", "PA"):
            arr = np.asarray(img)[..., 0]
        elif img.mode in ("1", "L", "P"):
            arr = np.asarray(img).astype(np.uint8)
        elif img.mode.startswith("I;16") or img.mode == "I":
            arr = np.asarray(img).astype(np.int64)
        else:
            raise DatasetError(f"mask {path} has PIL mode {img.mode!r}: expected integer class indices")
        # a histogram is much faster than np.unique on 8-bit masks of a few megapixels
        present = np.flatnonzero(np.bincount(arr.ravel(), minlength=1)) if arr.dtype == np.uint8 else np.unique(arr)
        values = [int(v) for v in present]
        if self.num_classes == 2 and 255 in values and set(values) <= {0, 255}:
            return (arr > 127).astype(np.int64)
        if values and (values[0] < 0 or values[-1] >= self.num_classes):
            rule = " (or exactly 0/255 for two classes)" if self.num_classes == 2 else ""
            raise DatasetError(f"mask {path} must hold class indices 0..{self.num_classes - 1} for classes "
                               f"{self.classes}{rule}, but has values {values[:10]}")
        return np.asarray(arr, dtype=np.int64)
