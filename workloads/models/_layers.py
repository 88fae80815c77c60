"""Pieces every model of the zoo shares: channel scaling, the input contract, and
conv-norm-activation units."""

from __future__ import annotations

import torch
from torch import nn

from dragsaw.workloads.plugins.stages import Stage


def scaled(channels: int, width: float) -> int:
    """``channels * width``, rounded, at least 1."""
    return max(1, round(channels * width))


class SegmentationModel(nn.Module):
    """Base of the zoo's models: the input contract and the stage declaration.

    Subclasses set ``spatial_dims`` (2 or 3), ``in_channels``, ``num_classes``,
    ``size_divisor`` (every spatial size of the input must be a multiple of it) and
    ``feature_stages`` (a list of :class:`Stage`), and call :meth:`check_input` first
    thing in ``forward``.
    """

    spatial_dims: int
    size_divisor: int
    feature_stages: list[Stage]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the input shape unless x is (B, in_channels, *S)
        with ``spatial_dims`` axes, each a positive multiple of ``size_divisor``."""
        axes = "(B, C, H, W)" if self.spatial_dims == 2 else "(B, C, D, H, W)"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} input must be a tensor {axes}, but got {type(x).__name__}")
        shape = tuple(x.shape)
        if x.ndim != self.spatial_dims + 2 or shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} input must be {axes} with C = in_channels = "
                             f"{self.in_channels}, but got shape {shape}")
        bad = [s for s in shape[2:] if s < self.size_divisor or s % self.size_divisor]
        if bad:
            raise ValueError(f"{type(self).__name__} input spatial sizes must be positive multiples of "
                             f"{self.size_divisor} (the network's total downsampling), but got shape {shape}; "
                             "pad or crop the input")

    def stage(self, name: str, module: str, channels: int, stride: int) -> Stage:
        """A :class:`Stage`, checked to name a real submodule (a typo here would only surface in attach())."""
        if module not in dict(self.named_modules()):
            raise AssertionError(f"{type(self).__name__} declares stage {name!r} at missing module {module!r}")
        return Stage(name, module, channels, stride)


def conv_bn_relu(cin: int, cout: int, kernel_size: int = 3, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """2D conv (no bias; 'same' padding for odd kernels) -> BatchNorm -> ReLU.
    (B, cin, H, W) -> (B, cout, H / stride, W / stride)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )
