"""ISIC 2016, ISIC 2016 -> PH2 and ISIC 2017 skin-lesion segmentation, read from the
official folders exactly as extracted (layouts in the project's DATASETS.md).

Masks are 8-bit 0/255 PNGs (PH2: BMPs): a lesion pixel is ``value > 127``, and any value
other than 0 or 255 is an error naming the file. Images are returned at their stored
size (576 px to ~6700 px wide); resizing belongs to the transforms.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from dragsaw.workloads.data._image2d import (
    Dataset2D,
    decode,
    list_folder,
    pairing_problems,
    read_binary_mask,
    to_array,
)
from dragsaw.workloads.data.base import Case

_IMAGE = re.compile(r"^(ISIC_\d{7})\.jpg$")
_PH2_CASE = re.compile(r"^IMD\d{3}$")
_WHAT = {"train": "training", "val": "validation", "test": "test"}

_ISIC2016 = {
    "train": ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth", 900),
    "test": ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth", 379),
}
_ISIC2017 = {
    "train": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth", 2000),
    "val": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth", 150),
    "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth", 600),
}
_PH2_IMAGES = "PH2Dataset/PH2 Dataset images"
_PH2_OFFICIAL = 200


class _ISIC(Dataset2D):
    """Shared reading of ISIC folder pairs: ``<data>/ISIC_xxxxxxx.jpg`` with
    ``<ground truth>/ISIC_xxxxxxx<mask_suffix>.png``; case id = the ISIC id."""

    #: split -> (data folder, ground-truth folder, official number of cases)
    layout: ClassVar[dict[str, tuple[str, str, int]]] = {}
    mask_suffix = "_Segmentation"

    def __init__(self, root: str | os.PathLike[str]):
        self.expected = ", ".join(f"{d}/ and {g}/" for d, g, _ in self.layout.values()) + self._more_expected()
        super().__init__(root, ["background", "lesion"])
        wanted = {}
        for split, (data, truth, n) in self.layout.items():
            wanted[data] = f"the {n} official {_WHAT[split]} images ISIC_xxxxxxx.jpg"
            wanted[truth] = f"the {n} official {_WHAT[split]} masks ISIC_xxxxxxx{self.mask_suffix}.png"
        folders = self._folders({**wanted, **self._more_folders()})
        for split, (data, truth, n) in self.layout.items():
            self._add(split, self._isic_cases(split, folders[data], folders[truth], n))
        self._more_cases(folders)

    # Hooks for ISIC 2016 -> PH2 (extra folders and cases beside the ISIC ones).
    def _more_expected(self) -> str:
        return ""

    def _more_folders(self) -> dict[str, str]:
        return {}

    def _more_cases(self, folders: dict[str, Path]) -> None:
        pass

    def _isic_cases(self, split: str, data: Path, truth: Path, official: int) -> dict[str, list[Path]]:
        mask_re = re.compile(rf"^(ISIC_\d{{7}}){re.escape(self.mask_suffix)}\.png$")
        images, masks = {}, {}
        for folder, pattern, found in ((data, _IMAGE, images), (truth, mask_re, masks)):
            files, subfolders, junk = list_folder(folder)
            others = [f for f in files if not pattern.match(f)] + [f"{d}/" for d in subfolders]
            found.update({m[1]: folder / f for f in files if (m := pattern.match(f))})
            self._ignored(folder, others, junk)  # superpixels, metadata CSVs, licence files
        self._unpaired(pairing_problems(images, masks, lambda c: truth / f"{c}{self.mask_suffix}.png"))
        self._found(split, len(images), official, f"{_WHAT[split]} images", str(data.relative_to(self.root)))
        return {cid: [images[cid], masks[cid]] for cid in sorted(images)}

    def _read(self, case_id: str) -> Case:
        """image (H, W, 3) uint8 RGB, label (H, W) int64 in {0, 1} at the image's size."""
        image_path, mask_path = self.files[case_id]
        img, size = decode(image_path)
        label = read_binary_mask(mask_path, size, image_path=image_path)
        return Case(to_array(img, 3), label.astype(np.int64), None, case_id)


