"""FCN-8s (Long et al., CVPR 2015) on a VGG-16-like conv encoder, with BatchNorm (the zoo
trains from scratch; there are no ImageNet weights here) and 'same' padding instead of the
original 100-pixel pad and crops.

Shapes for an input (B, C_in, H, W), width 1:

    block1  2 x conv 64  -> max pool      (B,  64, H/2,  W/2)      encoder.1  stride 2
    block2  2 x conv 128 -> max pool      (B, 128, H/4,  W/4)      encoder.2  stride 4
    block3  3 x conv 256 -> max pool      (B, 256, H/8,  W/8)      encoder.3  stride 8   (pool3)
    block4  3 x conv 512 -> max pool      (B, 512, H/16, W/16)     encoder.4  stride 16  (pool4)
    block5  3 x conv 512 -> max pool      (B, 512, H/32, W/32)     encoder.5  stride 32  (pool5)
    head    fc6 3x3 conv, fc7 1x1 conv    (B, head_channels, H/32, W/32)   (module ``head``)
    score   1x1 conv                      (B, M, H/32, W/32)
    fuse4   up x2 (score) + 1x1(pool4)    (B, M, H/16, W/16)       decoder.1  stride 16
    fuse3   up x2 (fuse4) + 1x1(pool3)    (B, M, H/8,  W/8)        decoder.2  stride 8
    output  fixed bilinear x8             (B, M, H, W)

M = num_classes: FCN fuses class scores, so its decoder stages have M channels. fc6 is a
3x3 conv with ``head_channels`` (1024) outputs instead of the original 7x7 conv with 4096
(as DeepLab-LargeFOV reduced it): 134 M -> 20.5 M parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dragsaw.workloads.models._layers import SegmentationModel, conv_bn_relu, scaled
from dragsaw.workloads.models._registry import register_model

VGG16 = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def bilinear_upsampler(channels: int) -> nn.ConvTranspose2d:
    """A learnable 2x upsampling (4x4 transposed conv, stride 2, one filter per channel
    pair (c, c)) initialised to bilinear interpolation, as in FCN.
    (B, C, h, w) -> (B, C, 2h, 2w)."""
    up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False)
    centre = torch.arange(4, dtype=torch.float32) - 1.5
    kernel_1d = 1 - centre.abs() / 2  # 0.25, 0.75, 0.75, 0.25
    with torch.no_grad():
        up.weight.zero_()
        for c in range(channels):
            up.weight[c, c] = kernel_1d[:, None] * kernel_1d[None, :]
    return up


class ScoreFusion(nn.Module):
    """forward(deep: (B, M, h, w), skip: (B, c_skip, 2h, 2w)) -> (B, M, 2h, 2w):
    the deeper scores upsampled x2 plus a 1x1 scoring of the skip features."""

    def __init__(self, c_skip: int, num_classes: int):
        super().__init__()
        self.up = bilinear_upsampler(num_classes)
        self.score = nn.Conv2d(c_skip, num_classes, 1)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.up(deep) + self.score(skip)


@register_model("fcn")
class FCN8s(SegmentationModel):
    """FCN-8s (2D). forward(x: (B, in_channels, H, W)) -> logits (B, num_classes, H, W);
    H and W must be multiples of 32 (five 2x2 poolings).

    Options: head_channels, the width of fc6/fc7 (before scaling by width); dropout
    after fc6 and fc7 (0.5 in FCN).
    """

    spatial_dims = 2
    size_divisor = 32
    # Added with add_module in __init__ (state-dict keys block1..block5).
    block1: nn.Sequential
    block2: nn.Sequential
    block3: nn.Sequential
    block4: nn.Sequential
    block5: nn.Sequential

    def __init__(self, *, in_channels: int, num_classes: int, width: float = 1.0, head_channels: int = 1024,
                 dropout: float = 0.5):
        super().__init__()
        if not isinstance(head_channels, int) or isinstance(head_channels, bool) or head_channels < 1:
            raise ValueError(f"`head_channels` must be an int >= 1, but got {head_channels!r}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be a number in [0, 1), but got {dropout!r}")
        self.in_channels, self.num_classes = in_channels, num_classes
        c = in_channels
        for i, block in enumerate(VGG16, start=1):
            layers = []
            for cout in block:
                layers.append(conv_bn_relu(c, scaled(cout, width)))
                c = scaled(cout, width)
            self.add_module(f"block{i}", nn.Sequential(*layers, nn.MaxPool2d(2)))
        c3, c4, c5, ch = scaled(256, width), scaled(512, width), c, scaled(head_channels, width)
        self.head = nn.Sequential(conv_bn_relu(c5, ch, 3), nn.Dropout(dropout),
                                  conv_bn_relu(ch, ch, 1), nn.Dropout(dropout))
        self.score = nn.Conv2d(ch, num_classes, 1)
        self.fuse4 = ScoreFusion(c4, num_classes)
        self.fuse3 = ScoreFusion(c3, num_classes)
        self.feature_stages = [
            self.stage(f"encoder.{i}", f"block{i}", scaled(block[-1], width), 2 ** i)
            for i, block in enumerate(VGG16, start=1)
        ] + [self.stage("decoder.1", "fuse4", num_classes, 16), self.stage("decoder.2", "fuse3", num_classes, 8)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        pool3 = self.block3(self.block2(self.block1(x)))
        pool4 = self.block4(pool3)
        scores = self.score(self.head(self.block5(pool4)))
        scores = self.fuse3(self.fuse4(scores, pool4), pool3)
        # FCN-8s's last x8 upsampling is fixed bilinear interpolation.
        return F.interpolate(scores, size=x.shape[2:], mode="bilinear", align_corners=False)
