"""UAFR (paper Eq. 13-15) and the SE / CBAM blocks, against slow hand-written references."""

import itertools
import math

import pytest
import torch
from torch import nn

from dragsaw.workloads.uafr import CBAM, UAFR, SqueezeExcitation, normalised_entropy


def _randomise_bn(module):
    """Non-trivial eval-mode BatchNorm so F is not just conv -> ReLU -> conv."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    return module


def _pixels(spatial):
    return itertools.product(*(range(n) for n in spatial))


def _reference_uafr(module, q):
    """Eq. 13-15 in float64, one pixel and one class at a time, log base 2 as the paper has it."""
    module = module.double().eval()
    q = q.double()
    with torch.no_grad():
        fq = module.f(q)  # F(Q): the module's own F
    b, m = fq.shape[:2]
    out = torch.empty_like(q)
    u_map = torch.empty(b, 1, *q.shape[2:], dtype=torch.float64)
    for n in range(b):
        for pix in _pixels(q.shape[2:]):
            z = [fq[(n, k, *pix)].item() for k in range(m)]
            top = max(z)
            e = [math.exp(v - top) for v in z]
            a = [v / sum(e) for v in e]                                      # Eq. 13
            h = -sum(p * math.log2(p) for p in a if p > 0)
            u = h / math.log2(m) if m > 1 else 0.0                           # Eq. 14
            u_map[(n, 0, *pix)] = u
            for c in range(q.shape[1]):
                out[(n, c, *pix)] = q[(n, c, *pix)].item() * (1 + (1 - u))  # Eq. 15
    return out, u_map


CASES = [  # channels, num_maps, kernel_size, use_f, shape (B, *S)
    (4, 2, 3, True, (2, 5, 6)),
    (3, 5, 5, True, (1, 7, 4)),
    (6, 1, 1, True, (2, 3, 3)),
    (5, 2, 1, True, (1, 4, 5)),
    (4, 4, 3, False, (2, 5, 3)),
    (3, 2, 3, True, (1, 3, 4, 5)),
    (2, 5, 5, True, (2, 3, 3, 3)),
    (3, 1, 3, True, (1, 2, 3, 4)),
    (3, 3, 1, False, (1, 3, 2, 4)),
]


@pytest.mark.parametrize("channels,num_maps,kernel_size,use_f,shape", CASES)
def test_uafr_matches_loop_reference(channels, num_maps, kernel_size, use_f, shape):
    torch.manual_seed(0)
    dims = len(shape) - 1
    module = _randomise_bn(UAFR(channels, num_maps, hidden=5, kernel_size=kernel_size,
                                use_f=use_f, spatial_dims=dims)).double().eval()
    q = 2 * torch.randn(shape[0], channels, *shape[1:], dtype=torch.float64)
    expected, u_ref = _reference_uafr(module, q)
    m = num_maps if use_f else channels
    assert module.num_maps == m
    assert module.probabilities(q).shape == (shape[0], m, *shape[1:])
    ones = torch.ones(shape[0], *shape[1:], dtype=torch.float64)
    torch.testing.assert_close(module.probabilities(q).sum(1), ones)
    torch.testing.assert_close(module.uncertainty(q), u_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(module(q), expected, rtol=1e-10, atol=1e-12)
    assert module(q).shape == q.shape
    if m > 1:  # a case where every pixel is certain or uniform would not test Eq. 14
        assert 0.05 < u_ref.mean().item() < 0.999
    # float32 forward agrees with the float64 reference too
    torch.testing.assert_close(module.float()(q.float()), expected.float(), rtol=1e-4, atol=1e-5)


def test_f_structure():
    f = UAFR(4, num_maps=3, hidden=7, kernel_size=5, spatial_dims=3).f
    assert [type(layer) for layer in f] == [nn.Conv3d, nn.BatchNorm3d, nn.ReLU, nn.Conv3d]
    assert f[0].bias is None and f[0].kernel_size == (5, 5, 5) and f[0].padding == (2, 2, 2)
    assert (f[0].in_channels, f[0].out_channels) == (4, 7)
    assert (f[3].out_channels, f[3].kernel_size) == (3, (1, 1, 1))
    assert isinstance(UAFR(4, use_f=False).f, nn.Identity)


def test_uniform_gives_identity():
    torch.manual_seed(0)
    base = torch.randn(2, 1, 4, 4)
    q = base.expand(2, 5, 4, 4).clone()  # equal logits in every channel -> A uniform
    module = UAFR(5, use_f=False)
    torch.testing.assert_close(module.uncertainty(q), torch.ones(2, 1, 4, 4))
    torch.testing.assert_close(module(q), q)
    uniform = torch.full((1, 7, 2, 2), 1 / 7)
    torch.testing.assert_close(normalised_entropy(uniform), torch.ones(1, 1, 2, 2))


def test_certain_gives_double():
    module = UAFR(3, num_maps=4).eval()
    nn.init.zeros_(module.f[3].weight)
    with torch.no_grad():
        module.f[3].bias.copy_(torch.tensor([0.0, 1e4, 0.0, 0.0]))  # A one-hot at every pixel
    q = torch.randn(2, 3, 5, 5)
    assert torch.equal(module.probabilities(q).argmax(1), torch.ones(2, 5, 5, dtype=torch.long))
    torch.testing.assert_close(module.uncertainty(q), torch.zeros(2, 1, 5, 5))
    torch.testing.assert_close(module(q), 2 * q)
    one_hot = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        assert normalised_entropy(one_hot.to(dtype)).item() == 0.0, dtype  # float16 gave NaN


def test_hand_computed_two_maps():
    # A = (1/4, 3/4): H2 = 2 - (3/4) log2 3 = 0.8112781244591328 bits, M = 2 -> u = H2
    q = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64).view(1, 2, 1, 1)
    module = UAFR(2, use_f=False)
    expected = torch.tensor([0.25, 0.75], dtype=torch.float64)
    torch.testing.assert_close(module.probabilities(q).flatten(), expected)
    assert module.uncertainty(q).item() == pytest.approx(0.8112781244591328, rel=1e-12)
    torch.testing.assert_close(module(q).flatten(), q.flatten() * (2 - 0.8112781244591328))


def test_single_map_is_certain():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 4, 4)
    for module in (UAFR(3, num_maps=1), UAFR(1, use_f=False)):
        x = q[:, :module.channels]
        assert torch.equal(module.uncertainty(x), torch.zeros(2, 1, 4, 4))
        torch.testing.assert_close(module(x), 2 * x)


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4, 1e30])
def test_uncertainty_in_unit_interval_and_finite_grads(scale):
    torch.manual_seed(0)
    for module in (UAFR(4, num_maps=5, kernel_size=3), UAFR(4, use_f=False),
                   UAFR(4, num_maps=3, spatial_dims=3)):
        shape = (2, 4, 6, 6) if module.spatial_dims == 2 else (2, 4, 3, 4, 4)
        q = (scale * torch.randn(shape)).requires_grad_()
        u = module.uncertainty(q)
        assert torch.isfinite(u).all()
        assert u.min() >= 0 and u.max() <= 1 + 1e-6
        out = module(q)
        assert torch.isfinite(out).all()
        (out.double() / scale).square().mean().backward()  # scaled so large inputs keep finite loss
        grads = [q.grad] + [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert q.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs,shape", [
    ({"channels": 3, "num_maps": 3, "hidden": 4, "kernel_size": 3}, (1, 3, 4, 4)),
    ({"channels": 2, "num_maps": 2, "hidden": 3, "kernel_size": 1, "spatial_dims": 3},
     (1, 2, 2, 3, 3)),
    ({"channels": 3, "use_f": False}, (2, 3, 3, 3)),
])
def test_gradcheck(kwargs, shape):
    torch.manual_seed(0)
    module = _randomise_bn(UAFR(**kwargs)).double().eval()
    q = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (q,), eps=1e-6, atol=1e-5)


def test_uafr_bad_inputs():
    module = UAFR(4)
    with pytest.raises(ValueError, match=r"`q` must have C=4 channels.*\(2, 3, 5, 5\)"):
        module(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"`q` must have 4 dimensions.*\(2, 4, 5\)"):
        module(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="`q` must have 5 dimensions"):
        UAFR(4, spatial_dims=3)(torch.randn(2, 4, 5, 5))
    with pytest.raises(TypeError, match="`q` must be a floating-point tensor"):
        module(torch.ones(1, 4, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="`kernel_size` must be odd.*got 4"):
        UAFR(4, kernel_size=4)
    with pytest.raises(ValueError, match="`spatial_dims` must be 2 or 3.*got 4"):
        UAFR(4, spatial_dims=4)
    for bad in (4.0, "4", True, 0):
        with pytest.raises(ValueError, match="`channels` must be an int >= 1"):
            UAFR(bad)
    with pytest.raises(ValueError, match="`num_maps` must be an int >= 1, but got 0"):
        UAFR(4, num_maps=0)
    with pytest.raises(ValueError, match="`hidden` must be an int >= 1"):
        UAFR(4, hidden=2.5)


def _mlp(mlp, v):  # two Linear layers with a ReLU between, by hand: W2 relu(W1 v + b1) + b2
    return mlp[2].weight @ torch.relu(mlp[0].weight @ v + mlp[0].bias) + mlp[2].bias


def _conv_same(x, weight, bias):
    """Hand-written 'same' cross-correlation of one sample (Cin, *S) with weight (1, Cin, *K)."""
    pad = weight.shape[2] // 2
    xp = nn.functional.pad(x, [pad] * (2 * (x.ndim - 1)))
    out = torch.full(x.shape[1:], bias.item(), dtype=x.dtype)
    for offset in _pixels(weight.shape[2:]):
        window = xp[(slice(None), *(slice(o, o + n) for o, n in zip(offset, x.shape[1:])))]
        out += (weight[(0, slice(None), *offset)].view(-1, *[1] * len(offset)) * window).sum(0)
    return out


def _reference_se(module, x):
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        gate = torch.sigmoid(_mlp(module.mlp, x[n].flatten(1).mean(1)))
        out[n] = x[n] * gate.view(-1, *[1] * (x.ndim - 2))
    return out


def _reference_cbam(module, x):
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        flat = x[n].flatten(1)
        gate = torch.sigmoid(_mlp(module.mlp, flat.mean(1)) + _mlp(module.mlp, flat.max(1).values))
        y = x[n] * gate.view(-1, *[1] * (x.ndim - 2))
        maps = torch.stack([y.mean(0), y.max(0).values])  # [mean over C; max over C]
        conv = module.spatial
        out[n] = y * torch.sigmoid(_conv_same(maps, conv.weight, conv.bias))
    return out


@pytest.mark.parametrize("shape", [(2, 8, 5, 6), (2, 8, 3, 4, 5)])
def test_se_and_cbam_match_reference(shape):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64)
    dims = len(shape) - 2
    se = SqueezeExcitation(8, reduction=2, spatial_dims=dims).double()
    cbam = CBAM(8, reduction=2, kernel_size=3, spatial_dims=dims).double()
    assert se.mlp[0].out_features == 4 and cbam.mlp[0].out_features == 4
    assert cbam.spatial.kernel_size == (3,) * dims
    with torch.no_grad():
        for module, reference in ((se, _reference_se), (cbam, _reference_cbam)):
            y = module(x)
            assert y.shape == x.shape
            torch.testing.assert_close(y, reference(module, x), rtol=1e-12, atol=1e-12)
            assert not torch.allclose(y, x)
    small = torch.randn(1, 8, *[3] * dims, dtype=torch.float64, requires_grad=True)
    for module in (se, cbam):
        assert torch.autograd.gradcheck(module, (small,), fast_mode=True)
    assert SqueezeExcitation(3, reduction=16).mlp[0].out_features == 1  # hidden = max(1, C // r)
    assert CBAM(4)(torch.randn(1, 4, 5, 5)).shape == (1, 4, 5, 5)


def test_se_and_cbam_bad_args():
    for cls in (SqueezeExcitation, CBAM):
        for bad in (2.0, 0, True):
            with pytest.raises(ValueError, match="`channels` must be an int >= 1"):
                cls(bad)
        with pytest.raises(ValueError, match="`reduction` must be an int >= 1, but got 0"):
            cls(8, reduction=0)
        with pytest.raises(ValueError, match="`spatial_dims` must be 2 or 3.*got 4"):
            cls(8, spatial_dims=4)
    with pytest.raises(ValueError, match="`kernel_size` must be odd.*got 6"):
        CBAM(8, kernel_size=6)
    with pytest.raises(ValueError, match="`kernel_size` must be an int >= 1"):
        CBAM(8, kernel_size=0)
