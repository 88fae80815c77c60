"""Affinity scores w between patches (paper Eq. 3) and the Table V / Fig. 5 variants.

Every function returns (B, N, K) weights in [0, 1] for the pairs (i of set a,
j of set b). They depend on the labels only, never on features, so no gradient
flows through them.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from dragsaw.workloads._checks import check_tensor

#: Named ways to score a pair of patches (the option ``affinity`` of the plug-in).
AffinityKind = Literal["ratio", "dice", "constant", "rigid", "centre_label"]
AFFINITY_KINDS: tuple[str, ...] = get_args(AffinityKind)


def affinity(phi_a: torch.Tensor, phi_b: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``w_ij = 1 - (1/M) sum_m |phi_a[i, m] - phi_b[j, m]|``.

    phi_a: (B, N, M), phi_b: (B, K, M) foreground ratios. Returns w: (B, N, K), in [0, 1]
    when the rows of phi sum to 1.
    """
    check_tensor("phi_a", phi_a, ndim=3, floating=True, shape_hint="(B, N, M)")
    check_tensor("phi_b", phi_b, ndim=3, floating=True, shape_hint="(B, K, M)")
    if phi_a.shape[0] != phi_b.shape[0] or phi_a.shape[2] != phi_b.shape[2]:
        raise ValueError(
            f"`phi_a` (B, N, M) and `phi_b` (B, K, M) must agree on B and M, but got "
            f"{tuple(phi_a.shape)} and {tuple(phi_b.shape)}"
        )
    m = phi_a.shape[2]
    # cdist with p=1 sums |a - b| over m without materialising (B, N, K, M).
    return 1.0 - torch.cdist(phi_a, phi_b, p=1.0) / m


def dice_affinity(patches_a: torch.Tensor, patches_b: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Eq. 16 variant: the mean over classes of the Dice similarity of two patches' masks.

    patches_a: (B, N, M, P), patches_b: (B, K, M, P) one-hot masks of same-size
    patches flattened to P pixels (pixels outside the image are all-zero). Returns
    (B, N, K): ``(1/M) sum_m 2|A_m & B_m| / (|A_m| + |B_m|)``, with Dice = 1 for a class
    absent from both patches.

    The paper prints Eq. 16 as ``1 - mean Dice``, which would score identical patches 0
    and push them apart; it means the Dice *similarity* in place of Eq. 3's, so this
    returns the mean Dice (1 for identical patches), like Eq. 3 returns 1 for identical ratios.
    """
    a = patches_a.float()
    b = patches_b.float()
    inter = torch.einsum("bimp,bjmp->bijm", a, b)
    size = a.sum(-1).unsqueeze(2) + b.sum(-1).unsqueeze(1)  # (B, N, K, M)
    dice = torch.where(size > 0, 2 * inter / size.clamp_min(1e-12), torch.ones_like(inter))
    return dice.mean(-1)


def constant_affinity(batch: int, n: int, k: int, value: float = 0.5, device: torch.device | str | None = None
                      ) -> torch.Tensor:
    """Table V variant "constant w": every pair scores ``value`` (the paper uses 0.5)."""
    return torch.full((batch, n, k), float(value), device=device)


def rigid_affinity(centres_a: torch.Tensor, centres_b: torch.Tensor) -> torch.Tensor:
    """Table V variant "rigid bipartite w" (SimCLR-like hard pairs).

    centres_a: (B, N, d), centres_b: (B, K, d) integer patch centres in input pixels.
    w = 1 for a patch and itself (the same image location), 0 for every other pair.
    With one augmented view per step, "a patch with its transformation" is the same
    location of the same image; for a cross-layer site both layers are sampled on the
    same normalised grid, so the pair at one location is the positive.
    """
    same = (centres_a.unsqueeze(2) == centres_b.unsqueeze(1)).all(-1)
    return same.float()


def centre_label_affinity(centre_labels_a: torch.Tensor, centre_labels_b: torch.Tensor) -> torch.Tensor:
    """Fig. 5 variant "centre-location-based w": 1 when the labels at the two patch
    centres agree, else 0. centre_labels_a: (B, N), centre_labels_b: (B, K) int."""
    return (centre_labels_a.unsqueeze(2) == centre_labels_b.unsqueeze(1)).float()
