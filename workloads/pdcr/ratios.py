"""Foreground ratios of boxes (paper Eq. 4) from one summed-area table.

A box is inclusive ``[start, end]`` per spatial axis, in tensor axis order
((H, W) in 2D, (D, H, W) in 3D), in input-image pixels. It is clipped to the
image; the ratio of class m is (pixels of class m inside the clipped box) /
(pixels inside the clipped box), so the M ratios of one box sum to 1 and all
classes count, background too (DESIGN.md).

The counts of every box come from one summed-area table of the one-hot labels:
2^d look-ups per box, whatever the box size, and no Python loop over boxes. When
the boxes' edges are few (receptive fields on a lattice, grid sampling: the 3D
case), the table is kept only at those edges (:func:`corner_table`), built by one
histogram pass over the labels in integers: exact, and far cheaper than the
full table or even a one-hot pass. :func:`box_table` picks the cheaper of the two.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from dragsaw.workloads._checks import check_tensor, one_of

#: Ways to turn the class counts of a box into its vector phi (paper Table V (a)).
PhiKind = Literal["ratio", "l1", "l2", "area"]
PHI_KINDS: tuple[str, ...] = get_args(PhiKind)


def integral_image(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Summed-area table of the one-hot labels.

    labels: (B, *S) integer class indices in [0, num_classes), S = (H, W) or (D, H, W).
    Returns (B, M - 1, *(S + 1)) int32 (int64 for volumes of 2^31 voxels or more),
    zero-padded at the start of every spatial axis: entry [b, m, y, x] counts the
    pixels of class m in labels[b, :y, :x]. The last class is left out: its count
    is the box area minus the others (exact in integers), which halves the work
    for two classes.
    """
    spatial = labels.shape[1:]
    dtype = torch.int32 if labels[0].numel() < 2**31 else torch.int64
    classes = torch.arange(num_classes - 1, device=labels.device).view(1, -1, *([1] * len(spatial)))
    onehot = (labels.unsqueeze(1) == classes).to(dtype)
    table = onehot
    for axis in range(2, 2 + len(spatial)):
        table = table.cumsum(axis, dtype=dtype)
    pad = [1, 0] * len(spatial)
    return torch.nn.functional.pad(table, pad)


