"""The PDCR equations (Eq. 3-9) against slow float64 references and hand-computed cases."""

import math

import mpmath
import pytest
import torch

from dragsaw.workloads.pdcr import (
    affinity,
    dragsaw_loss,
    foreground_ratios,
    phi_from_counts,
    receptive_field,
)
from dragsaw.workloads.pdcr.ratios import box_counts, clip_boxes, integral_image

from .pdcr_reference import (
    affinity_reference,
    loss_reference,
    ratio_reference,
    receptive_field_reference,
)


def random_boxes(gen, batch, n, spatial, max_size=9, overhang=4):
    """Boxes of random size that may reach past every border but always overlap the image."""
    boxes = torch.empty(batch, n, len(spatial), 2, dtype=torch.int64)
    for axis, size in enumerate(spatial):
        length = torch.randint(1, max_size + 1, (batch, n), generator=gen)
        start = torch.randint(-overhang, size + overhang, (batch, n), generator=gen)
        start = torch.minimum(start, torch.full_like(start, size - 1))
        start = torch.maximum(start, 1 - length)  # keep some overlap
        boxes[..., axis, 0] = start
        boxes[..., axis, 1] = start + length - 1
    return boxes


@pytest.mark.parametrize("spatial,classes", [((13, 17), 2), ((16, 16), 4), ((5, 9, 7), 3), ((6, 6, 6), 2)])
def test_foreground_ratios_match_loop_reference(spatial, classes):
    gen = torch.Generator().manual_seed(len(spatial) * 10 + classes)
    labels = torch.randint(0, classes, (2, *spatial), generator=gen)
    boxes = random_boxes(gen, 2, 40, spatial)
    fast = foreground_ratios(labels, classes, boxes, dtype=torch.float64)
    assert fast.shape == (2, 40, classes)
    torch.testing.assert_close(fast, ratio_reference(labels, classes, boxes), rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.sum(-1), torch.ones(2, 40, dtype=torch.float64))


def test_foreground_ratio_hand_computed_with_clipping():
    labels = torch.tensor([[[0, 1, 1],
                            [0, 0, 1],
                            [2, 2, 2]]])
    boxes = torch.tensor([[[[0, 1], [0, 1]],      # top-left 2x2: three 0s, one 1
                           [[-5, 0], [1, 9]],     # clipped to row 0, cols 1-2: two 1s
                           [[1, 2], [2, 2]],      # column 2, rows 1-2: one 1, one 2
                           [[2, 2], [0, 0]]]])    # single pixel of class 2
    phi = foreground_ratios(labels, 3, boxes)
    expected = torch.tensor([[[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]])
    torch.testing.assert_close(phi, expected)


def test_integral_image_counts_and_last_class_from_area():
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 3, (1, 8, 8), generator=gen)
    table = integral_image(labels, 3)
    assert table.shape == (1, 2, 9, 9) and table.dtype == torch.int32
    boxes = torch.tensor([[[[0, 7], [0, 7]]]])
    counts = box_counts(table, *clip_boxes(boxes, (8, 8)))
    assert counts.tolist() == [[[int((labels == m).sum()) for m in range(3)]]]


def test_phi_variants():
    counts = torch.tensor([[[3, 1]]])
    area = torch.tensor([[8]])  # unclipped box of 8 pixels, 4 of them outside the image
    torch.testing.assert_close(phi_from_counts(counts, area, "ratio"), torch.tensor([[[0.75, 0.25]]]))
    torch.testing.assert_close(phi_from_counts(counts, area, "l1"), torch.tensor([[[0.75, 0.25]]]))
    torch.testing.assert_close(phi_from_counts(counts, area, "l2"), torch.tensor([[[3, 1]]]) / math.sqrt(10))
    torch.testing.assert_close(phi_from_counts(counts, area, "area"), torch.tensor([[[3 / 8, 1 / 8]]]))
    labels = torch.zeros(1, 4, 4, dtype=torch.int64)
    labels[0, :2, :2] = 1
    box = torch.tensor([[[[-2, 1], [-2, 1]]]])  # 4x4 box, only its 2x2 corner inside
    torch.testing.assert_close(foreground_ratios(labels, 2, box, phi="area"), torch.tensor([[[0.0, 0.25]]]))
    with pytest.raises(ValueError, match="`phi` must be one of"):
        foreground_ratios(labels, 2, box, phi="l3")


