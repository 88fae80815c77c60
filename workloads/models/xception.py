"""Aligned Xception-65, the encoder of DeepLabV3+ (Chen et al., ECCV 2018, Sec. 3.2).

Changes from the original Xception, as in DeepLabV3+: 16 middle-flow blocks instead of 8,
every max pooling replaced by a strided depthwise-separable convolution (so the stride
can become a dilation for a chosen output stride), and batch norm after each depthwise
convolution.

Flows and shapes for an input (B, C_in, H, W), output stride 16, width 1:

    stem    conv3x3 s2 (32) -> conv3x3 (64)             (B,   64, H/2,  W/2)
    entry1  block 128, 128, 128 (s2)                    (B,  128, H/4,  W/4)   low-level features
    entry2  block 256, 256, 256 (s2)                    (B,  256, H/8,  W/8)
    entry3  block 728, 728, 728 (s2)                    (B,  728, H/16, W/16)
    middle  16 x block 728, 728, 728 (identity skip)    (B,  728, H/16, W/16)
    exit    block 728, 1024, 1024 -> sep 1536, 1536, 2048 (dilation 2)
                                                        (B, 2048, H/16, W/16)

At output stride 8, entry3 keeps stride 1 and the later flows dilate twice as much.
"""

from __future__ import annotations

import torch
from torch import nn

from dragsaw.workloads.models._layers import scaled


class SeparableConv2d(nn.Sequential):
    """Depthwise k x k conv (dilated, strided) -> BN -> pointwise 1x1 conv -> BN.
    (B, cin, H, W) -> (B, cout, H / stride, W / stride). No activation: Xception blocks
    put the ReLU before each separable conv (pre-activation)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv2d(cin, cin, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                      dilation=dilation, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )


class XceptionBlock(nn.Module):
    """Three (ReLU -> separable conv) units plus a shortcut; the last unit carries the stride.

    channels: outputs of the three units. The shortcut is the identity when shape is kept,
    else a strided 1x1 conv + BN. relu_first=False skips the first ReLU (its input is
    already rectified). (B, cin, H, W) -> (B, channels[-1], H / stride, W / stride).
    """

    def __init__(self, cin: int, channels: tuple[int, int, int], stride: int = 1, dilation: int = 1,
                 relu_first: bool = True):
        super().__init__()
        units, c = [], cin
        for i, cout in enumerate(channels):
            if i > 0 or relu_first:
                # not in place for the first unit: the shortcut still reads the block input
                units.append(nn.ReLU(inplace=i > 0))
            units.append(SeparableConv2d(c, cout, stride=stride if i == len(channels) - 1 else 1,
                                         dilation=dilation))
            c = cout
        self.units = nn.Sequential(*units)
        if stride == 1 and cin == c:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, c, 1, stride=stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(x) + self.shortcut(x)


class ExitFlow(nn.Module):
    """Xception exit flow: block (728 -> 728, 1024, 1024, no stride at output stride 16) then
    three separable convs 1536, 1536, 2048, each followed by ReLU, at ``dilation``.
    (B, 728w, h, w) -> (B, 2048w, h, w)."""

    def __init__(self, cin: int, width: float, block_dilation: int, dilation: int):
        super().__init__()
        c1024, c1536, c2048 = (scaled(c, width) for c in (1024, 1536, 2048))
        self.block = XceptionBlock(cin, (cin, c1024, c1024), dilation=block_dilation)
        convs, c = [], c1024
        for cout in (c1536, c1536, c2048):
            convs += [SeparableConv2d(c, cout, dilation=dilation), nn.ReLU(inplace=True)]
            c = cout
        self.convs = nn.Sequential(*convs)
        self.out_channels = c2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The block output is rectified first, as between every Xception unit.
        return self.convs(torch.relu(self.block(x)))


class AlignedXception65(nn.Module):
    """The encoder. forward(x: (B, C_in, H, W)) -> dict of the flows' outputs:
    ``low`` (entry1, stride 4) and ``out`` (exit flow, stride ``output_stride``).

    Stage modules (each runs once per forward): ``stem``, ``entry1``, ``entry2``,
    ``middle``, ``exit``; ``channels`` and ``strides`` give their outputs.
    """

    def __init__(self, in_channels: int, width: float = 1.0, output_stride: int = 16, middle_blocks: int = 16):
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"`output_stride` must be 8 or 16, but got {output_stride!r}")
        c32, c64, c128, c256, c728 = (scaled(c, width) for c in (32, 64, 128, 256, 728))
        # At output stride 8 entry3 keeps the resolution and every later conv dilates by 2 more.
        s3, rate = (2, 1) if output_stride == 16 else (1, 2)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c32), nn.ReLU(inplace=True),
            nn.Conv2d(c32, c64, 3, padding=1, bias=False), nn.BatchNorm2d(c64), nn.ReLU(inplace=True),
        )
        self.entry1 = XceptionBlock(c64, (c128, c128, c128), stride=2, relu_first=False)
        self.entry2 = XceptionBlock(c128, (c256, c256, c256), stride=2)
        self.entry3 = XceptionBlock(c256, (c728, c728, c728), stride=s3)
        self.middle = nn.Sequential(*[XceptionBlock(c728, (c728, c728, c728), dilation=rate) for _ in range(middle_blocks)])
        self.exit = ExitFlow(c728, width, block_dilation=rate, dilation=2 * rate)
        self.channels = {"stem": c64, "entry1": c128, "entry2": c256, "middle": c728, "exit": self.exit.out_channels}
        self.strides = {"stem": 2, "entry1": 4, "entry2": 8, "middle": output_stride, "exit": output_stride}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low = self.entry1(self.stem(x))
        out = self.exit(self.middle(self.entry3(self.entry2(low))))
        return {"low": low, "out": out}
