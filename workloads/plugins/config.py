"""What to attach where: one typed config for every plug-in of the paper, and the one table
of plug-in kinds (:data:`KINDS`) that attach(), the platform's spec checks and its search
space read.

A new re-weighting block touches two files: the module that computes it (e.g.
``workloads/uafr/attention.py``) and this one (its config class, its row in :data:`KINDS`
and its field of :class:`PluginsConfig`).

Sizes that depend on the dataset (``pdcr.num_classes``, ``uafr.num_maps``: M = the number
of classes, as in the paper) may be left out: they are None until
:meth:`PluginsConfig.for_classes` fills them, which the trial does once its dataset is open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from dragsaw.workloads.pdcr.config import PDCRConfig
from dragsaw.workloads.uafr.attention import CBAM, SqueezeExcitation
from dragsaw.workloads.uafr.uafr import UAFR


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Placed(_Strict):
    layers: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self):
        repeated = sorted({n for n in self.layers if self.layers.count(n) > 1})
        if repeated:
            raise ValueError(f"`layers` names {repeated} more than once: a block attaches once per module")
        return self

    def for_classes(self, num_classes: int):
        """This config for a dataset of ``num_classes`` classes (unchanged unless it has a
        size that follows the classes)."""
        return self


class UAFRConfig(_Placed):
    """UAFR at ``layers``: M = ``num_maps`` maps (None: the number of classes, 2 in the paper,
    filled by :meth:`for_classes`), F = conv(kernel_size) -> BN -> ReLU -> 1x1 conv with
    ``hidden`` channels; ``use_f=False`` takes the softmax of the features themselves
    (Table IX (a))."""

    num_maps: int | None = Field(default=None, ge=1, le=10_000)
    hidden: int = Field(default=16, ge=1, le=65_536)
    kernel_size: int = Field(default=3, ge=1, le=31)
    use_f: bool = True

    def for_classes(self, num_classes: int) -> UAFRConfig:
        return self if self.num_maps is not None else self.model_copy(update={"num_maps": num_classes})


class SEConfig(_Placed):
    """Squeeze-and-Excitation at ``layers`` (Table VIII)."""

    reduction: int = Field(default=16, ge=1, le=65_536)


class CBAMConfig(_Placed):
    """CBAM at ``layers`` (Table VIII)."""

    reduction: int = Field(default=16, ge=1, le=65_536)
    kernel_size: int = Field(default=7, ge=1, le=31)


def _uafr(config: UAFRConfig, channels: int, spatial_dims: int) -> nn.Module:
    if config.num_maps is None:
        raise ValueError("uafr.num_maps is not set: give it, or fill it from the dataset with "
                         "config.for_classes(M) (attach(..., num_classes=M) does)")
    return UAFR(channels, config.num_maps, config.hidden, config.kernel_size, config.use_f,
                spatial_dims=spatial_dims)


def _se(config: SEConfig, channels: int, spatial_dims: int) -> nn.Module:
    return SqueezeExcitation(channels, config.reduction, spatial_dims=spatial_dims)


def _cbam(config: CBAMConfig, channels: int, spatial_dims: int) -> nn.Module:
    return CBAM(channels, config.reduction, config.kernel_size, spatial_dims=spatial_dims)


@dataclass(frozen=True)
class Kind:
    """One kind of plug-in, by the name configs, specs and searches use.

    config: its config class. build: for a re-weighting block, (config, channels C,
    spatial dims) -> the module that re-weights a (B, C, *S) feature map; None for PDCR, which
    records features for a loss instead. placement: the config field that says where it goes.
    hidden: fields a search may not set (where it goes; sizes fixed by the dataset).
    """

    name: str
    config: type[BaseModel]
    build: Callable[[Any, int, int], nn.Module] | None
    placement: str = "layers"
    hidden: frozenset[str] = frozenset({"layers"})

    @property
    def reweights(self) -> bool:
        return self.build is not None


#: Every plug-in kind by name, PDCR first; the re-weighting blocks run in this order.
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("pdcr", PDCRConfig, None, placement="sites", hidden=frozenset({"sites", "num_classes"})),
    Kind("uafr", UAFRConfig, _uafr),
    Kind("se", SEConfig, _se),
    Kind("cbam", CBAMConfig, _cbam),
)}
#: The re-weighting kinds (at most one per module).
REWEIGHTING: tuple[str, ...] = tuple(name for name, kind in KINDS.items() if kind.reweights)


class PluginsConfig(_Strict):
    """Plug-ins for one model, one field per kind of :data:`KINDS`. ``pdcr`` records
    features; ``uafr``/``se``/``cbam`` re-weight them (at most one re-weighting block per
    module)."""

    pdcr: PDCRConfig | None = None
    uafr: UAFRConfig | None = None
    se: SEConfig | None = None
    cbam: CBAMConfig | None = None

    @model_validator(mode="after")
    def _one_reweighting_per_module(self):
        owner: dict[str, str] = {}
        for kind, block in self.blocks():
            for name in block.layers:
                if name in owner:
                    raise ValueError(f"layer {name!r} gets both {owner[name]} and {kind}: "
                                     "attach at most one re-weighting block per module")
                owner[name] = kind
        return self

    def blocks(self) -> list[tuple[str, Any]]:
        """(kind, config) of each configured re-weighting block, in :data:`REWEIGHTING` order."""
        return [(kind, block) for kind in REWEIGHTING if (block := getattr(self, kind)) is not None]

    def for_classes(self, num_classes: int) -> PluginsConfig:
        """These plug-ins for a dataset of ``num_classes`` classes: ``pdcr.num_classes`` and
        ``uafr.num_maps`` filled where unset; ValueError when ``pdcr.num_classes`` is set to
        another number (``num_maps`` is free: Table IX varies it)."""
        update = {kind: block.for_classes(num_classes) for kind in KINDS
                  if (block := getattr(self, kind)) is not None}
        return self.model_copy(update=update)


if set(PluginsConfig.model_fields) != set(KINDS):  # a kind added to one but not the other
    raise TypeError(f"PluginsConfig fields {sorted(PluginsConfig.model_fields)} must be the kinds "
                    f"{sorted(KINDS)} of KINDS")

__all__ = ["KINDS", "REWEIGHTING", "Kind", "PluginsConfig", "UAFRConfig", "SEConfig", "CBAMConfig"]