class ISIC2016(_ISIC):
    """ISIC 2016 Part 1 (lesion segmentation): official 900 train / 379 test.

    Expected under ``root``: ``ISBI2016_ISIC_Part1_Training_Data/ISIC_0000000.jpg``,
    ``ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_0000000_Segmentation.png`` and the
    same for ``..._Test_Data`` / ``..._Test_GroundTruth``. Splits: ``train``, ``test``.
    """

    name = "isic2016"
    layout = _ISIC2016


class ISIC2016PH2(_ISIC):
    """Train on the 900 ISIC 2016 training images, test on all 200 PH2 images.

    Expected under ``root``: the two ISIC 2016 training folders (see :class:`ISIC2016`;
    the ISIC test folders are not used) and
    ``PH2Dataset/PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp`` with
    ``.../IMD002_lesion/IMD002_lesion.bmp``. ``IMDxxx_roi/`` folders (extra ROI masks)
    and the metadata files are ignored. Case ids: ISIC ids and PH2 ids (``IMD002``),
    which cannot clash. PH2 images vary slightly in size; each case is returned at its
    own size, so predictions are evaluated at each PH2 mask's size.
    """

    name = "isic2016_ph2"
    layout: ClassVar[dict[str, tuple[str, str, int]]] = {"train": _ISIC2016["train"]}

    def _more_expected(self) -> str:
        return f", {_PH2_IMAGES}/IMDxxx/..."

    def _more_folders(self) -> dict[str, str]:
        return {_PH2_IMAGES: "the 200 PH2 case folders IMDxxx/ (IMDxxx_Dermoscopic_Image/, IMDxxx_lesion/)"}

    def _more_cases(self, folders: dict[str, Path]) -> None:
        top = folders[_PH2_IMAGES]
        files, subfolders, junk = list_folder(top)
        cases = [d for d in subfolders if _PH2_CASE.match(d)]
        self._ignored(top, files + [f"{d}/" for d in subfolders if not _PH2_CASE.match(d)], junk)
        images, masks, skipped = {}, {}, []
        for cid in cases:
            image = top / cid / f"{cid}_Dermoscopic_Image" / f"{cid}.bmp"
            mask = top / cid / f"{cid}_lesion" / f"{cid}_lesion.bmp"
            images[cid] = image
            if mask.is_file():
                masks[cid] = mask
            inner, inner_dirs, _ = list_folder(top / cid)
            skipped += [f"{cid}/{d}/" for d in inner_dirs if d not in (image.parent.name, mask.parent.name)]
            skipped += [f"{cid}/{f}" for f in inner]
        self._ignored(top, skipped, [], what="entries in case folders (IMDxxx_roi/ ROI masks and others)")
        problems = [f"PH2 case folder {top / cid} has no image (expected {images[cid]})"
                    for cid in cases if not images[cid].is_file()]
        present = {c: p for c, p in images.items() if p.is_file()}
        problems += pairing_problems(present, {c: m for c, m in masks.items() if c in present},
                                     lambda c: top / c / f"{c}_lesion" / f"{c}_lesion.bmp")
        self._unpaired(problems)
        self._found("test", len(cases), _PH2_OFFICIAL, "PH2 images", str(top.relative_to(self.root)))
        self._add("test", {cid: [images[cid], masks[cid]] for cid in cases})


class ISIC2017(_ISIC):
    """ISIC 2017 Part 1 (lesion segmentation): official 2000 train / 150 val / 600 test.

    Expected under ``root``: ``ISIC-2017_Training_Data/ISIC_0000000.jpg`` with
    ``ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png`` (lowercase
    ``s``), and the same for ``ISIC-2017_Validation_*`` and ``ISIC-2017_Test_v2_*``.
    ``*_superpixels.png`` and ``*_metadata.csv`` in the data folders are not cases.
    Many ISIC 2016 ids also occur here: never mix the two datasets in one experiment.
    """

    name = "isic2017"
    layout = _ISIC2017
    mask_suffix = "_segmentation"
