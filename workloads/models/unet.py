"""The classic 2D U-Net (Ronneberger et al., MICCAI 2015) with BatchNorm and 'same' padding,
so the output has the input's size.

Shapes for an input (B, C_in, H, W), width 1, ``upsampling="bilinear"`` (the default; the
bottleneck and decoder are halved so that the upsampled map and the skip have the same
channels, 17.3 M parameters as in the paper's Table IV):

    inc    double conv 64                 (B,  64, H,    W)       encoder.1  stride 1
    down1  max pool -> double conv 128    (B, 128, H/2,  W/2)     encoder.2  stride 2
    down2  -> 256                         (B, 256, H/4,  W/4)     encoder.3  stride 4
    down3  -> 512                         (B, 512, H/8,  W/8)     encoder.4  stride 8
    down4  -> 512 (1024 transposed)       (B, 512, H/16, W/16)    encoder.5  stride 16
    up1    up, concat down3 -> 256 (512)  (B, 256, H/8,  W/8)     decoder.1  stride 8
    up2    up, concat down2 -> 128 (256)  (B, 128, H/4,  W/4)     decoder.2  stride 4
    up3    up, concat down1 -> 64 (128)   (B,  64, H/2,  W/2)     decoder.3  stride 2
    up4    up, concat inc   -> 64         (B,  64, H,    W)       decoder.4  stride 1
    head   1x1 conv                       (B, num_classes, H, W)

``upsampling="transposed"``: 2x2 transposed convs halve the channels while upsampling and
the decoder keeps the original widths (1024 bottleneck; 31.0 M parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from dragsaw.workloads.models._layers import SegmentationModel, conv_bn_relu, scaled
from dragsaw.workloads.models._registry import register_model

UPSAMPLING = ("bilinear", "transposed")


def double_conv(cin: int, cout: int, mid: int | None = None) -> nn.Sequential:
    """(conv3x3 -> BN -> ReLU) x 2: (B, cin, H, W) -> (B, cout, H, W)."""
    mid = cout if mid is None else mid
    return nn.Sequential(conv_bn_relu(cin, mid), conv_bn_relu(mid, cout))


class Down(nn.Sequential):
    """2x2 max pool -> double conv: (B, cin, H, W) -> (B, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.MaxPool2d(2), double_conv(cin, cout))


class Up(nn.Module):
    """forward(deep: (B, c_deep, h, w), skip: (B, c_skip, 2h, 2w)) -> (B, cout, 2h, 2w):
    upsample ``deep``, concatenate ``skip`` (skip first), double conv."""

    def __init__(self, c_deep: int, c_skip: int, cout: int, upsampling: str):
        super().__init__()
        if upsampling == "bilinear":
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.conv = double_conv(c_skip + c_deep, cout, mid=(c_skip + c_deep) // 2)
        else:
            self.up = nn.ConvTranspose2d(c_deep, c_deep // 2, 2, stride=2)
            self.conv = double_conv(c_skip + c_deep // 2, cout)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(deep)], dim=1))


@register_model("unet")
class UNet(SegmentationModel):
    """U-Net (2D). forward(x: (B, in_channels, H, W)) -> logits (B, num_classes, H, W);
    H and W must be multiples of 16 (four 2x2 poolings).

    Options: upsampling ``bilinear`` (default) or ``transposed``; base, the channels of
    the first level (64; doubled at each level, then scaled by width).
    """

    spatial_dims = 2
    size_divisor = 16

    def __init__(self, *, in_channels: int, num_classes: int, width: float = 1.0, upsampling: str = "bilinear",
                 base: int = 64):
        super().__init__()
        if upsampling not in UPSAMPLING:
            raise ValueError(f"`upsampling` must be one of {list(UPSAMPLING)}, but got {upsampling!r}")
        if not isinstance(base, int) or isinstance(base, bool) or base < 1:
            raise ValueError(f"`base` must be an int >= 1, but got {base!r}")
        self.in_channels, self.num_classes = in_channels, num_classes
        c = [scaled(base, width) * 2 ** k for k in range(5)]  # 64, 128, 256, 512, 1024
        # Bilinear upsampling keeps channels, so the bottleneck is halved to match the skip.
        factor = 2 if upsampling == "bilinear" else 1
        bottom = c[4] // factor
        self.inc = double_conv(in_channels, c[0])
        self.down1, self.down2, self.down3 = Down(c[0], c[1]), Down(c[1], c[2]), Down(c[2], c[3])
        self.down4 = Down(c[3], bottom)
        outs = [c[3] // factor, c[2] // factor, c[1] // factor, c[0]]
        self.up1 = Up(bottom, c[3], outs[0], upsampling)
        self.up2 = Up(outs[0], c[2], outs[1], upsampling)
        self.up3 = Up(outs[1], c[1], outs[2], upsampling)
        self.up4 = Up(outs[2], c[0], outs[3], upsampling)
        self.head = nn.Conv2d(c[0], num_classes, 1)
        enc = [("inc", c[0]), ("down1", c[1]), ("down2", c[2]), ("down3", c[3]), ("down4", bottom)]
        self.feature_stages = (
            [self.stage(f"encoder.{k + 1}", m, ch, 2 ** k) for k, (m, ch) in enumerate(enc)]
            + [self.stage(f"decoder.{k + 1}", f"up{k + 1}", ch, 2 ** (3 - k)) for k, ch in enumerate(outs)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        y = self.up1(self.down4(x4), x4)
        y = self.up4(self.up3(self.up2(y, x3), x2), x1)
        return self.head(y)
