"""Slow references for PDCR, written straight from the paper's equations with
loops and float64, to check the fast implementations against."""

from __future__ import annotations

import itertools
import math

import torch


def ratio_reference(labels, num_classes, boxes):
    """Eq. 4 with DESIGN.md's clipping: per box, pixels of each class / pixels inside the clipped box."""
    B, N = boxes.shape[:2]
    spatial = labels.shape[1:]
    out = torch.zeros(B, N, num_classes, dtype=torch.float64)
    for b in range(B):
        for n in range(N):
            ranges = []
            for axis, size in enumerate(spatial):
                start = max(int(boxes[b, n, axis, 0]), 0)
                end = min(int(boxes[b, n, axis, 1]), size - 1)
                ranges.append(range(start, end + 1))
            counts = [0] * num_classes
            area = 0
            for pixel in itertools.product(*ranges):
                counts[int(labels[(b, *pixel)])] += 1
                area += 1
            for m in range(num_classes):
                out[b, n, m] = counts[m] / area
    return out


def affinity_reference(phi_a, phi_b):
    """Eq. 3: w_ij = 1 - (1/M) sum_m |phi_i^m - phi_j^m|."""
    B, N, M = phi_a.shape
    K = phi_b.shape[1]
    w = torch.zeros(B, N, K, dtype=torch.float64)
    for b in range(B):
        for i in range(N):
            for j in range(K):
                w[b, i, j] = 1 - sum(abs(float(phi_a[b, i, m]) - float(phi_b[b, j, m])) for m in range(M)) / M
    return w


def cosine(u, v):
    u, v = u.detach(), v.detach()
    dot = sum(float(a) * float(b) for a, b in zip(u, v))
    nu = math.sqrt(sum(float(a) ** 2 for a in u))
    nv = math.sqrt(sum(float(b) ** 2 for b in v))
    return dot / (nu * nv)


def loss_reference(v_a, v_b, w, tau=1.0):
    """Eq. 8-9 averaged over (b, i, j): -log( exp(s_ij w_ij / tau) / sum_n exp(s_in (1 - w_in) / tau) )."""
    B, N, _ = v_a.shape
    K = v_b.shape[1]
    total, count = 0.0, 0
    for b in range(B):
        s = [[cosine(v_a[b, i], v_b[b, j]) for j in range(K)] for i in range(N)]
        for i in range(N):
            denominator = sum(math.exp(s[i][n] * (1 - float(w[b, i, n])) / tau) for n in range(K))
            for j in range(K):
                numerator = math.exp(s[i][j] * float(w[b, i, j]) / tau)
                total += -math.log(numerator / denominator)
                count += 1
    return total / count


def receptive_field_reference(layers, index):
    """Eq. 5-7 as printed, for feature index ``index`` (o_l = e_l = index): (o, e, r)."""
    ks = [l[0] if len(l) == 3 else l[3] * (l[0] - 1) + 1 for l in layers]
    ss = [l[1] for l in layers]
    ps = [l[2] for l in layers]
    L = len(layers)

    def prod(z):  # prod_{t=1}^{z} s_t (1-based z; empty product = 1)
        return math.prod(ss[:z])

    o = index * prod(L) - sum(ps[z - 1] * prod(z - 1) for z in range(1, L + 1))
    e = index * prod(L) - sum((1 + ps[z - 1] - ks[z - 1]) * prod(z - 1) for z in range(1, L + 1))
    r = sum((ks[z - 1] - 1) * prod(z - 1) for z in range(1, L + 1)) + 1
    return o, e, r