def clip_boxes(boxes: torch.Tensor, spatial: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip inclusive boxes (B, N, d, 2) to an image of size ``spatial``.

    Returns (start, stop) each (B, N, d) int64 with ``stop`` exclusive.
    """
    size = torch.tensor(spatial, device=boxes.device, dtype=boxes.dtype)
    start = torch.maximum(boxes[..., 0], torch.zeros_like(size))
    stop = torch.minimum(boxes[..., 1] + 1, size)
    return start, stop


@dataclass(frozen=True)
class CornerTable:
    """The summed-area table of the one-hot labels kept only where boxes have corners.

    coords: one sorted int64 tensor (L_k,) per spatial axis, the distinct box edges on that
    axis (0 first). counts: (B, M - 1, *L) int32 (int64 for volumes of 2^31 voxels or more);
    ``counts[b, m, i, j, ...]`` is the number of pixels of class m in
    ``labels[b, :coords[0][i], :coords[1][j], ...]``, exactly what :func:`integral_image`
    holds at those entries.
    """

    counts: torch.Tensor
    coords: tuple[torch.Tensor, ...]

    def locate(self, edges: torch.Tensor) -> torch.Tensor:
        """Box edges (..., d) int64 in pixels, each one of ``coords`` -> their indices in ``counts``."""
        return torch.stack([torch.searchsorted(c, edges[..., k].contiguous())
                            for k, c in enumerate(self.coords)], dim=-1)


def corner_table(labels: torch.Tensor, num_classes: int, start: torch.Tensor,
                 stop: torch.Tensor) -> CornerTable:
    """The integral image of the one-hot labels at the corners of the given boxes only.

    labels: (B, *S) integer class indices in [0, num_classes); start, stop: (B, N, d) int64
    clipped boxes (stop exclusive), as from :func:`clip_boxes`; several sites' boxes can be
    concatenated along N to share one table. The cut points of every axis (the distinct box
    edges) split the image into cells; one histogram pass over the labels counts each class in
    each cell (exact, in integers), and cumulative sums over the small grid of cells give the
    table. Its cost is one pass over the labels plus the size of that grid, whatever the size
    and number of the boxes: with the boxes of a few lattices of receptive fields the grid has
    a few thousand cells where the full table has M - 1 entries per pixel.
    """
    return _corner_table(labels, num_classes, box_edges(start, stop, tuple(labels.shape[1:])))


def box_edges(start: torch.Tensor, stop: torch.Tensor, spatial: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """The distinct edges of clipped boxes (B, N, d) in an image of size ``spatial``, per axis
    and 0 included: d sorted int64 tensors (marked on a line of S_k + 1 flags: no sort)."""
    edges = []
    for k, size in enumerate(spatial):
        marks = torch.zeros(size + 1, dtype=torch.bool, device=start.device)
        marks[0] = True
        marks[start[..., k].reshape(-1)] = True
        marks[stop[..., k].reshape(-1)] = True
        edges.append(marks.nonzero().view(-1))
    return tuple(edges)


def box_table(labels: torch.Tensor, num_classes: int, start: torch.Tensor,
              stop: torch.Tensor) -> torch.Tensor | CornerTable:
    """The cheaper table that answers :func:`box_counts` for these clipped boxes (B, N, d):
    a :func:`corner_table` when the boxes' edges cut the image into at most a quarter as many
    cells as it has pixels (a few lattices of boxes: receptive fields, grid sampling), else the
    full :func:`integral_image` (boxes everywhere: the histogram would save nothing)."""
    edges = box_edges(start, stop, tuple(labels.shape[1:]))
    cells = math.prod(len(e) + 1 for e in edges)
    if 4 * cells <= labels[0].numel():
        return _corner_table(labels, num_classes, edges)
    return integral_image(labels, num_classes)


#: Pixels binned per step of the histogram pass: its int64 bin indices (1 MiB) stay in cache
#: and no buffer the size of the volume is allocated.
CHUNK_PIXELS = 1 << 17


def _corner_table(labels: torch.Tensor, num_classes: int, coords: tuple[torch.Tensor, ...]) -> CornerTable:
    batch, spatial = labels.shape[0], tuple(labels.shape[1:])
    device, d = labels.device, len(spatial)
    # Cell of pixel c on axis k: j with coords[j-1] <= c < coords[j] (j = L_k: past every edge);
    # bin of a pixel = class * cells + its cell in raster order over the (L_k + 1) cells per axis.
    sizes = [len(c) + 1 for c in coords]
    cells = [torch.searchsorted(c, torch.arange(s, device=device), right=True) for c, s in zip(coords, spatial)]
    strides = [math.prod(sizes[k + 1:]) for k in range(d)]
    ncells = strides[0] * sizes[0]
    rest = torch.zeros((), dtype=torch.int64, device=device)  # cell of the trailing axes: (*S[1:])
    for k in range(1, d):
        rest = rest + (cells[k] * strides[k]).view([-1 if a == k else 1 for a in range(1, d)])
    lead = (cells[0] * strides[0]).view(-1, *([1] * (d - 1)))
    rows = max(1, CHUNK_PIXELS // rest.numel())
    dtype = torch.int32 if labels[0].numel() < 2**31 else torch.int64
    hist = torch.zeros(batch, num_classes * ncells, dtype=dtype, device=device)
    buffer = torch.empty(min(rows, spatial[0]), *spatial[1:], dtype=torch.int64, device=device)
    one = torch.ones(1, dtype=dtype, device=device).expand(buffer.numel())
    for b in range(batch):  # one pass over the labels, a slab of rows at a time
        for r0 in range(0, spatial[0], rows):
            r1 = min(r0 + rows, spatial[0])
            bins = buffer[: r1 - r0]
            torch.add(rest.expand(bins.shape), labels[b, r0:r1], alpha=ncells, out=bins)
            bins.add_(lead[r0:r1])
            hist[b].index_add_(0, bins.view(-1), one[: bins.numel()])  # no min/max passes (bincount)
    table = hist.view(batch, num_classes, *sizes)[:, : num_classes - 1]
    for axis in range(2, 1 + d):  # in place, slab by slab: faster than cumsum here
        for i in range(1, table.shape[axis]):
            table.select(axis, i).add_(table.select(axis, i - 1))
    table = table.cumsum(-1, dtype=dtype)
    keep = tuple(slice(0, s - 1) for s in sizes)
    return CornerTable(table[(slice(None), slice(None), *keep)], coords)


def box_counts(table: torch.Tensor | CornerTable, start: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
    """Class counts of clipped boxes from an :func:`integral_image` or a :func:`corner_table`.

    table: (B, M - 1, *(S + 1)) or a CornerTable holding these boxes' edges;
    start, stop: (B, N, d) int64 (stop exclusive, already clipped).
    Returns (B, N, M) int64 counts; the last class is the area minus the others.
    """
    if isinstance(table, CornerTable):
        lo, hi, table = table.locate(start), table.locate(stop), table.counts
    else:
        lo, hi = start, stop
    b, m1 = table.shape[:2]
    padded = table.shape[2:]
    d = len(padded)
    flat = table.reshape(b, m1, -1)
    # Linear index of each corner in the padded table: stride of axis k = prod(padded[k+1:]).
    strides = [1] * d
    for k in range(d - 2, -1, -1):
        strides[k] = strides[k + 1] * padded[k + 1]
    n = start.shape[1]
    total = torch.zeros(b, m1, n, dtype=torch.int64, device=table.device)
    corners = torch.stack([lo, hi], dim=-1)  # (B, N, d, 2)
    for choice in itertools.product((0, 1), repeat=d):
        index = torch.zeros_like(lo[..., 0])
        for k, c in enumerate(choice):
            index = index + corners[..., k, c] * strides[k]
        sign = 1 if (d - sum(choice)) % 2 == 0 else -1
        picked = flat.gather(2, index.unsqueeze(1).expand(b, m1, n))
        total = total + sign * picked.to(torch.int64)
    area = (stop - start).prod(dim=-1)  # (B, N)
    last = area - total.sum(dim=1)
    return torch.cat([total, last.unsqueeze(1)], dim=1).transpose(1, 2)


def phi_from_counts(counts: torch.Tensor, area: torch.Tensor, kind: str = "ratio",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Turn class counts (B, N, M) into phi (B, N, M).

    kind:
      ``ratio`` - Eq. 4 with DESIGN.md's clipping rule: counts / pixels in the clipped box.
      ``l1``    - counts / ||counts||_1 (Table V (a)); with the clipping rule this equals
                  ``ratio`` exactly, since every pixel of a clipped box has a class.
      ``l2``    - counts / ||counts||_2 (Table V (a)).
      ``area``  - the paper's literal Eq. 4 denominator: counts / r^2, the area of the
                  unclipped box (pixels outside the image belong to no class), given as
                  ``area`` (B, N).
    """
    one_of("phi", kind, PHI_KINDS)
    c = counts.to(dtype)
    if kind == "ratio":
        return c / c.sum(-1, keepdim=True)
    if kind == "l1":
        return c / c.abs().sum(-1, keepdim=True)
    if kind == "l2":
        return c / c.square().sum(-1, keepdim=True).sqrt()
    return c / area.to(dtype).unsqueeze(-1)


def check_boxes(boxes: torch.Tensor, batch: int, spatial: tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming ``boxes`` unless they are (B, N, d, 2) integer boxes
    with start <= end that overlap the image."""
    d = len(spatial)
    check_tensor("boxes", boxes, ndim=4, integer=True, shape_hint=f"(B, N, {d}, 2)")
    if boxes.shape[0] != batch or boxes.shape[2] != d or boxes.shape[3] != 2:
        raise ValueError(
            f"`boxes` must have shape (B={batch}, N, d={d}, 2) to match `labels` of spatial size "
            f"{tuple(spatial)}, but got {tuple(boxes.shape)}"
        )
    if boxes.numel() == 0:
        return
    if bool((boxes[..., 0] > boxes[..., 1]).any()):
        bad = (boxes[..., 0] > boxes[..., 1]).nonzero()[0].tolist()
        raise ValueError(f"`boxes` must satisfy start <= end on every axis, but box {bad[:2]} "
                         f"axis {bad[2]} is {boxes[bad[0], bad[1], bad[2]].tolist()}")
    size = torch.tensor(spatial, device=boxes.device)
    outside = (boxes[..., 1] < 0) | (boxes[..., 0] >= size)
    if bool(outside.any()):
        bad = outside.nonzero()[0].tolist()
        raise ValueError(
            f"`boxes` must overlap the image of size {tuple(spatial)}, but box (b={bad[0]}, n={bad[1]}) "
            f"is {boxes[bad[0], bad[1]].tolist()}, outside it on axis {bad[2]}"
        )


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Raise unless ``labels`` is (B, H, W) or (B, D, H, W) integer with values in [0, num_classes)."""
    check_tensor("labels", labels, ndim=(3, 4), integer=True, shape_hint="(B, H, W) or (B, D, H, W)")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an int >= 1, but got {num_classes!r}")
    if labels.numel():
        lo, hi = (int(v) for v in torch.aminmax(labels))
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"`labels` must hold class indices in [0, {num_classes - 1}] (num_classes={num_classes}), "
                f"but found values in [{lo}, {hi}]"
            )


def foreground_ratios(labels: torch.Tensor, num_classes: int, boxes: torch.Tensor,
                      phi: str = "ratio", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Foreground ratios of boxes (Eq. 4).

    labels: (B, *S) int64 class indices in [0, num_classes), S = (H, W) or (D, H, W).
    boxes:  (B, N, d, 2) int64, inclusive [start, end] per spatial axis in tensor axis
            order, in pixels; may reach outside the image (clipped), must overlap it.
    Returns phi: (B, N, M) ``dtype``; for ``phi="ratio"`` the fraction of each class
    among the pixels of the clipped box (rows sum to 1). See :func:`phi_from_counts`
    for the Table V (a) variants.
    """
    check_labels(labels, num_classes)
    spatial = tuple(labels.shape[1:])
    check_boxes(boxes, labels.shape[0], spatial)
    one_of("phi", phi, PHI_KINDS)
    boxes = boxes.to(torch.int64)
    start, stop = clip_boxes(boxes, spatial)
    counts = box_counts(box_table(labels, num_classes, start, stop), start, stop)
    full_area = (boxes[..., 1] - boxes[..., 0] + 1).prod(-1)
    return phi_from_counts(counts, full_area, phi, dtype)
