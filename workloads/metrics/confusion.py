"""Per-case confusion counts (TP, FP, FN, TN) of integer class maps.

Counts are what an evaluation stores (DESIGN.md, Results): every metric and every
averaging convention is recomputed from them. They are a plain numpy int64 array
whose last axis is ``COUNT_FIELDS`` = (tp, fp, fn, tn):

- one case: (M, 4), row m = class m against all others (one-vs-rest);
- a batch:  (B, M, 4).

An array rather than a dataclass: it stacks into batches, vectorises the metrics
and maps one-to-one onto Parquet columns. For class (or region) m of one case:
TP = pixels with pred in m and target in m, FP = pred in m and target not in m,
FN = pred not in m and target in m, TN = the rest; so every row of a case sums to
the number of pixels (voxels) of the case.

All counts come from one ``bincount`` of the joint index ``target * M + pred``
(the M x M confusion matrix), never from a loop over classes. Torch inputs are
counted on their own device (GPU included); only the M x M matrix leaves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

#: Names of the last axis of a counts array, in order.
COUNT_FIELDS = ("tp", "fp", "fn", "tn")

#: BraTS regions on the labels of MSD Task01 (1 = edema, 2 = non-enhancing tumour,
#: 3 = enhancing tumour): whole tumour, tumour core, enhancing tumour.
BRATS_REGIONS: dict[str, frozenset[int]] = {
    "WT": frozenset({1, 2, 3}),
    "TC": frozenset({2, 3}),
    "ET": frozenset({3}),
}


def confusion(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, num_classes: int
              ) -> np.ndarray:
    """Per-class counts of one case.

    pred, target: (H, W) or (D, H, W) integer class indices in [0, num_classes),
    numpy arrays or torch tensors (any integer dtype, any device; mixing is allowed).
    Returns (num_classes, 4) int64, columns ``COUNT_FIELDS`` = (tp, fp, fn, tn).
    """
    kind = "(H, W) or (D, H, W)"
    pred, target = _check_maps(pred, target, (2, 3), kind, num_classes)
    matrix = _confusion_matrix(pred[None], target[None], num_classes)
    return _counts(matrix, np.eye(num_classes, dtype=np.int64))[0]


def batch_confusion(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, num_classes: int
                    ) -> np.ndarray:
    """Per-case, per-class counts of a batch; equals stacking ``confusion`` over cases.

    pred, target: (B, H, W) or (B, D, H, W) integer class indices in [0, num_classes).
    Returns (B, num_classes, 4) int64, columns ``COUNT_FIELDS``.
    """
    kind = "(B, H, W) or (B, D, H, W)"
    pred, target = _check_maps(pred, target, (3, 4), kind, num_classes)
    matrix = _confusion_matrix(pred, target, num_classes)
    return _counts(matrix, np.eye(num_classes, dtype=np.int64))


def region_confusion(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                     regions: Mapping[str, Iterable[int]],
                     num_classes: int | None = None) -> np.ndarray:
    """Counts of one case for regions, each a set of labels scored as one (e.g. ``BRATS_REGIONS``).

    pred, target: (H, W) or (D, H, W) integer labels in [0, num_classes).
    regions: name -> labels, e.g. {"WT": {1, 2, 3}, "TC": {2, 3}, "ET": {3}}; a pixel is
    in a region when its label is one of the region's labels.
    num_classes: number of valid labels; default max label in ``regions`` + 1 (labels
    outside every region, such as background 0, must still be below it).
    Returns (R, 4) int64 in the iteration order of ``regions``, columns ``COUNT_FIELDS``.
    """
    indicator, num_classes = _region_indicator(regions, num_classes)
    kind = "(H, W) or (D, H, W)"
    pred, target = _check_maps(pred, target, (2, 3), kind, num_classes)
    return _counts(_confusion_matrix(pred[None], target[None], num_classes), indicator)[0]


def batch_region_confusion(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor,
                           regions: Mapping[str, Iterable[int]],
                           num_classes: int | None = None) -> np.ndarray:
    """``region_confusion`` for a batch: (B, H, W) or (B, D, H, W) labels -> (B, R, 4) int64."""
    indicator, num_classes = _region_indicator(regions, num_classes)
    kind = "(B, H, W) or (B, D, H, W)"
    pred, target = _check_maps(pred, target, (3, 4), kind, num_classes)
    return _counts(_confusion_matrix(pred, target, num_classes), indicator)


# --- counting -----------------------------------------------------------------------------


def _confusion_matrix(pred, target, num_classes: int) -> np.ndarray:
    """(B, *S) labels -> (B, M, M) int64 matrix, entry [b, t, p] = pixels with target t, pred p."""
    batch, m = pred.shape[0], num_classes
    shape = (batch,) + (1,) * (pred.ndim - 1)
    # Joint index b*M*M + t*M + p in int64: narrow input dtypes (uint8) would overflow.
    if isinstance(pred, torch.Tensor):
        index = target.to(torch.int64) * m + pred.to(torch.int64)
        index += (torch.arange(batch, device=index.device) * (m * m)).view(shape)
        flat = torch.bincount(index.reshape(-1), minlength=batch * m * m)
        return flat.cpu().numpy().astype(np.int64, copy=False).reshape(batch, m, m)
    index = target.astype(np.int64) * m
    index += pred.astype(np.int64, copy=False)
    index += (np.arange(batch, dtype=np.int64) * (m * m)).reshape(shape)
    flat = np.bincount(index.reshape(-1), minlength=batch * m * m)
    return flat.astype(np.int64, copy=False).reshape(batch, m, m)


def _counts(matrix: np.ndarray, indicator: np.ndarray) -> np.ndarray:
    """(B, M, M) confusion matrix and (R, M) 0/1 membership of labels in regions -> (B, R, 4).

    Classes are the special case indicator = identity (region m = {m})."""
    tp = np.einsum("rt,btp,rp->br", indicator, matrix, indicator)
    in_target = matrix.sum(axis=2) @ indicator.T  # (B, R): pixels whose target is in the region
    in_pred = matrix.sum(axis=1) @ indicator.T
    total = matrix.sum(axis=(1, 2))[:, None]
    fp, fn = in_pred - tp, in_target - tp
    return np.stack([tp, fp, fn, total - tp - fp - fn], axis=-1).astype(np.int64, copy=False)


# --- argument checks ----------------------------------------------------------------------


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an int >= 1, but got {num_classes!r}")
    return int(num_classes)


def _region_indicator(regions, num_classes) -> tuple[np.ndarray, int]:
    if not isinstance(regions, Mapping) or len(regions) == 0:
        raise ValueError(f"`regions` must be a non-empty mapping name -> labels, but got {regions!r}")
    labels = {}
    for name, members in regions.items():
        if not isinstance(name, str):
            raise TypeError(f"`regions` keys must be str names, but got {name!r}")
        try:
            members = set(members)
        except TypeError:
            raise TypeError(f"`regions[{name!r}]` must be a set of int labels, but got {members!r}") from None
        bad = [v for v in members if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0]
        if not members or bad:
            raise ValueError(f"`regions[{name!r}]` must be a non-empty set of int labels >= 0, "
                             f"but got {sorted(members, key=repr)!r}")
        labels[name] = {int(v) for v in members}
    highest = max(max(v) for v in labels.values())
    num_classes = highest + 1 if num_classes is None else _check_num_classes(num_classes)
    if highest >= num_classes:
        raise ValueError(f"labels in `regions` must be < num_classes={num_classes}, but got label {highest}")
    indicator = np.zeros((len(labels), num_classes), dtype=np.int64)
    for row, members in enumerate(labels.values()):
        indicator[row, sorted(members)] = 1
    return indicator, num_classes


def _check_maps(pred, target, ndims: tuple[int, ...], kind: str, num_classes) -> tuple:
    """Validate two label maps and return them as the same backend (torch wins if either is torch)."""
    num_classes = _check_num_classes(num_classes)
    for name, x in (("pred", pred), ("target", target)):
        _check_one(name, x, ndims, kind)
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"`pred` and `target` must have the same shape, but got pred {tuple(pred.shape)} "
                         f"and target {tuple(target.shape)}")
    if isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor) and pred.device != target.device:
        raise ValueError(f"`pred` and `target` must be on the same device, but got pred on {pred.device} "
                         f"and target on {target.device}")
    if isinstance(pred, torch.Tensor) != isinstance(target, torch.Tensor):
        device = pred.device if isinstance(pred, torch.Tensor) else target.device
        pred, target = (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(x),
                                                                              device=device)
                        for x in (pred, target))
    for name, x in (("pred", pred), ("target", target)):
        low, high = (int(x.min()), int(x.max()))
        if low < 0 or high >= num_classes:
            raise ValueError(f"`{name}` values must lie in [0, num_classes - 1] = [0, {num_classes - 1}], "
                             f"but got values from {low} to {high}")
    return pred, target


def _check_one(name: str, x, ndims: tuple[int, ...], kind: str) -> None:
    if isinstance(x, torch.Tensor):
        dtype, integer = x.dtype, not (x.dtype.is_floating_point or x.dtype.is_complex
                                       or x.dtype == torch.bool)
    elif isinstance(x, np.ndarray):
        dtype, integer = x.dtype, np.issubdtype(x.dtype, np.integer)
    else:
        raise TypeError(f"`{name}` must be a numpy array or a torch.Tensor of class indices {kind}, "
                        f"but got {type(x).__name__}")
    if not integer:
        raise TypeError(f"`{name}` must hold integer class indices (e.g. int64; convert booleans or "
                        f"argmax the scores first), but got dtype {dtype}")
    if x.ndim not in ndims:
        raise ValueError(f"`{name}` must have shape {kind}, but got shape {tuple(x.shape)}")
    if x.numel() == 0 if isinstance(x, torch.Tensor) else x.size == 0:
        raise ValueError(f"`{name}` must hold at least one pixel, but got shape {tuple(x.shape)}")