@pytest.mark.parametrize("bad,match", [
    (lambda l, b: (l.float(), b), "`labels` must hold integers"),
    (lambda l, b: (l[0], b), "`labels` must have 3 or 4 dimensions"),
    (lambda l, b: (l + 5, b), r"`labels` must hold class indices in \[0, 1\]"),
    (lambda l, b: (l, b[..., :1]), r"`boxes` must have shape \(B=2, N, d=2, 2\)"),
    (lambda l, b: (l, b.flip(-1)), "start <= end"),
    (lambda l, b: (l, b + 100), "must overlap the image"),
    (lambda l, b: (l, b.float()), "`boxes` must hold integers"),
])
def test_foreground_ratios_rejects_bad_input(bad, match):
    labels = torch.zeros(2, 8, 8, dtype=torch.int64)
    boxes = torch.tensor([[[0, 3], [2, 5]]]).expand(2, 3, 2, 2).clone()
    with pytest.raises((ValueError, TypeError), match=match):
        bad_labels, bad_boxes = bad(labels, boxes)
        foreground_ratios(bad_labels, 2, bad_boxes)


@pytest.mark.parametrize("n,k,m", [(5, 5, 2), (7, 3, 4), (1, 6, 3)])
def test_affinity_matches_loop_reference(n, k, m):
    gen = torch.Generator().manual_seed(n * k * m)
    phi_a = torch.rand(2, n, m, generator=gen, dtype=torch.float64).softmax(-1)
    phi_b = torch.rand(2, k, m, generator=gen, dtype=torch.float64).softmax(-1)
    w = affinity(phi_a, phi_b)
    torch.testing.assert_close(w, affinity_reference(phi_a, phi_b), rtol=0, atol=1e-12)
    assert bool((w >= 0).all() and (w <= 1).all())


def test_affinity_hand_computed():
    phi_a = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    phi_b = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.75, 0.25]]])
    expected = torch.tensor([[[1.0, 0.0, 0.75], [0.5, 0.5, 0.75]]])
    torch.testing.assert_close(affinity(phi_a, phi_b), expected)
    with pytest.raises(ValueError, match="must agree on B and M"):
        affinity(phi_a, torch.rand(1, 3, 3))


@pytest.mark.parametrize("b,n,k,c,tau", [(1, 4, 4, 3, 1.0), (2, 5, 3, 7, 0.5), (3, 6, 6, 2, 0.07)])
def test_loss_matches_loop_reference(b, n, k, c, tau):
    gen = torch.Generator().manual_seed(b + n + k + c)
    v_a = torch.randn(b, n, c, generator=gen, dtype=torch.float64)
    v_b = v_a if n == k else torch.randn(b, k, c, generator=gen, dtype=torch.float64)
    w = torch.rand(b, n, k, generator=gen, dtype=torch.float64)
    fast = dragsaw_loss(v_a, v_b, w, tau)
    assert fast.ndim == 0
    assert float(fast) == pytest.approx(loss_reference(v_a, v_b, w, tau), rel=1e-12, abs=1e-12)


def test_loss_hand_computed_single_pair():
    # N = K = 1: s = 1, loss = -log(exp(w / tau) / exp((1 - w) / tau)) = (1 - 2w) / tau.
    v = torch.tensor([[[1.0, 2.0, 2.0]]], dtype=torch.float64)
    for w, tau in [(0.25, 1.0), (0.9, 0.1), (0.0, 2.0)]:
        loss = dragsaw_loss(v, v, torch.tensor([[[w]]], dtype=torch.float64), tau)
        assert float(loss) == pytest.approx((1 - 2 * w) / tau, rel=1e-12)


