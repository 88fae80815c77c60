"""The PDCR plug-in end to end: sampling, patches, ratios, affinities and loss
composed from the slow references, for every variant, 2D and 3D."""

import pytest
import torch

from dragsaw.workloads.pdcr import PDCR, PDCRConfig, grid_positions, random_positions
from dragsaw.workloads.pdcr.sampling import gather_vectors

from .pdcr_reference import affinity_reference, loss_reference, ratio_reference


def centres_reference(positions, feat_size, image_size):
    """Centre pixel of each feature cell: floor((i + 1/2) * image / feature) per axis."""
    return [[int((p + 0.5) * img / f) for p, f, img in zip(pos, feat_size, image_size)] for pos in positions]


def site_reference(cfg, site, feats, labels, projections=None):
    """Eq. 12 for one site from first principles (loops, float64)."""
    image = tuple(labels.shape[1:])
    batch = labels.shape[0]
    sizes = site.get("patch_sizes") or cfg.get("patch_sizes", (5, 7, 9))
    per_layer = []
    for k, name in enumerate(site["layers"]):
        feat = feats[name].double()
        size = tuple(feat.shape[2:])
        pos = grid_positions(site["n"], size).tolist()
        vecs = torch.stack([torch.stack([feat[(b, slice(None), *p)] for p in pos]) for b in range(batch)])
        if projections is not None:
            vecs = projections[k](vecs)
        if site.get("patch") == "receptive_field":
            rf_size, rf_stride, rf_offset = site["rf"]
            starts = [[p_ * rf_stride + rf_offset for p_ in p] for p in pos]
            series = [[[[s, s + rf_size - 1] for s in st] for st in starts]]
        else:
            cs = centres_reference(pos, size, image)
            series = [[[[c - kk // 2, c - kk // 2 + kk - 1] for c in cen] for cen in cs] for kk in sizes]
        boxes = [torch.tensor(bx).unsqueeze(0).expand(batch, -1, -1, -1) for bx in series]
        largest = boxes[max(range(len(boxes)), key=lambda i: series[i][0][0][1] - series[i][0][0][0])]
        if cfg.get("position_encoding", True):
            enc = largest.double() / torch.tensor(image, dtype=torch.float64).view(1, 1, -1, 1)
            vecs = torch.cat([vecs, enc.flatten(2)], dim=-1)
        per_layer.append((vecs, boxes))
    (v_a, boxes_a), (v_b, boxes_b) = per_layer[0], per_layer[-1]
    m = cfg["num_classes"]
    phis_a = [ratio_reference(labels, m, bx) for bx in boxes_a]
    phis_b = [ratio_reference(labels, m, bx) for bx in boxes_b]
    if cfg.get("series") == "ratio_first":
        w = affinity_reference(sum(phis_a) / len(phis_a), sum(phis_b) / len(phis_b))
        return loss_reference(v_a, v_b, w, cfg.get("tau", 1.0))
    losses = [loss_reference(v_a, v_b, affinity_reference(pa, pb), cfg.get("tau", 1.0))
              for pa, pb in zip(phis_a, phis_b)]
    return sum(losses) / len(losses)


def blob_labels(batch, spatial, classes, seed):
    gen = torch.Generator().manual_seed(seed)
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in spatial], indexing="ij")
    labels = torch.zeros(batch, *spatial, dtype=torch.int64)
    for b in range(batch):
        for c in range(1, classes):
            centre = [float(torch.rand(1, generator=gen)) * s for s in spatial]
            radius = 0.2 * min(spatial) + 0.2 * min(spatial) * float(torch.rand(1, generator=gen))
            dist = sum((g - c0) ** 2 for g, c0 in zip(grids, centre))
            labels[b][dist < radius ** 2] = c
    return labels


def run(cfg_dict, feats, labels):
    channels = {name: f.shape[1] for name, f in feats.items()}
    pdcr = PDCR(PDCRConfig.model_validate(cfg_dict), channels).double()
    for name, f in feats.items():
        pdcr.record(name, f)
    return pdcr, pdcr(labels)


@pytest.mark.parametrize("variant", [{}, {"tau": 0.2}, {"position_encoding": False}, {"series": "ratio_first"},
                                     {"patch_sizes": (3, 8)}])
def test_2d_sites_match_reference(variant):
    torch.manual_seed(0)
    labels = blob_labels(2, (32, 24), 3, seed=1)
    feats = {"a": torch.randn(2, 5, 16, 12, dtype=torch.float64), "b": torch.randn(2, 6, 8, 6, dtype=torch.float64)}
    cfg = {"num_classes": 3, "sites": [{"layers": ["a"], "n": 10}, {"layers": ["b"], "n": 7},
                                       {"layers": ["a", "b"], "n": 6, "projection": 4}], **variant}
    pdcr, loss = run(cfg, feats, labels)
    expected = sum(site_reference(cfg, s, feats, labels) for s in cfg["sites"][:2])
    expected += site_reference(cfg, cfg["sites"][2], feats, labels, projections=list(pdcr.projections["2"]))
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_3d_site_matches_reference():
    labels = blob_labels(2, (12, 16, 16), 3, seed=2)
    feats = {"x": torch.randn(2, 4, 6, 8, 8, dtype=torch.float64), "y": torch.randn(2, 3, 3, 4, 4, dtype=torch.float64)}
    cfg = {"num_classes": 3, "patch_sizes": (3, 5), "sites": [{"layers": ["x"], "n": 20},
                                                              {"layers": ["x", "y"], "n": 9, "projection": 5}]}
    pdcr, loss = run(cfg, feats, labels)
    expected = site_reference(cfg, cfg["sites"][0], feats, labels)
    expected += site_reference(cfg, cfg["sites"][1], feats, labels, projections=list(pdcr.projections["1"]))
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_rf_site_with_declared_chain_matches_reference():
    labels = blob_labels(2, (32, 32), 2, seed=3)
    feats = {"enc": torch.randn(2, 4, 8, 8, dtype=torch.float64)}
    chain = [(3, 2, 1), (3, 1, 1), (3, 2, 1)]  # size 11, stride 4, offset -5: borders clip
    cfg = {"num_classes": 2, "sites": [{"layers": ["enc"], "n": 12, "patch": "receptive_field",
                                        "receptive_field": chain}]}
    _, loss = run(cfg, feats, labels)
    site = dict(cfg["sites"][0], rf=(11, 4, -5))
    assert loss.item() == pytest.approx(site_reference(cfg, site, feats, labels), rel=1e-10)


def test_weight_variants():
    labels = blob_labels(1, (16, 16), 2, seed=4)
    feat = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    base = {"num_classes": 2, "position_encoding": False, "sites": [{"layers": ["f"], "n": 9}]}
    pos = grid_positions(9, (8, 8))
    v = torch.stack([feat[0, :, p[0], p[1]] for p in pos]).unsqueeze(0)
    _, constant = run({**base, "affinity": "constant", "constant": 0.3}, {"f": feat}, labels)
    assert constant.item() == pytest.approx(loss_reference(v, v, torch.full((1, 9, 9), 0.3)), rel=1e-10)
    _, rigid = run({**base, "affinity": "rigid"}, {"f": feat}, labels)
    assert rigid.item() == pytest.approx(loss_reference(v, v, torch.eye(9).unsqueeze(0)), rel=1e-10)
    centres = centres_reference(pos.tolist(), (8, 8), (16, 16))
    lab = torch.tensor([int(labels[0, c[0], c[1]]) for c in centres])
    _, centre = run({**base, "affinity": "centre_label"}, {"f": feat}, labels)
    w = (lab.view(-1, 1) == lab.view(1, -1)).double().unsqueeze(0)
    assert centre.item() == pytest.approx(loss_reference(v, v, w), rel=1e-10)


def dice_reference(labels, box_i, box_j, m):
    """Eq. 16 (as a similarity): mean over classes of the Dice of two same-size patches."""
    total = 0.0
    for cls in range(m):
        inter = size_i = size_j = 0
        for dy in range(box_i[0][1] - box_i[0][0] + 1):
            for dx in range(box_i[1][1] - box_i[1][0] + 1):
                def value(box):
                    y, x = box[0][0] + dy, box[1][0] + dx
                    inside = 0 <= y < labels.shape[0] and 0 <= x < labels.shape[1]
                    return inside and int(labels[y, x]) == cls
                a, b = value(box_i), value(box_j)
                inter += a and b
                size_i += a
                size_j += b
        total += 1.0 if size_i + size_j == 0 else 2 * inter / (size_i + size_j)
    return total / m


def test_dice_affinity_variant():
    labels = blob_labels(1, (16, 16), 2, seed=5)
    feat = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    cfg = {"num_classes": 2, "position_encoding": False, "affinity": "dice", "patch_sizes": (3, 5),
           "sites": [{"layers": ["f"], "n": 6}]}
    _, loss = run(cfg, {"f": feat}, labels)
    pos = grid_positions(6, (8, 8)).tolist()
    v = torch.stack([feat[0, :, p[0], p[1]] for p in pos]).unsqueeze(0)
    centres = centres_reference(pos, (8, 8), (16, 16))
    losses = []
    for k in (3, 5):
        boxes = [[[c - k // 2, c - k // 2 + k - 1] for c in cen] for cen in centres]
        w = torch.tensor([[dice_reference(labels[0], bi, bj, 2) for bj in boxes] for bi in boxes]).unsqueeze(0)
        losses.append(loss_reference(v, v, w))
    assert loss.item() == pytest.approx(sum(losses) / 2, rel=1e-10)


def test_grid_sampling_is_distinct_spread_and_fixed():
    for n, size in [(128, (128, 128)), (64, (64, 64)), (32, (32, 32)), (7, (3, 5)), (15, (3, 5)), (50, (4, 8, 8))]:
        pos = grid_positions(n, size)
        assert pos.shape == (n, len(size))
        assert len({tuple(p) for p in pos.tolist()}) == n
        assert bool((pos >= 0).all()) and all(bool((pos[:, k] < s).all()) for k, s in enumerate(size))
        torch.testing.assert_close(pos, grid_positions(n, size))
    pos = grid_positions(64, (64, 64))  # spread: every quadrant gets a quarter of the points
    quadrant = (pos[:, 0] >= 32).long() * 2 + (pos[:, 1] >= 32).long()
    assert torch.bincount(quadrant).tolist() == [16, 16, 16, 16]
    with pytest.raises(ValueError, match=r"`n` \(16\) must be at most the number of feature positions 15"):
        grid_positions(16, (3, 5))


def test_random_sampling_distinct_per_image_and_changes():
    gen = torch.Generator().manual_seed(0)
    first = random_positions(4, 30, (6, 7), generator=gen)
    second = random_positions(4, 30, (6, 7), generator=gen)
    for b in range(4):
        assert len({tuple(p) for p in first[b].tolist()}) == 30
    assert not torch.equal(first, second)
    assert not torch.equal(first[0], first[1])


def test_gather_vectors_picks_the_sampled_vectors_and_routes_gradients():
    feat = torch.randn(2, 3, 5, 6, 4, requires_grad=True)
    pos = random_positions(2, 7, (5, 6, 4), generator=torch.Generator().manual_seed(1))
    v = gather_vectors(feat, pos)
    assert v.shape == (2, 7, 3)
    for b in range(2):
        for n in range(7):
            torch.testing.assert_close(v[b, n], feat[(b, slice(None), *pos[b, n].tolist())])
    weights = torch.randn(2, 7, 3)
    (grad,) = torch.autograd.grad((v * weights).sum(), feat)
    expected = torch.zeros_like(feat)
    for b in range(2):
        for n in range(7):
            expected[(b, slice(None), *pos[b, n].tolist())] += weights[b, n]
    torch.testing.assert_close(grad, expected)


def test_random_sampling_runs_and_differs_per_step():
    labels = blob_labels(2, (16, 16), 2, seed=6)
    feat = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    cfg = PDCRConfig(num_classes=2, sampling="random", sites=[{"layers": ["f"], "n": 20}])
    pdcr = PDCR(cfg, {"f": 4})
    losses = []
    for _ in range(3):
        pdcr.record("f", feat)
        losses.append(float(pdcr(labels)))
    assert len(set(losses)) == 3


@pytest.mark.parametrize("change,match", [
    (lambda c, f, l: (c, {"f": torch.randn(2, 4, 2, 2)}, l), r"n=9 exceeds the 4 positions of layer 'f'"),
    (lambda c, f, l: (c, f, l + 2), r"`labels` must hold class indices in \[0, 1\]"),
    (lambda c, f, l: (c, {}, l), r"no features recorded for layers \['f'\]"),
    (lambda c, f, l: (c, {"f": torch.randn(2, 4, 8)}, l), r"layer 'f' output \(2, 4, 8\) must be \(B=2, C, \*S\)"),
])
def test_plugin_rejects_bad_input(change, match):
    cfg = PDCRConfig(num_classes=2, sites=[{"layers": ["f"], "n": 9}])
    cfg, feats, labels = change(cfg, {"f": torch.randn(2, 4, 8, 8)}, torch.zeros(2, 16, 16, dtype=torch.int64))
    pdcr = PDCR(cfg, {"f": 4})
    for name, f in feats.items():
        pdcr.record(name, f)
    with pytest.raises((ValueError, RuntimeError), match=match):
        pdcr(labels)
    assert not pdcr._features  # nothing held over to the next step


@pytest.mark.parametrize("cfg,match", [
    ({"num_classes": 2, "sites": []}, "at least 1 item"),
    ({"num_classes": 2, "sites": [{"layers": ["a", "b"], "n": 4, "patch": "receptive_field"}]}, "cross-layer"),
    ({"num_classes": 2, "sites": [{"layers": ["a"], "n": 4}], "series": "ratio_first", "affinity": "dice"},
     "ratio_first"),
    ({"num_classes": 2, "sites": [{"layers": ["a"], "n": 4}], "sampling": "grd"}, "sampling"),
    ({"num_classes": 2, "sites": [{"layers": ["a"], "n": 4}], "tua": 1.0}, "tua"),
    ({"num_classes": 2, "sites": [{"layers": ["a"], "n": 4}, {"layers": ["a"], "n": 8}]}, "listed twice"),
    ({"num_classes": 2, "sites": [{"layers": ["a"], "n": 4}], "patch_sizes": [5, 5]}, "distinct"),
])
def test_config_errors_name_the_problem(cfg, match):
    with pytest.raises(ValueError, match=match):
        PDCRConfig.model_validate(cfg)


class _LargestAllocation(torch.utils._python_dispatch.TorchDispatchMode):
    """Largest tensor an op allocates (views of inputs excluded)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage().data_ptr() for a in torch.utils._pytree.tree_leaves((args, kwargs))
                  if isinstance(a, torch.Tensor)}
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.largest = max(self.largest, t.numel())
        return out


def test_memory_is_o_b_n_squared_not_o_b_c_n_squared():
    b, c, n, p = 2, 512, 64, 3
    cfg = PDCRConfig(num_classes=2, patch_sizes=(5, 7, 9), sites=[{"layers": ["f"], "n": n}])
    pdcr = PDCR(cfg, {"f": c})
    pdcr.record("f", torch.randn(b, c, 16, 16))
    labels = blob_labels(b, (32, 32), 2, seed=7)
    mode = _LargestAllocation()
    with mode:
        pdcr(labels)
    allowed = max(p * b * n * n, b * (c + 4) * n)  # pair matrices of the P sizes; the sampled vectors
    assert mode.largest <= allowed < b * c * n * n
