"""Receptive field of an arbitrary layer, found by a gradient probe.

For modules that are not a declared conv chain (a MONAI block, a residual
stage...), the input pixels that can influence one output vector are the
non-zero entries of the gradient of that vector with respect to the input. The
probe runs a copy of the model in float64 and eval mode, without normalisations
that pool over the whole image (instance, group, layer norm), with every weight made
positive so that no ReLU is dead and no sum cancels, on a few random positive
inputs (max-pooling routes its gradient to one element per window: the union
over inputs recovers the whole window), and reads size, stride and offset per
axis from two neighbouring interior positions.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dragsaw.workloads.pdcr.geometry import ReceptiveField


def _extent(grad: torch.Tensor, axis: int) -> tuple[int, int]:
    other = [k for k in range(grad.ndim) if k != axis]
    hit = grad.abs().amax(dim=other) if other else grad.abs()
    idx = hit.nonzero().flatten()
    if idx.numel() == 0:
        raise RuntimeError("the probed output does not depend on the input")
    return int(idx[0]), int(idx[-1])


# Normalisations that pool statistics over the whole image: their receptive field is the
# image, which is not what Eq. 5-7 mean by the field of a convolution chain.
_GLOBAL_NORMS = (nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


_MAX_TO_AVG = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}


def _without_global_norms(module: nn.Module) -> None:
    """Identity for image-wide normalisations; max-pooling becomes average pooling of the same
    window (same field, but a gradient to every element of the window, not just its maximum)."""
    for name, child in list(module.named_children()):
        if isinstance(child, _GLOBAL_NORMS):
            setattr(module, name, nn.Identity())
        elif type(child) in _MAX_TO_AVG and (child.dilation == 1 or child.dilation == (1,) * len(
                child.kernel_size if isinstance(child.kernel_size, tuple) else (child.kernel_size,))):
            avg = _MAX_TO_AVG[type(child)](child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode,
                                           count_include_pad=True)
            setattr(module, name, avg)
        else:
            _without_global_norms(child)


@torch.no_grad()
def _positive_copy(model: nn.Module) -> nn.Module:
    probe = copy.deepcopy(model).double().eval()
    _without_global_norms(probe)
    for module in probe.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    for p in probe.parameters():
        p.copy_(p.abs() + 0.1)
    for buf_name, buf in probe.named_buffers():
        if buf_name.endswith("running_var"):
            buf.fill_(1.0)
        elif buf_name.endswith("running_mean"):
            buf.zero_()
    return probe


def _box(out: torch.Tensor, x: torch.Tensor, pos: Sequence[int]) -> list[tuple[int, int]]:
    """Per-axis [first, last] input index with a non-zero gradient from the vector at ``pos``."""
    (grad,) = torch.autograd.grad(out[(slice(None), slice(None), *pos)].sum(), x, retain_graph=True)
    g = grad.abs().sum(dim=(0, 1))
    return [_extent(g, k) for k in range(g.ndim)]


def probe_receptive_field(model: nn.Module, layer: str, input_shape: Sequence[int],
                          trials: int = 4, seed: int = 0) -> ReceptiveField:
    """Receptive field of the output of submodule ``layer`` of ``model``.

    input_shape: (C, *S) of one input image, large enough that the field of a
    central output vector lies inside the image (a ValueError says so otherwise).
    The model itself is not changed. Returns a :class:`ReceptiveField` in input pixels.
    """
    if layer not in dict(model.named_modules()):
        raise ValueError(f"`layer` {layer!r} is not a submodule of the model")
    probe = _positive_copy(model)
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        captured.append(output)

    handle = dict(probe.named_modules())[layer].register_forward_hook(keep)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(trials, *input_shape, generator=gen, dtype=torch.float64) + 0.5).requires_grad_(True)
    try:
        with torch.enable_grad():
            probe(x)
            if not captured or not isinstance(captured[0], torch.Tensor):
                raise ValueError(f"layer {layer!r} did not return a tensor in a forward pass")
            out = captured[0]
            spatial_in, spatial_out = list(input_shape[1:]), list(out.shape[2:])
            if len(spatial_in) != len(spatial_out) or min(spatial_out) < 2:
                raise ValueError(f"layer {layer!r} output {tuple(out.shape)} must have the input's "
                                 f"{len(spatial_in)} spatial axes, each of size >= 2, to be probed")
            centre = [(s - 1) // 2 for s in spatial_out]
            box = _box(out, x, centre)
            steps = []
            for axis in range(len(centre)):
                moved = list(centre)
                moved[axis] += 1
                steps.append(_box(out, x, moved)[axis][0] - box[axis][0])
    finally:
        handle.remove()
    for axis, (lo, hi) in enumerate(box):
        if lo == 0 or hi == spatial_in[axis] - 1:
            raise ValueError(
                f"input_shape {tuple(input_shape)} is too small to probe layer {layer!r}: the receptive "
                f"field of its central vector reaches the image border on axis {axis}; use a larger input"
            )
    size = tuple(hi - lo + 1 for lo, hi in box)
    offset = tuple(lo - c * s for (lo, _), c, s in zip(box, centre, steps))
    return ReceptiveField(size, tuple(steps), offset)
