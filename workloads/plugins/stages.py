"""Feature stages a model declares, so configs can say ``encoder.2`` rather than a
deep module path (timm's ``feature_info`` in spirit)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Stage:
    """name: the name configs use (``encoder.2``); module: its path in ``named_modules()``;
    channels: C of its output; stride: input pixels per output pixel."""

    name: str
    module: str
    channels: int
    stride: int


def declared_stages(model: nn.Module) -> dict[str, Stage]:
    """Stages of a model that declares ``feature_stages`` (a sequence of :class:`Stage`), else {}."""
    stages = getattr(model, "feature_stages", None)
    if stages is None:
        return {}
    return {s.name: s for s in stages}
