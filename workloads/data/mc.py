"""Montgomery County chest X-ray set (MC): lung-field segmentation, read from the
official folders exactly as extracted (layout in the project's DATASETS.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from dragsaw.workloads.data._image2d import (
    Dataset2D,
    decode,
    list_folder,
    pairing_problems,
    read_binary_mask,
    to_array,
)
from dragsaw.workloads.data.base import Case, DatasetError, cache_dir
from dragsaw.workloads.data.splits import holdout, saved_splits

_IMAGE = re.compile(r"^(MCUCXR_\d{4}_([01]))\.png$")
_IMAGES = "MontgomerySet/CXR_png"
_LEFT, _RIGHT = "MontgomerySet/ManualMask/leftMask", "MontgomerySet/ManualMask/rightMask"

OFFICIAL = {"0": 80, "1": 58}  # normal, tuberculosis
OFFICIAL_TEST = 58
SPLIT_SEED = 12345


def stratified_holdout(case_ids: list[str], n_test: int, groups: dict[str, str], seed: int) -> dict[str, list[str]]:
    """``holdout`` within each group, the ``n_test`` test cases shared out in proportion to
    the group sizes (largest remainders); a group of one case stays in train."""
    members: dict[str, list[str]] = {}
    for cid in sorted(case_ids):
        members.setdefault(groups[cid], []).append(cid)
    quota = {g: len(ids) * n_test / len(case_ids) for g, ids in members.items()}
    take = {g: int(q) for g, q in quota.items()}
    for g in sorted(quota, key=lambda g: (take[g] - quota[g], g))[: n_test - sum(take.values())]:
        take[g] += 1
    test: list[str] = []
    for g, ids in members.items():
        k = min(take[g], len(ids) - 1)
        if k >= 1:
            test += holdout(ids, k, seed)["test"]
    return {"train": sorted(set(case_ids) - set(test)), "test": sorted(test)}


class Montgomery(Dataset2D):
    """Montgomery County chest X-rays: 138 8-bit grayscale PNGs (80 normal ``_0``,
    58 tuberculosis ``_1``) with manual left- and right-lung masks.

    Expected under ``root``: ``MontgomerySet/CXR_png/MCUCXR_0001_0.png``,
    ``MontgomerySet/ManualMask/leftMask/MCUCXR_0001_0.png`` and ``.../rightMask/...``
    (the ``ClinicalReadings/`` folder and the read-me are not used).

    Read: image (H, W, 1) uint8; label (H, W) int64, 1 = lung = the union of the left
    and right masks (each 0/255, ``> 127``). Stray blobs in the masks are kept as
    annotated: the loader does not edit the reference.

    Split (``train``/``test``): no 80/58 split has been published, so dragsaw makes one,
    never "normal = train, TB = test": from the sorted case ids, ``holdout`` with seed
    12345 within the normal and within the tuberculosis cases, 34 normal + 24 TB = 58
    test cases (the TB share of the whole set in both parts), 46 + 34 = 80 train. It is
    made once and saved as JSON under ``$DRAGSAW_CACHE/splits/`` (named by this recipe
    and a digest of the case ids), then always read back from there; copy that file to
    pin the split. With another number of cases (a partial download, the synthetic
    look-alike) the test size is ``round(n * 58 / 138)``, split the same way.
    """

    name = "mc"
    expected = f"{_IMAGES}/, {_LEFT}/ and {_RIGHT}/ (the extracted MontgomerySet folder)"

    def __init__(self, root: str | os.PathLike[str]):
        super().__init__(root, ["background", "lung"])
        folders = self._folders({
            _IMAGES: "the 138 chest X-rays MCUCXR_xxxx_0.png / MCUCXR_xxxx_1.png",
            _LEFT: "the 138 left-lung masks, named as the X-rays",
            _RIGHT: "the 138 right-lung masks, named as the X-rays",
        })
        found = {}
        for rel, folder in folders.items():
            files, subfolders, junk = list_folder(folder)
            found[rel] = {m[1]: folder / f for f in files if (m := _IMAGE.match(f))}
            self._ignored(folder, [f for f in files if not _IMAGE.match(f)] + [f"{d}/" for d in subfolders], junk)
        images = found[_IMAGES]
        problems = []
        for rel in (_LEFT, _RIGHT):
            problems += pairing_problems(images, found[rel], lambda c, rel=rel: folders[rel] / f"{c}.png")
        self._unpaired(problems)
        self.files = {cid: [images[cid], found[_LEFT][cid], found[_RIGHT][cid]] for cid in sorted(images)}

        groups = {cid: cid[-1] for cid in self.files}
        counts = {g: sum(v == g for v in groups.values()) for g in OFFICIAL}
        self._found("all", len(images), sum(OFFICIAL.values()), "X-ray images",
                    str(folders[_IMAGES].relative_to(self.root)))
        self._report.append(f"of which {counts['0']} normal (_0, official {OFFICIAL['0']}) and "
                            f"{counts['1']} tuberculosis (_1, official {OFFICIAL['1']})")
        if len(self.files) < 2:
            raise DatasetError(f"{self.name}: a train/test split needs at least 2 cases, but found "
                               f"{len(self.files)} in {folders[_IMAGES]}")
        n_test = round(len(self.files) * OFFICIAL_TEST / sum(OFFICIAL.values()))
        n_test = min(max(n_test, 1), len(self.files) - 1)
        self.splits = saved_splits(f"mc-holdout{OFFICIAL_TEST}of{sum(OFFICIAL.values())}-seed{SPLIT_SEED}",
                                   list(self.files),
                                   lambda: stratified_holdout(list(self.files), n_test, groups, SPLIT_SEED))
        self._report.append(f"split: {len(self.splits['train'])} train / {len(self.splits['test'])} test, seeded, "
                            f"stratified by _0/_1, saved under {Path(cache_dir()) / 'splits'}")

    def _read(self, case_id: str) -> Case:
        """image (H, W, 1) uint8, label (H, W) int64 in {0, 1} (left | right lung)."""
        image_path, left_path, right_path = self.files[case_id]
        img, size = decode(image_path)
        left = read_binary_mask(left_path, size, image_path=image_path)
        right = read_binary_mask(right_path, size, image_path=image_path)
        return Case(to_array(img, 1), (left | right).astype(np.int64), None, case_id)
