"""SE and CBAM: the attention blocks the paper compares UAFR with (Table VIII, Fig. 6)."""

from __future__ import annotations

import torch
from torch import nn


def _dims(spatial_dims: int) -> tuple[int, ...]:
    if spatial_dims not in (2, 3):
        raise ValueError(f"`spatial_dims` must be 2 or 3, but got {spatial_dims!r}")
    return tuple(range(2, 2 + spatial_dims))


def _check_int(name: str, value, low: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"`{name}` must be an int >= {low}, but got {value!r}")


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation (Hu et al.): x * sigmoid(W2 relu(W1 avgpool(x))).
    x: (B, C, *S) -> (B, C, *S); hidden = max(1, C // reduction)."""

    def __init__(self, channels: int, reduction: int = 16, spatial_dims: int = 2):
        super().__init__()
        _check_int("channels", channels)
        _check_int("reduction", reduction)
        self.axes = _dims(spatial_dims)
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.mlp(x.mean(dim=self.axes)))
        return x * gate.view(*gate.shape, *([1] * len(self.axes)))


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al.): channel attention from the
    average- and max-pooled descriptors through a shared MLP, then spatial attention
    from a conv over the channel-wise average and max maps. (B, C, *S) -> (B, C, *S)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, spatial_dims: int = 2):
        super().__init__()
        _check_int("channels", channels)
        _check_int("reduction", reduction)
        _check_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, but got {kernel_size}")
        self.axes = _dims(spatial_dims)
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.spatial = conv(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (*x.shape[:2], *([1] * len(self.axes)))
        gate = torch.sigmoid(self.mlp(x.mean(dim=self.axes)) + self.mlp(x.amax(dim=self.axes)))
        x = x * gate.view(shape)
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(maps))
