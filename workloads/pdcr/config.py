"""Options of the PDCR plug-in: every variant of the paper is a named value here,
so that grids and searches can reach it (DESIGN.md, "Ablation variants")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dragsaw.workloads.pdcr.affinity import AffinityKind
from dragsaw.workloads.pdcr.ratios import PhiKind
from dragsaw.workloads.pdcr.sampling import SamplingKind

Kernel = tuple[int, int, int] | tuple[int, int, int, int]


#: Upper bounds that catch typos before launch (``n: 1e9``): N is also checked against the
#: positions of each layer's feature map at the trial's image size (the platform's probe).
MAX_N = 1_000_000
MAX_PATCH = 16_384
MAX_PROJECTION = 4_096
MAX_TAU = 1_000.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Site(_Strict):
    """One place PDCR contrasts vectors: a single layer, or a pair of layers (cross-layer).

    layers: one module / stage name, or two for a cross-layer site (H-PDCR only).
    n: vectors sampled per image and layer (the paper's N: 128, 64, 32, 8 ...).
    patch: ``series`` (H-PDCR: patches of ``patch_sizes`` centred on the vector's cell) or
        ``receptive_field`` (RF-PDCR: the vector's theoretical receptive field, Eq. 5-7).
    receptive_field: for RF-PDCR, the declared chain of (kernel, stride, padding[, dilation])
        from the input to this layer; when omitted the field is found by a gradient probe.
    patch_sizes: overrides the plug-in's patch series for this site.
    projection: channels of the learned 1x1 projection of a cross-layer site (paper: 32).
    """

    layers: tuple[str] | tuple[str, str]
    n: int = Field(ge=1, le=MAX_N)
    patch: Literal["series", "receptive_field"] = "series"
    receptive_field: tuple[Kernel, ...] | None = None
    patch_sizes: tuple[int, ...] | None = None
    projection: int = Field(default=32, ge=1, le=MAX_PROJECTION)

    @model_validator(mode="after")
    def _consistent(self):
        if len(self.layers) == 2 and self.patch != "series":
            raise ValueError("a cross-layer site (two layers) must use patch='series' (H-PDCR); "
                             "RF-PDCR contrasts vectors of one layer")
        if len(self.layers) == 2 and self.layers[0] == self.layers[1]:
            raise ValueError(f"a cross-layer site needs two different layers, got {list(self.layers)}")
        if self.receptive_field is not None and self.patch != "receptive_field":
            raise ValueError("`receptive_field` applies only to sites with patch='receptive_field'")
        if self.patch_sizes is not None and self.patch != "series":
            raise ValueError("`patch_sizes` applies only to sites with patch='series'")
        _check_sizes(self.patch_sizes)
        return self


def _check_sizes(sizes):
    if sizes is None:
        return
    if not sizes:
        raise ValueError("`patch_sizes` must list at least one size")
    if any(not 1 <= k <= MAX_PATCH for k in sizes):
        raise ValueError(f"`patch_sizes` must be in [1, {MAX_PATCH}] pixels, but got {list(sizes)}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"`patch_sizes` must be distinct, but got {list(sizes)}")


class PDCRConfig(_Strict):
    """The PDCR regularizer (paper Sec. III).

    num_classes: M, classes of the labels (background included); None until the dataset is
        known (:meth:`for_classes` fills it; the regularizer needs it).
    patch_sizes: the H-PDCR patch series (P = its length), in pixels per side.
    tau: temperature of Eq. 9. sampling: ``grid`` or ``random``.
    position_encoding: concatenate the normalised box of the (largest) patch to each vector.
    phi: ``ratio`` (Eq. 4), ``l1``, ``l2``, ``area`` (Table V (a); see ratios.phi_from_counts).
    affinity: ``ratio`` (Eq. 3), ``dice`` (Eq. 16), ``constant`` (w = ``constant``),
        ``rigid`` (bipartite), ``centre_label`` (Fig. 5 variants).
    series: ``loss_first`` (mean of the P losses, Eq. 12) or ``ratio_first``
        (average the P foreground ratios first, then one loss; Table V (b)).
    """

    sites: tuple[Site, ...] = Field(min_length=1)
    num_classes: int | None = Field(default=None, ge=1, le=10_000)
    patch_sizes: tuple[int, ...] = (5, 7, 9)
    tau: float = Field(default=1.0, gt=0, le=MAX_TAU)
    sampling: SamplingKind = "grid"
    position_encoding: bool = True
    phi: PhiKind = "ratio"
    affinity: AffinityKind = "ratio"
    series: Literal["loss_first", "ratio_first"] = "loss_first"
    constant: float = Field(default=0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self):
        _check_sizes(self.patch_sizes)
        if self.series == "ratio_first" and self.affinity != "ratio":
            raise ValueError("series='ratio_first' averages foreground ratios, so it needs affinity='ratio', "
                             f"but got affinity={self.affinity!r}")
        seen = set()
        for site in self.sites:
            key = tuple(sorted(site.layers))
            if key in seen:
                raise ValueError(f"site {list(site.layers)} is listed twice")
            seen.add(key)
        return self

    def for_classes(self, num_classes: int) -> PDCRConfig:
        """This config for a dataset of ``num_classes`` classes: ``num_classes`` filled when
        unset; a ValueError when it is set to another number."""
        if self.num_classes is None:
            return self.model_copy(update={"num_classes": num_classes})
        if self.num_classes != num_classes:
            raise ValueError(f"plugins.pdcr.num_classes is {self.num_classes} but the dataset has "
                             f"{num_classes} classes")
        return self

    def layers(self) -> list[str]:
        """Every layer any site reads, in first-use order."""
        out: list[str] = []
        for site in self.sites:
            out += [name for name in site.layers if name not in out]
        return out
