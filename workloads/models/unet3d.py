"""nnU-Net-style 3D U-Net (Isensee et al., Nat. Methods 2021): the paper's 3D baseline,
built on MONAI's ``DynUNet``.

Every level is two 3x3x3 convs with instance norm and leaky ReLU (slope 0.01); the first
conv of a level carries its stride; decoders upsample with a transposed conv of kernel =
stride; no deep supervision. Filters are 32 * 2^k, capped at 320, then scaled by width.

Shapes for an input (B, C_in, D, H, W), the default strides (1, 2, 2, 2, 2), width 1:

    net.input_block     (B,  32, D,    H,    W)       encoder.1  stride 1
    net.downsamples.0   (B,  64, D/2,  H/2,  W/2)     encoder.2  stride 2
    net.downsamples.1   (B, 128, D/4,  ...)           encoder.3  stride 4
    net.downsamples.2   (B, 256, D/8,  ...)           encoder.4  stride 8
    net.bottleneck      (B, 320, D/16, ...)           encoder.5  stride 16
    net.upsamples.0     (B, 256, D/8,  ...)           decoder.1  stride 8
    net.upsamples.1     (B, 128, D/4,  ...)           decoder.2  stride 4
    net.upsamples.2     (B,  64, D/2,  ...)           decoder.3  stride 2
    net.upsamples.3     (B,  32, D,    ...)           decoder.4  stride 1
    net.output_block    (B, num_classes, D, H, W)

With other ``strides`` (L levels) the stages are encoder.1..encoder.L and decoder.1..decoder.(L-1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.networks.nets.dynunet import DynUNet

from dragsaw.workloads.models._layers import SegmentationModel, scaled
from dragsaw.workloads.models._registry import register_model


def _check_strides(strides) -> tuple[int, ...]:
    if isinstance(strides, (str, bytes)) or not isinstance(strides, Sequence):
        raise ValueError(f"`strides` must be a sequence of ints, but got {strides!r}")
    if any(not isinstance(s, int) or isinstance(s, bool) for s in strides):
        raise ValueError(f"`strides` must hold one int per level (isotropic: a stage's stride is one number), "
                         f"but got {list(strides)!r}")
    if len(strides) < 3 or strides[0] != 1 or any(s < 1 for s in strides):
        raise ValueError(f"`strides` must list >= 3 levels, the first 1 (full resolution) and the others "
                         f">= 1, e.g. [1, 2, 2, 2, 2], but got {list(strides)}")
    return tuple(strides)


@register_model("unet3d")
class UNet3D(SegmentationModel):
    """3D U-Net. forward(x: (B, in_channels, D, H, W)) -> logits (B, num_classes, D, H, W);
    D, H and W must be multiples of the product of ``strides`` (16 by default).

    Options: strides, one int per level (nnU-Net's pooling, isotropic).
    """

    spatial_dims = 3

    def __init__(self, *, in_channels: int, num_classes: int, width: float = 1.0,
                 strides: Sequence[int] = (1, 2, 2, 2, 2)):
        super().__init__()
        strides = _check_strides(strides)
        levels = len(strides)
        self.in_channels, self.num_classes = in_channels, num_classes
        self.size_divisor = math.prod(strides)
        filters = [scaled(min(32 * 2 ** k, 320), width) for k in range(levels)]
        self.net = DynUNet(
            spatial_dims=3, in_channels=in_channels, out_channels=num_classes,
            kernel_size=[3] * levels, strides=list(strides), upsample_kernel_size=list(strides[1:]),
            filters=filters, norm_name=("INSTANCE", {"affine": True}),
            act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
            deep_supervision=False, res_block=False,
        )
        cumulative = [math.prod(strides[: k + 1]) for k in range(levels)]
        encoder = ["net.input_block"] + [f"net.downsamples.{k}" for k in range(levels - 2)] + ["net.bottleneck"]
        self.feature_stages = [
            self.stage(f"encoder.{k + 1}", path, filters[k], cumulative[k]) for k, path in enumerate(encoder)
        ] + [
            # upsamples.0 is the deepest decoder level: it outputs level L-2's filters and stride.
            self.stage(f"decoder.{j + 1}", f"net.upsamples.{j}", filters[levels - 2 - j], cumulative[levels - 2 - j])
            for j in range(levels - 1)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.net(x)
