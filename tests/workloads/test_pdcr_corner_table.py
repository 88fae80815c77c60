"""The corner table (class counts kept only at the boxes' edges, the 3D fast path of
foreground_ratios and of the plug-in) against the float64 loop reference of Eq. 4 and
against direct counts: exact integers, boxes clipped at every border, sites sharing one table."""

import pytest
import torch

from dragsaw.workloads.pdcr import foreground_ratios, grid_positions, random_positions
from dragsaw.workloads.pdcr.geometry import ReceptiveField, field_boxes
from dragsaw.workloads.pdcr.ratios import (
    CornerTable,
    box_counts,
    box_table,
    clip_boxes,
    corner_table,
    integral_image,
)

from .pdcr_reference import ratio_reference
from .test_pdcr_equations import random_boxes
from .test_pdcr_plugin import blob_labels, run, site_reference


def direct_counts(labels, num_classes, boxes):
    """Class counts of each clipped box by slicing the labels: (B, N, M) int64."""
    spatial = labels.shape[1:]
    out = torch.zeros(*boxes.shape[:2], num_classes, dtype=torch.int64)
    for b in range(boxes.shape[0]):
        for n in range(boxes.shape[1]):
            box = tuple(slice(max(int(boxes[b, n, k, 0]), 0), min(int(boxes[b, n, k, 1]) + 1, s))
                        for k, s in enumerate(spatial))
            out[b, n] = torch.bincount(labels[b][box].reshape(-1), minlength=num_classes)
    return out


@pytest.mark.parametrize("spatial,classes", [((9, 11, 7), 4), ((16, 12, 20), 3), ((6, 6, 6), 2),
                                             ((13, 17), 3)])
def test_corner_table_matches_loop_reference_with_boxes_clipped_at_borders(spatial, classes):
    gen = torch.Generator().manual_seed(sum(spatial) + classes)
    labels = torch.randint(0, classes, (2, *spatial), generator=gen)
    boxes = random_boxes(gen, 2, 30, spatial, max_size=8, overhang=5)
    clipped = [(boxes[..., k, 0] < 0) | (boxes[..., k, 1] >= s) for k, s in enumerate(spatial)]
    assert all(bool(c.any()) for c in clipped), "every border must clip some box"
    start, stop = clip_boxes(boxes, spatial)
    table = corner_table(labels, classes, start, stop)
    counts = box_counts(table, start, stop)
    assert counts.dtype == torch.int64
    assert torch.equal(counts, direct_counts(labels, classes, boxes))
    phi = counts.double() / counts.sum(-1, keepdim=True)
    torch.testing.assert_close(phi, ratio_reference(labels, classes, boxes), rtol=0, atol=1e-12)
    # The table holds exactly the full integral image's entries at the boxes' edges.
    full = integral_image(labels, classes)
    assert torch.equal(table.counts, full[(slice(None), slice(None), *torch.meshgrid(*table.coords, indexing="ij"))])


@pytest.mark.parametrize("chunk", [1, 150, 10**6])  # a row at a time, 3 rows of 7 x 7 (uneven), all at once
def test_corner_table_is_the_same_whatever_the_slab_size(monkeypatch, chunk):
    from dragsaw.workloads.pdcr import ratios

    gen = torch.Generator().manual_seed(11)
    labels = torch.randint(0, 3, (2, 10, 7, 7), generator=gen)
    boxes = random_boxes(gen, 2, 25, (10, 7, 7), max_size=6, overhang=3)
    start, stop = clip_boxes(boxes, (10, 7, 7))
    monkeypatch.setattr(ratios, "CHUNK_PIXELS", chunk)
    assert torch.equal(box_counts(corner_table(labels, 3, start, stop), start, stop),
                       direct_counts(labels, 3, boxes))