def test_loss_is_stable_for_small_tau():
    gen = torch.Generator().manual_seed(11)
    v_a = torch.randn(1, 6, 4, generator=gen, dtype=torch.float64)
    w = torch.rand(1, 6, 6, generator=gen, dtype=torch.float64)
    tau = 1e-3  # exp(s / tau) overflows float64 without logsumexp
    mpmath.mp.dps = 50
    a = torch.nn.functional.normalize(v_a, dim=-1)[0]
    s = (a @ a.T).tolist()
    total = mpmath.mpf(0)
    for i in range(6):
        den = mpmath.fsum(mpmath.exp(mpmath.mpf(s[i][n]) * (1 - float(w[0, i, n])) / tau) for n in range(6))
        for j in range(6):
            total += -mpmath.log(mpmath.exp(mpmath.mpf(s[i][j]) * float(w[0, i, j]) / tau) / den)
    expected = float(total / 36)
    loss = dragsaw_loss(v_a, v_a, w, tau)
    assert math.isfinite(float(loss))
    assert float(loss) == pytest.approx(expected, rel=1e-9)
    loss32 = dragsaw_loss(v_a.float(), v_a.float(), w.float(), tau)
    assert float(loss32) == pytest.approx(expected, rel=1e-4)


def test_loss_gradcheck():
    gen = torch.Generator().manual_seed(5)
    v_a = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    v_b = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.rand(2, 4, 5, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: dragsaw_loss(a, b, w, 0.3), (v_a, v_b))


@pytest.mark.parametrize("bad,match", [
    (dict(v_a=torch.randn(4, 3)), r"`v_a` must have 3 dimensions"),
    (dict(v_b=torch.randn(2, 5, 4)), r"`v_b` must have shape \(B=2, K, C=3\)"),
    (dict(w=torch.rand(2, 4, 4)), r"`w` must have shape \(B, N, K\) = \(2, 4, 5\)"),
    (dict(tau=0.0), "`tau` must be a number > 0"),
])
def test_loss_rejects_bad_input(bad, match):
    args = dict(v_a=torch.randn(2, 4, 3), v_b=torch.randn(2, 5, 3), w=torch.rand(2, 4, 5), tau=1.0)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        dragsaw_loss(**args)


@pytest.mark.parametrize("layers", [
    [(3, 1, 1)],
    [(7, 2, 3), (3, 2, 1), (3, 1, 1), (3, 2, 1)],
    [(3, 1, 1), (2, 2, 0), (3, 1, 1), (3, 1, 2, 2), (1, 2, 0), (5, 1, 2)],
    [(4, 2, 1), (4, 2, 1)],
])
def test_receptive_field_matches_eq_5_to_7(layers):
    size, stride, offset = receptive_field(layers)
    for index in (0, 1, 5, 12):
        o, e, r = receptive_field_reference(layers, index)
        assert (index * stride + offset, index * stride + offset + size - 1, size) == (o, e, r)


def test_receptive_field_agrees_with_real_convolutions():
    # The field of output pixel i is exactly where a delta impulse response is non-zero.
    layers = [(3, 2, 1), (3, 1, 1), (2, 2, 0), (3, 1, 2, 2)]
    convs = [torch.nn.Conv1d(1, 1, k, s, p, dilation=(l[3] if len(l) == 4 else 1), bias=False)
             for l in layers for (k, s, p) in [l[:3]]]
    for conv in convs:
        torch.nn.init.constant_(conv.weight, 1.0)
    x = torch.ones(1, 1, 64, requires_grad=True)
    y = x
    for conv in convs:
        y = conv(y)
    size, stride, offset = receptive_field(layers)
    i = y.shape[-1] // 2
    (grad,) = torch.autograd.grad(y[0, 0, i], x)
    hit = grad[0, 0].nonzero().flatten()
    assert (int(hit[0]), int(hit[-1])) == (i * stride + offset, i * stride + offset + size - 1)


@pytest.mark.parametrize("bad,match", [
    ([(3, 1)], r"layers\[0\]` must be \(kernel, stride, padding\)"),
    ([(3, 1, 1), (0, 1, 0)], r"layers\[1\]` kernel must be an int >= 1"),
    ([(3, 0, 1)], "stride must be an int >= 1"),
    ([(3, 1, -1)], "padding must be an int >= 0"),
    ("3,1,1", "must be a sequence"),
])
def test_receptive_field_rejects_bad_layers(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        receptive_field(bad)
