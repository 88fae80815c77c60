"""DigestPath 2019, task 2 (colonoscopy tissue: lesion segmentation), read from the
official folders exactly as extracted (layout in the project's DATASETS.md)."""

from __future__ import annotations

import os
import random

import numpy as np
from PIL import Image

from dragsaw.workloads.data._image2d import (
    Dataset2D,
    binary_values,
    decode,
    fit_size,
    list_folder,
    pairing_problems,
    resolve,
    to_array,
)
from dragsaw.workloads.data.base import Case, DatasetError
from dragsaw.workloads.data.splits import kfold, saved_splits

#: PIL refuses images over 2 x ``Image.MAX_IMAGE_PIXELS`` (~179 Mpx by default) as possible
#: decompression bombs. DigestPath slides are tens of thousands of pixels a side, so while
#: opening a DigestPath file (and only then) the limit is raised to this: a warning above
#: 1 Gpx (a 31623 px square), a refusal above 2 Gpx. Files come from the official archive.
MAX_IMAGE_PIXELS = 1_000_000_000

POSITIVE, NEGATIVE = "tissue-train-pos-v1", "tissue-train-neg"
OFFICIAL = {"pos": 250, "neg": 410}
FOLDS, SPLIT_SEED = 5, 12345


def stratified_kfold(groups: dict[str, list[str]], k: int, seed: int) -> dict[str, list[str]]:
    """``kfold`` within each group, fold i of the result = the union of the groups' fold i,
    so each fold keeps the groups' proportions. A group smaller than ``k`` is dealt out
    one case per fold (seeded shuffle of its sorted ids)."""
    folds: dict[str, list[str]] = {f"fold{i}": [] for i in range(k)}
    for ids in groups.values():
        if len(ids) >= k:
            parts = kfold(ids, k, seed)
        else:
            order = sorted(ids)
            random.Random(seed).shuffle(order)
            parts = {f"fold{i}": order[i::k] for i in range(k)}
        for name, part in parts.items():
            folds[name] += part
    return {name: sorted(ids) for name, ids in folds.items()}


