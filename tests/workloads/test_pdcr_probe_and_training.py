"""RF-PDCR's gradient probe against Eq. 5-7, and a toy training run showing what
PDCR does: pairs with high affinity end up more similar than pairs with low."""

import pytest
import torch
from torch import nn

from dragsaw.workloads.pdcr import (
    PDCR,
    PDCRConfig,
    affinity,
    foreground_ratios,
    probe_receptive_field,
    receptive_field,
)
from dragsaw.workloads.pdcr.geometry import cell_centres, series_boxes
from dragsaw.workloads.pdcr.sampling import gather_vectors, grid_positions

CHAIN = [(3, 1, 1), (2, 2, 0), (3, 2, 1), (3, 1, 2, 2), (5, 2, 2)]


def chain_module(dims):
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d
    norm = nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d
    return nn.Sequential(
        conv(1, 4, 3, 1, 1), norm(4), nn.ReLU(), pool(2, 2),
        conv(4, 4, 3, 2, 1), nn.BatchNorm2d(4) if dims == 2 else nn.BatchNorm3d(4), nn.ReLU(),
        conv(4, 4, 3, 1, 2, dilation=2), nn.LeakyReLU(), conv(4, 4, 5, 2, 2),
    )


@pytest.mark.parametrize("dims,shape", [(2, (1, 96, 80)), (3, (1, 72, 72, 72))])
def test_probe_agrees_with_eq_5_to_7_on_a_plain_chain(dims, shape):
    torch.manual_seed(0)
    model = chain_module(dims)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    field = probe_receptive_field(model, "9", shape)
    size, stride, offset = receptive_field(CHAIN)
    assert field.size == (size,) * dims and field.stride == (stride,) * dims and field.offset == (offset,) * dims
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # model untouched


def test_probe_refuses_too_small_input():
    with pytest.raises(ValueError, match="too small to probe layer '9'"):
        probe_receptive_field(chain_module(2), "9", (1, 40, 40))


def test_toy_training_pulls_high_affinity_pairs_together():
    """Train a small conv net with the PDCR loss alone on images whose intensity
    carries the label; afterwards the cosine similarity of pairs with w > 0.8 must
    clearly exceed that of pairs with w < 0.2."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    batch, size = 8, 48
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")

    def make_batch():
        labels = torch.zeros(batch, size, size, dtype=torch.int64)
        for b in range(batch):
            cy, cx = torch.randint(8, size - 8, (2,), generator=gen).tolist()
            r = int(torch.randint(6, 14, (1,), generator=gen))
            labels[b][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
        images = labels.float().unsqueeze(1) + 0.3 * torch.randn(batch, 1, size, size, generator=gen)
        return images, labels

    net = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, 1, 1))
    cfg = PDCRConfig(num_classes=2, patch_sizes=(5, 7, 9), sites=[{"layers": ["f"], "n": 64}])
    pdcr = PDCR(cfg, {"f": 32})
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def similarity_gap():
        images, labels = make_batch()
        with torch.no_grad():
            feat = net(images)
        pos = grid_positions(144, (24, 24)).expand(batch, -1, -1)
        v = nn.functional.normalize(gather_vectors(feat, pos), dim=-1)
        s = v @ v.transpose(1, 2)
        boxes = series_boxes(cell_centres(pos, (24, 24), (size, size)), (7,))[0]
        w = affinity(*(2 * [foreground_ratios(labels, 2, boxes)]))
        return float(s[w > 0.8].mean()), float(s[w < 0.2].mean())

    high0, low0 = similarity_gap()
    for _ in range(60):
        images, labels = make_batch()
        pdcr.record("f", net(images))
        loss = pdcr(labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    high, low = similarity_gap()
    assert high - low > 0.5, (high0, low0, high, low)
    assert high - low > (high0 - low0) + 0.3, (high0, low0, high, low)


def test_probe_measures_max_pool_blocks_right():
    """A VGG-like block ending in a max-pool: the probe sees the pooling window whole (its
    copy pools by average), so stride and offset match Eq. 5-7 at any input size."""
    block = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
                          nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2))
    size, stride, offset = receptive_field([(3, 1, 1), (2, 2, 0), (3, 1, 1), (2, 2, 0)])
    for side in (48, 96):
        field = probe_receptive_field(block, "5", (1, side, side))
        assert field.size == (size, size) and field.stride == (stride, stride) and field.offset == (offset, offset)