def test_foreground_ratios_takes_the_corner_path_for_receptive_fields_and_matches_reference():
    labels = blob_labels(2, (24, 20, 28), 4, seed=5)
    field = ReceptiveField((9, 7, 11), (4, 4, 4), (-4, -3, -5))  # borders clip on every axis
    boxes = field_boxes(random_positions(2, 12, (6, 5, 7), generator=torch.Generator().manual_seed(0)), field)
    assert bool((boxes[..., 0] < 0).any()) and bool((boxes[..., 1] >= torch.tensor([24, 20, 28])).any())
    assert isinstance(box_table(labels, 4, *clip_boxes(boxes, (24, 20, 28))), CornerTable)
    fast = foreground_ratios(labels, 4, boxes, dtype=torch.float64)
    torch.testing.assert_close(fast, ratio_reference(labels, 4, boxes), rtol=0, atol=1e-12)


def test_box_table_falls_back_to_the_full_table_when_boxes_are_everywhere():
    labels = torch.randint(0, 3, (1, 10, 10))
    boxes = torch.stack([torch.arange(10).view(10, 1).expand(10, 2)] * 2, dim=1).unsqueeze(0)  # 1-pixel boxes
    table = box_table(labels, 3, *clip_boxes(boxes, (10, 10)))
    assert isinstance(table, torch.Tensor) and table.shape == (1, 2, 11, 11)


def test_counts_are_exact_integers_on_a_large_volume():
    """2 x 128^3 labels of 4 classes, the RF boxes of the benchmark (23^3 on stride 4, 47^3 on
    stride 8, N = 64 each, sharing one table): a few boxes against a direct count."""
    size, classes = 128, 4
    gen = torch.Generator().manual_seed(7)
    labels = torch.randint(0, classes, (2, size, size, size), generator=gen)
    labels[1, :40] = 3  # a slab of one class: counts far from uniform
    small = field_boxes(grid_positions(64, (32,) * 3).expand(2, -1, -1), ReceptiveField((23,) * 3, (4,) * 3, (-11,) * 3))
    large = field_boxes(random_positions(2, 64, (16,) * 3, generator=gen), ReceptiveField((47,) * 3, (8,) * 3, (-23,) * 3))
    boxes = torch.cat([small, large], dim=1)
    start, stop = clip_boxes(boxes, (size,) * 3)
    table = box_table(labels, classes, start, stop)
    assert isinstance(table, CornerTable) and table.counts.dtype == torch.int32
    counts = box_counts(table, start, stop)
    pick = torch.tensor([0, 5, 21, 63, 64, 80, 127])  # both sites, corners and centre of the lattice
    assert torch.equal(counts[:, pick], direct_counts(labels, classes, boxes[:, pick]))
    assert torch.equal(counts.sum(-1), (stop - start).prod(-1))
    phi = foreground_ratios(labels, classes, boxes, dtype=torch.float64)
    assert torch.equal(phi, counts.double() / (stop - start).prod(-1, keepdim=True).double())


def test_two_3d_rf_sites_share_one_corner_table_and_match_reference(monkeypatch):
    from dragsaw.workloads.pdcr import regularizer

    tables = []
    real = regularizer.box_table

    def spy(*args):
        tables.append(real(*args))
        return tables[-1]

    monkeypatch.setattr(regularizer, "box_table", spy)
    labels = blob_labels(2, (16, 16, 16), 4, seed=4)
    feats = {"s2": torch.randn(2, 4, 8, 8, 8, dtype=torch.float64), "s4": torch.randn(2, 3, 4, 4, 4, dtype=torch.float64)}
    chains = {"s2": [(3, 2, 1), (3, 1, 1)], "s4": [(3, 2, 1), (3, 2, 1), (3, 1, 1)]}  # (7, 2, -3), (15, 4, -7)
    cfg = {"num_classes": 4, "sites": [{"layers": [name], "n": n, "patch": "receptive_field",
                                        "receptive_field": chains[name]} for name, n in (("s2", 8), ("s4", 6))]}
    _, loss = run(cfg, feats, labels)
    assert len(tables) == 1 and isinstance(tables[0], CornerTable)
    rf = {"s2": (7, 2, -3), "s4": (15, 4, -7)}
    expected = sum(site_reference(cfg, dict(site, rf=rf[site["layers"][0]]), feats, labels) for site in cfg["sites"])
    assert loss.item() == pytest.approx(expected, rel=1e-10)
