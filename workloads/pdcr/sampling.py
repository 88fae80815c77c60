"""Which feature vectors a site contrasts: ``grid`` (N positions evenly spread,
the same every step) or ``random`` (N distinct positions per image per step)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch

SamplingKind = Literal["grid", "random"]
SAMPLING_KINDS: tuple[str, ...] = get_args(SamplingKind)


def _lattice_shape(n: int, size: Sequence[int]) -> list[int]:
    """Smallest-ish lattice g (g_k <= size_k) with prod(g) >= n, shaped like the map."""
    d = len(size)
    scale = (n / math.prod(size)) ** (1.0 / d)
    g = [max(1, min(s, round(s * scale))) for s in size]
    while math.prod(g) < n:  # grow the axis with the most room left, relative to its size
        k = max((k for k in range(d) if g[k] < size[k]), key=lambda k: size[k] / g[k])
        g[k] += 1
    return g


def grid_positions(n: int, size: Sequence[int]) -> torch.Tensor:
    """N distinct feature indices evenly spread over a map of spatial ``size``.

    A lattice of cell centres shaped like the map is laid out, then N of its points
    are taken at even steps in raster order. Returns (N, d) int64, deterministic.
    """
    total = math.prod(size)
    if n > total:
        raise ValueError(f"`n` ({n}) must be at most the number of feature positions {total} "
                         f"(map {tuple(size)})")
    g = _lattice_shape(n, size)
    axes = [torch.div((2 * torch.arange(gk) + 1) * sk, 2 * gk, rounding_mode="floor") for gk, sk in zip(g, size)]
    lattice = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(size))
    pick = torch.div(torch.arange(n) * lattice.shape[0], n, rounding_mode="floor")
    return lattice[pick]


def random_positions(batch: int, n: int, size: Sequence[int], generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """N distinct random feature indices per image: (B, N, d) int64."""
    total = math.prod(size)
    if n > total:
        raise ValueError(f"`n` ({n}) must be at most the number of feature positions {total} "
                         f"(map {tuple(size)})")
    keys = torch.rand(batch, total, generator=generator, device=device)
    flat = keys.topk(n, dim=1).indices
    return unravel(flat, size)


def unravel(flat: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Linear indices (...,) of a map of spatial ``size`` -> (..., d) indices."""
    out = []
    for s in reversed(list(size)):
        out.append(flat % s)
        flat = torch.div(flat, s, rounding_mode="floor")
    return torch.stack(out[::-1], dim=-1)


def ravel(positions: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(..., d) indices -> linear indices (...,) of a map of spatial ``size``."""
    flat = torch.zeros_like(positions[..., 0])
    for k, s in enumerate(size):
        flat = flat * s + positions[..., k]
    return flat


def gather_vectors(features: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Feature vectors at ``positions``. features: (B, C, *S); positions: (B, N, d).
    Returns (B, N, C); gradients flow back into ``features``."""
    b, c = features.shape[:2]
    flat = ravel(positions, features.shape[2:])  # (B, N)
    maps = features.reshape(b, c, -1)
    return maps.gather(2, flat.unsqueeze(1).expand(b, c, flat.shape[1])).transpose(1, 2)
