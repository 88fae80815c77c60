"""What to attach where: one config for every plug-in of the paper."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dragsaw.workloads.pdcr.config import PDCRConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Placed(_Strict):
    layers: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self):
        repeated = sorted({n for n in self.layers if self.layers.count(n) > 1})
        if repeated:
            raise ValueError(f"`layers` names {repeated} more than once: a block attaches once per module")
        return self


class UAFRConfig(_Placed):
    """UAFR at ``layers``: M = ``num_maps`` maps (the number of classes, 2, in the paper),
    F = conv(kernel_size) -> BN -> ReLU -> 1x1 conv with ``hidden`` channels; ``use_f=False``
    takes the softmax of the features themselves (Table IX (a))."""

    num_maps: int = Field(default=2, ge=1)
    hidden: int = Field(default=16, ge=1)
    kernel_size: int = Field(default=3, ge=1)
    use_f: bool = True


class SEConfig(_Placed):
    """Squeeze-and-Excitation at ``layers`` (Table VIII)."""

    reduction: int = Field(default=16, ge=1)


class CBAMConfig(_Placed):
    """CBAM at ``layers`` (Table VIII)."""

    reduction: int = Field(default=16, ge=1)
    kernel_size: int = Field(default=7, ge=1)


class PluginsConfig(_Strict):
    """Plug-ins for one model. ``pdcr`` records features; ``uafr``/``se``/``cbam`` re-weight
    them (at most one re-weighting block per module)."""

    pdcr: PDCRConfig | None = None
    uafr: UAFRConfig | None = None
    se: SEConfig | None = None
    cbam: CBAMConfig | None = None

    @model_validator(mode="after")
    def _one_reweighting_per_module(self):
        owner: dict[str, str] = {}
        for kind in ("uafr", "se", "cbam"):
            block = getattr(self, kind)
            for name in block.layers if block else ():
                if name in owner:
                    raise ValueError(f"layer {name!r} gets both {owner[name]} and {kind}: "
                                     "attach at most one re-weighting block per module")
                owner[name] = kind
        return self