class DigestPath(Dataset2D):
    """DigestPath 2019 task 2: colonoscopy tissue JPEGs with lesion masks; 5-fold CV.

    Expected under ``root``: ``tissue-train-pos-v1/<name>.jpg`` with its mask
    ``tissue-train-pos-v1/<name>_mask.jpg``, and (for ``include_negatives=True``)
    ``tissue-train-neg/<name>.jpg``, which have no masks. Names contain spaces; the case id
    is ``<name>`` as it is.

    Options:
        include_negatives: also read the negatives, each with an all-background label.
        max_side: longest side in pixels of what ``read`` returns (``None``: full size,
            which can be tens of thousands of pixels a side). The image is downscaled by
            area averaging (JPEG draft decoding, then a box filter), the mask by nearest
            neighbour, both to the same size.

    Size of the training set: the official training set is 660 images, 250 with masks
    (positives) and 410 without (negatives). The paper reports 952 training images,
    which we could not reconcile with any published release. The default
    (``include_negatives=False``) uses the 250 positives; ``include_negatives=True``
    uses all 660. Neither is 952: say which one a result used.

    Masks are JPEGs, so not exactly 0/255: lesion = ``value > 127``, and a mask with more
    than 5% of its pixels between 65 and 190 is an error naming the file (JPEG noise
    stays near 0 and 255, except along the edges).

    Splits ``fold0``..``fold4``: ``kfold`` (seed 12345) of the sorted ids, within the
    positives and within the negatives separately, saved under ``$DRAGSAW_CACHE/splits/``
    on first use and read back from there afterwards.
    """

    name = "digestpath"
    expected = f"{POSITIVE}/ (images <name>.jpg and masks <name>_mask.jpg) and optionally {NEGATIVE}/"

    def __init__(self, root: str | os.PathLike[str], include_negatives: bool = False, max_side: int | None = 4096):
        if not isinstance(include_negatives, bool):
            raise TypeError(f"`include_negatives` must be True or False, but got {include_negatives!r}")
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
            raise ValueError(f"`max_side` must be a positive number of pixels or None, but got {max_side!r}")
        super().__init__(root, ["background", "lesion"])
        self.include_negatives, self.max_side = include_negatives, max_side
        wanted = {POSITIVE: f"the {OFFICIAL['pos']} images <name>.jpg with their masks <name>_mask.jpg"}
        if include_negatives:
            wanted[NEGATIVE] = f"the {OFFICIAL['neg']} negative images <name>.jpg (no masks)"
        folders = self._folders(wanted)

        pos = folders[POSITIVE]
        files, subfolders, junk = list_folder(pos)
        jpegs = [f for f in files if f.lower().endswith(".jpg")]
        self._ignored(pos, [f for f in files if f not in jpegs] + [f"{d}/" for d in subfolders], junk)
        masks = {f[:-9]: pos / f for f in jpegs if f[:-4].endswith("_mask")}
        images = {f[:-4]: pos / f for f in jpegs if not f[:-4].endswith("_mask")}
        self._unpaired(pairing_problems(images, masks, lambda c: pos / f"{c}_mask.jpg"))
        self._found("positives", len(images), OFFICIAL["pos"], "images with masks", POSITIVE)
        self._add("positives", {cid: [images[cid], masks[cid]] for cid in images})

        neg = folders[NEGATIVE] if include_negatives else resolve(self.root, NEGATIVE)[0]
        if neg is not None:
            files, subfolders, junk = list_folder(neg)
            negatives = {f[:-4]: neg / f for f in files if f.lower().endswith(".jpg")}
            if include_negatives:
                self._ignored(neg, [f for f in files if not f.lower().endswith(".jpg")]
                              + [f"{d}/" for d in subfolders], junk)
                self._found("negatives", len(negatives), OFFICIAL["neg"], "images without masks (empty labels)",
                            NEGATIVE)
                self._add("negatives", {cid: [path] for cid, path in negatives.items()})
            else:
                self._report.append(f"{NEGATIVE}: {len(negatives)} negative images present, not used "
                                    "(include_negatives=False)")
        self._report.append(f"note: the paper reports 952 training images; the official set is "
                            f"{sum(OFFICIAL.values())} ({OFFICIAL['pos']} positives + {OFFICIAL['neg']} negatives)")

        groups = dict(self.splits)  # "positives"/"negatives" so far: the strata of the folds
        self.splits = {}
        if len(self.files) < FOLDS:
            raise DatasetError(f"{self.name}: {FOLDS}-fold cross-validation needs at least {FOLDS} cases, "
                               f"but found {len(self.files)} under {self.root}")
        name = f"digestpath-kfold{FOLDS}-seed{SPLIT_SEED}" + ("-neg" if include_negatives else "")
        self.splits = saved_splits(name, list(self.files), lambda: stratified_kfold(groups, FOLDS, SPLIT_SEED))

    def _read(self, case_id: str) -> Case:
        """image (h, w, 3) uint8 and label (h, w) int64 in {0, 1}, with max(h, w) <= max_side."""
        image_path, *mask_path = self.files[case_id]
        img, stored = decode(image_path, max_pixels=MAX_IMAGE_PIXELS, max_side=self.max_side)
        target = fit_size(stored, self.max_side)
        img = img.convert("RGB")
        if img.size != target:
            img = img.resize(target, Image.Resampling.BOX)
        if not mask_path:
            return Case(to_array(img, 3), np.zeros(target[::-1], np.int64), None, case_id)
        mask, mask_stored = decode(mask_path[0], max_pixels=MAX_IMAGE_PIXELS)
        if mask_stored != stored:
            raise DatasetError(f"mask {mask_path[0]} is {mask_stored[0]}x{mask_stored[1]} (WxH) but its image "
                               f"{image_path} is {stored[0]}x{stored[1]}")
        if mask.mode != "L":
            mask = mask.convert("L")
        if mask.size != target:
            mask = mask.resize(target, Image.Resampling.NEAREST)
        label = binary_values(np.asarray(mask), mask_path[0], lossy=True)
        return Case(to_array(img, 3), label.astype(np.int64), None, case_id)


__all__ = ["MAX_IMAGE_PIXELS", "DigestPath", "stratified_kfold"]
