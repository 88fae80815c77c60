"""Where a feature vector looks in the input image: receptive fields (paper
Eq. 5-7), patch series centred on a cell (H-PDCR), and the position encoding.

Boxes are inclusive ``[start, end]`` per spatial axis, in input pixels, in tensor
axis order; arrays of boxes have shape (B, N, d, 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ReceptiveField:
    """Per-axis receptive field of one layer: the box of feature index i along axis k
    is ``[i * stride[k] + offset[k], i * stride[k] + offset[k] + size[k] - 1]``."""

    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: tuple[int, ...]


def _layer(spec, position: int) -> tuple[int, int, int, int]:
    if not isinstance(spec, (tuple, list)) or len(spec) not in (3, 4):
        raise ValueError(
            f"`layers[{position}]` must be (kernel, stride, padding) or (kernel, stride, padding, "
            f"dilation), but got {spec!r}"
        )
    values = tuple(spec) + ((1,) if len(spec) == 3 else ())
    names = ("kernel", "stride", "padding", "dilation")
    minima = (1, 1, 0, 1)
    for name, value, low in zip(names, values, minima):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"`layers[{position}]` {name} must be an int >= {low}, but got {value!r}")
    kernel, stride, padding, dilation = values
    return kernel, stride, padding, dilation


def receptive_field(layers: Sequence) -> tuple[int, int, int]:
    """Receptive field of a chain of convolutions / poolings along one axis (Eq. 5-7).

    layers: sequence of (kernel, stride, padding[, dilation]) from the input onwards.
    Returns (size, stride, offset): the feature at index i sees input pixels
    ``[i*stride + offset, i*stride + offset + size - 1]`` (offset is usually negative:
    padding). With J_z = prod_{t<z} s_t and the dilated kernel k_z = d_z (k_z - 1) + 1:
    size = 1 + sum_z (k_z - 1) J_z (Eq. 7), stride = prod_z s_z, offset = -sum_z p_z J_z
    (Eq. 5 with o_l = i; Eq. 6 gives the end).
    """
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"`layers` must be a sequence of (kernel, stride, padding[, dilation]), got {layers!r}")
    size, jump, offset = 1, 1, 0
    for position, spec in enumerate(layers):
        kernel, stride, padding, dilation = _layer(spec, position)
        effective = dilation * (kernel - 1) + 1
        size += (effective - 1) * jump
        offset -= padding * jump
        jump *= stride
    return size, jump, offset


def cell_centres(positions: torch.Tensor, feature_size: Sequence[int], image_size: Sequence[int]) -> torch.Tensor:
    """Input pixel at the centre of each sampled feature cell.

    positions: (B, N, d) int64 feature indices. Returns (B, N, d) int64:
    ``floor((i + 1/2) * image / feature)`` per axis, computed exactly in integers.
    """
    feat = torch.tensor(list(feature_size), device=positions.device)
    img = torch.tensor(list(image_size), device=positions.device)
    return torch.div((2 * positions + 1) * img, 2 * feat, rounding_mode="floor")


def series_boxes(centres: torch.Tensor, patch_sizes: Sequence[int]) -> torch.Tensor:
    """Patch series of H-PDCR: a box of each size centred on each centre.

    centres: (B, N, d) int64 pixels; patch_sizes: P sizes in pixels (per side).
    Returns (P, B, N, d, 2) int64 inclusive boxes; a box of size k starts at
    ``centre - k // 2`` (odd sizes are symmetric about the centre).
    """
    out = []
    for k in patch_sizes:
        start = centres - k // 2
        out.append(torch.stack([start, start + k - 1], dim=-1))
    return torch.stack(out)


def field_boxes(positions: torch.Tensor, field: ReceptiveField) -> torch.Tensor:
    """Receptive-field boxes (RF-PDCR) of feature indices (B, N, d) -> (B, N, d, 2)."""
    stride = torch.tensor(field.stride, device=positions.device)
    offset = torch.tensor(field.offset, device=positions.device)
    size = torch.tensor(field.size, device=positions.device)
    start = positions * stride + offset
    return torch.stack([start, start + size - 1], dim=-1)


def position_encoding(boxes: torch.Tensor, image_size: Sequence[int], dtype: torch.dtype = torch.float32
                      ) -> torch.Tensor:
    """The normalised box (start/size, end/size per axis), the coordinates the paper
    concatenates to each feature vector. boxes: (B, N, d, 2) -> (B, N, 2d)."""
    size = torch.tensor(list(image_size), device=boxes.device, dtype=dtype).view(1, 1, -1, 1)
    return (boxes.to(dtype) / size).flatten(2)
