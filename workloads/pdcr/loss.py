"""The patch-dragsaw contrastive loss of one site (paper Eq. 8-9, 10-12)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dragsaw.workloads._checks import check_tensor


def cosine_similarity(v_a: torch.Tensor, v_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 8: s_ij = v_a[i] . v_b[j] / (|v_a[i]| |v_b[j]|). (B, N, C), (B, K, C) -> (B, N, K)."""
    a = F.normalize(v_a, dim=-1, eps=eps)
    b = F.normalize(v_b, dim=-1, eps=eps)
    return torch.bmm(a, b.transpose(1, 2))


def loss_from_similarity(s: torch.Tensor, w: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Eq. 9 from precomputed similarities, averaged over every leading axis and (i, j).

    s: (..., N, K) cosine similarities; w: (..., N, K) affinities (broadcastable to s).
    ``-log(exp(s_ij w_ij / tau) / sum_n exp(s_in (1 - w_in) / tau))`` equals
    ``logsumexp_n(s_in (1 - w_in) / tau) - s_ij w_ij / tau``; its mean over j is the
    row's logsumexp minus the row mean of ``s w / tau``, so the (N, K) matrix of
    per-pair losses is never formed. logsumexp keeps small tau stable; no maximum is
    subtracted before the weights are applied.
    """
    s, w = torch.broadcast_tensors(s, w)
    lse = torch.logsumexp(s * (1.0 - w) / tau, dim=-1)
    return lse.mean() - (s * w).mean() / tau


def dragsaw_loss(v_a: torch.Tensor, v_b: torch.Tensor, w: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Eq. 9 for one site: the mean over batch b, anchors i and partners j of
    ``-log( exp(s_ij w_ij / tau) / sum_n exp(s_in (1 - w_in) / tau) )``.

    v_a: (B, N, C) anchor features; v_b: (B, K, C) partner features (the same tensor
    for a single-layer site; the diagonal is not masked); w: (B, N, K) affinities in
    [0, 1]; tau > 0. Returns a scalar. Memory O(B N K), never O(B C N K).
    """
    check_tensor("v_a", v_a, ndim=3, floating=True, shape_hint="(B, N, C)")
    check_tensor("v_b", v_b, ndim=3, floating=True, shape_hint="(B, K, C)")
    check_tensor("w", w, ndim=3, floating=True, shape_hint="(B, N, K)")
    b, n, c = v_a.shape
    if v_b.shape[0] != b or v_b.shape[2] != c:
        raise ValueError(f"`v_b` must have shape (B={b}, K, C={c}) to match `v_a` {tuple(v_a.shape)}, "
                         f"but got {tuple(v_b.shape)}")
    if tuple(w.shape) != (b, n, v_b.shape[1]):
        raise ValueError(f"`w` must have shape (B, N, K) = {(b, n, v_b.shape[1])}, but got {tuple(w.shape)}")
    if not (isinstance(tau, (int, float)) and tau > 0):
        raise ValueError(f"`tau` must be a number > 0, but got {tau!r}")
    return loss_from_similarity(cosine_similarity(v_a, v_b), w, tau)
