"""DeepLabV3+ with an aligned Xception-65 encoder (Chen et al., ECCV 2018): the paper's 2D
baseline (Table IV: 54.7 M parameters).

    encoder  aligned Xception-65 (xception.py)          (B, 2048w, H/16, W/16) + low (B, 128w, H/4, W/4)
    aspp     1x1 | 3x3 rate 6 | 12 | 18 | image pooling, 256 each -> concat -> 1x1 256
                                                        (B, 256w, H/16, W/16)
    decoder  low -> 1x1 (48); upsample aspp to H/4; concat -> 3x3 (256) -> 3x3 (256)
                                                        (B, 256w, H/4, W/4)
    classifier 1x1 -> bilinear upsampling to the input  (B, num_classes, H, W)

Rates double at output stride 8. Stages (names configs use):

    encoder.1  encoder.stem    64w   stride 2       decoder.1  decoder.fuse1  256w  stride 4
    encoder.2  encoder.entry1  128w  stride 4       decoder.2  decoder.fuse2  256w  stride 4
    encoder.3  encoder.entry2  256w  stride 8       aspp       aspp           256w  stride os
    encoder.4  encoder.middle  728w  stride os
    encoder.5  encoder.exit    2048w stride os      (os = output_stride, 16 by default)

``aspp`` is declared so configs can name it; the paper puts no UAFR there (Sec. V-B).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dragsaw.workloads.models._layers import SegmentationModel, conv_bn_relu, scaled
from dragsaw.workloads.models._registry import register_model
from dragsaw.workloads.models.xception import AlignedXception65


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average -> 1x1 conv -> ReLU -> broadcast back.
    (B, cin, h, w) -> (B, cout, h, w). No BatchNorm: over a 1 x 1 map it cannot train
    with batch size 1, so the conv keeps its bias instead."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x.mean(dim=(2, 3), keepdim=True)))
        return y.expand(-1, -1, *x.shape[2:])  # bilinear upsampling of a 1 x 1 map is a broadcast


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling. (B, cin, h, w) -> (B, cout, h, w).
    rates: dilations of the three 3x3 branches (6, 12, 18 at output stride 16)."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, int, int], dropout: float):
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(cin, cout, 1)] + [conv_bn_relu(cin, cout, 3, dilation=r) for r in rates]
            + [ImagePooling(cin, cout)]
        )
        self.project = nn.Sequential(conv_bn_relu(5 * cout, cout, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class Decoder(nn.Module):
    """forward(high: (B, c_high, h, w), low: (B, c_low, 4h', 4w')) -> (B, cout, 4h', 4w'):
    low-level 1x1 projection, upsampled high-level features, two 3x3 convs."""

    def __init__(self, c_high: int, c_low: int, c_proj: int, cout: int):
        super().__init__()
        self.project = conv_bn_relu(c_low, c_proj, 1)
        self.fuse1 = conv_bn_relu(c_high + c_proj, cout, 3)
        self.fuse2 = conv_bn_relu(cout, cout, 3)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        high = F.interpolate(high, size=low.shape[2:], mode="bilinear", align_corners=False)
        return self.fuse2(self.fuse1(torch.cat([high, self.project(low)], dim=1)))


@register_model("deeplabv3plus")
class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+ (2D). forward(x: (B, in_channels, H, W)) -> logits (B, num_classes, H, W);
    H and W must be multiples of ``output_stride``.

    Options: output_stride 16 (ASPP rates 6, 12, 18) or 8 (12, 24, 36); dropout after the
    ASPP projection; middle_blocks, the Xception middle-flow depth (16 in Xception-65).
    """

    spatial_dims = 2

    def __init__(self, *, in_channels: int, num_classes: int, width: float = 1.0, output_stride: int = 16,
                 dropout: float = 0.1, middle_blocks: int = 16):
        super().__init__()
        if not isinstance(middle_blocks, int) or isinstance(middle_blocks, bool) or middle_blocks < 1:
            raise ValueError(f"`middle_blocks` must be an int >= 1, but got {middle_blocks!r}")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be a number in [0, 1), but got {dropout!r}")
        self.in_channels, self.num_classes, self.size_divisor = in_channels, num_classes, output_stride
        self.encoder = AlignedXception65(in_channels, width, output_stride, middle_blocks)
        c256 = scaled(256, width)
        rates = (6 * 16 // output_stride, 12 * 16 // output_stride, 18 * 16 // output_stride)
        self.aspp = ASPP(self.encoder.channels["exit"], c256, rates, float(dropout))
        self.decoder = Decoder(c256, self.encoder.channels["entry1"], scaled(48, width), c256)
        self.classifier = nn.Conv2d(c256, num_classes, 1)
        ch, st = self.encoder.channels, self.encoder.strides
        self.feature_stages = [
            self.stage(f"encoder.{i}", f"encoder.{m}", ch[m], st[m])
            for i, m in enumerate(("stem", "entry1", "entry2", "middle", "exit"), start=1)
        ] + [
            self.stage("aspp", "aspp", c256, output_stride),
            self.stage("decoder.1", "decoder.fuse1", c256, 4),
            self.stage("decoder.2", "decoder.fuse2", c256, 4),
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        features = self.encoder(x)
        y = self.decoder(self.aspp(features["out"]), features["low"])
        return F.interpolate(self.classifier(y), size=x.shape[2:], mode="bilinear", align_corners=False)
