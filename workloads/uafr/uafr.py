"""Uncertainty-Aware Feature Re-weighting (paper Eq. 13-15)."""

from __future__ import annotations

import math

import torch
from torch import nn

from dragsaw.workloads._checks import check_tensor


def _layers(spatial_dims: int):
    if spatial_dims not in (2, 3):
        raise ValueError(f"`spatial_dims` must be 2 or 3, but got {spatial_dims!r}")
    return (nn.Conv2d, nn.BatchNorm2d) if spatial_dims == 2 else (nn.Conv3d, nn.BatchNorm3d)


def normalised_entropy(probabilities: torch.Tensor, log_probabilities: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 14: ``u = -sum_m a_m log a_m / log M`` over axis 1. (B, M, *S) -> (B, 1, *S) in [0, 1];
    0 when M = 1 (one map carries no uncertainty)."""
    m = probabilities.shape[1]
    if m == 1:
        return torch.zeros_like(probabilities)
    # clamp at the dtype's smallest normal number: a fixed 1e-30 underflows to 0 in float16,
    # so a certain (one-hot) distribution gave 0 * log(0) = NaN there.
    tiny = torch.finfo(probabilities.dtype).tiny
    log_a = probabilities.clamp_min(tiny).log() if log_probabilities is None else log_probabilities
    return -(probabilities * log_a).sum(dim=1, keepdim=True) / math.log(m)


class UAFR(nn.Module):
    """UAFR block: ``A = softmax(F(Q))`` (Eq. 13), u = normalised entropy of A (Eq. 14),
    output ``Q * (2 - u)`` (Eq. 15: Q * (1 + (1 - u))).

    channels: C of Q; num_maps: M, the channels of A (the number of classes by default
    in configs); hidden: channels between the two convolutions of F; kernel_size: of F's
    first convolution; use_f: False drops F and takes the softmax of Q itself over its
    C channels (Table IX (a)), so M = C; spatial_dims: 2 or 3.
    Shapes: q (B, C, *S) -> (B, C, *S).
    """

    def __init__(self, channels: int, num_maps: int = 2, hidden: int = 16, kernel_size: int = 3,
                 use_f: bool = True, spatial_dims: int = 2):
        super().__init__()
        for name, value in (("channels", channels), ("num_maps", num_maps), ("hidden", hidden),
                            ("kernel_size", kernel_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be an int >= 1, but got {value!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd (so F keeps the spatial size), but got {kernel_size}")
        conv, norm = _layers(spatial_dims)
        self.channels, self.spatial_dims, self.use_f = channels, spatial_dims, bool(use_f)
        self.num_maps = num_maps if use_f else channels
        if self.use_f:
            self.f = nn.Sequential(
                conv(channels, hidden, kernel_size, padding=kernel_size // 2, bias=False),
                norm(hidden),
                nn.ReLU(inplace=True),
                conv(hidden, num_maps, 1),
            )
        else:
            self.f = nn.Identity()

    def _check(self, q: torch.Tensor) -> None:
        check_tensor("q", q, ndim=2 + self.spatial_dims, floating=True,
                     shape_hint=f"(B, C={self.channels}, *S) with {self.spatial_dims} spatial axes")
        if q.shape[1] != self.channels:
            raise ValueError(f"`q` must have C={self.channels} channels, but got shape {tuple(q.shape)}")

    def logits(self, q: torch.Tensor) -> torch.Tensor:
        """F(Q): (B, M, *S)."""
        self._check(q)
        return self.f(q)

    def probabilities(self, q: torch.Tensor) -> torch.Tensor:
        """A = softmax(F(Q)) over the M maps: (B, M, *S)."""
        return self.logits(q).softmax(dim=1)

    def uncertainty(self, q: torch.Tensor) -> torch.Tensor:
        """u: (B, 1, *S) normalised entropy of A, in [0, 1]."""
        logits = self.logits(q)
        return normalised_entropy(logits.softmax(dim=1), logits.log_softmax(dim=1))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return q * (2.0 - self.uncertainty(q))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_maps={self.num_maps}, use_f={self.use_f}, spatial_dims={self.spatial_dims}"
