"""The PDCR plug-in: from the features recorded at its sites and the labels of a
step to the step's regularization loss (Eq. 12; Eq. 9 for RF-PDCR sites).

Per site: sample N vectors per image (and per layer of a cross-layer site),
project them (cross-layer: learned 1x1 conv to 32 channels, applied to the
sampled vectors only, which is the same thing and far cheaper), append the
position encoding, locate their patches, score every pair by its affinity and
apply the loss. Site losses are averaged over the patch series and summed over
sites. The labels' class counts at the corners of every site's patches are
built once per step and shared by every site and patch size (ratios.box_table:
a summed-area table kept at those corners only, one integer histogram pass over
the labels, when the corners are few as with receptive fields; else the full one).
"""

from __future__ import annotations

import torch
from torch import nn

from dragsaw.workloads.pdcr.affinity import (
    affinity,
    centre_label_affinity,
    constant_affinity,
    dice_affinity,
    rigid_affinity,
)
from dragsaw.workloads.pdcr.config import PDCRConfig, Site
from dragsaw.workloads.pdcr.geometry import (
    ReceptiveField,
    cell_centres,
    field_boxes,
    position_encoding,
    receptive_field,
    series_boxes,
)
from dragsaw.workloads.pdcr.loss import cosine_similarity, loss_from_similarity
from dragsaw.workloads.pdcr.patches import labels_at, patch_masks
from dragsaw.workloads.pdcr.ratios import (
    CornerTable,
    box_counts,
    box_table,
    check_labels,
    clip_boxes,
    phi_from_counts,
)
from dragsaw.workloads.pdcr.sampling import gather_vectors, grid_positions, random_positions


def site_key(site: Site) -> str:
    """Name of a site in module paths and logs, e.g. ``encoder.2`` or ``encoder.2+encoder.3``."""
    return "+".join(site.layers)


class PDCR(nn.Module):
    """PDCR regularizer over the configured sites.

    config: :class:`PDCRConfig`. channels: channels C of each layer named by a site.
    fields: receptive fields of the RF-PDCR sites' layers (from ``site.receptive_field``
    or a gradient probe; see plugins.attach). Holds the cross-layer projections as
    parameters; no other state survives a step.
    """

    def __init__(self, config: PDCRConfig, channels: dict[str, int], fields: dict[str, ReceptiveField] | None = None):
        super().__init__()
        if config.num_classes is None:
            raise ValueError("PDCR needs `num_classes`: set it in the config, or fill it from the dataset "
                             "with config.for_classes(M) (attach(..., num_classes=M) does)")
        self.config = config
        self.num_classes: int = config.num_classes
        self.fields = dict(fields or {})
        self.projections = nn.ModuleDict()
        for i, site in enumerate(config.sites):
            if site.patch == "receptive_field" and site.layers[0] not in self.fields:
                if site.receptive_field is None:
                    raise ValueError(f"site {site_key(site)!r}: RF-PDCR needs its receptive field "
                                     "(declare `receptive_field` or let attach() probe it)")
                # A declared chain holds for every axis: 1-tuples broadcast over d.
                size, stride, offset = receptive_field(site.receptive_field)
                self.fields[site.layers[0]] = ReceptiveField((size,), (stride,), (offset,))
            if len(site.layers) == 2:
                self.projections[str(i)] = nn.ModuleList(
                    [nn.Linear(channels[name], site.projection) for name in site.layers]
                )
        self._features: dict[str, torch.Tensor] = {}

    # -- recording ---------------------------------------------------------------------
    def record(self, name: str, output: torch.Tensor) -> None:
        """Keep the output of layer ``name`` for this step's loss (called by a forward hook)."""
        self._features[name] = output

    def clear(self) -> None:
        self._features.clear()

    # -- the loss ----------------------------------------------------------------------
    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """Loss of the step whose features were recorded. labels: (B, *S) int64 at input
        resolution. Returns a float32 scalar; clears the recorded features.

        The loss is computed in float32 whatever the features' dtype or an enclosing autocast:
        half-precision features are cast up and autocast is off inside (its bf16/fp16
        matmuls would round the cosine similarities and the logsumexp)."""
        cfg = self.config
        try:
            check_labels(labels, self.num_classes)
            missing = [name for name in cfg.layers() if name not in self._features]
            if missing:
                raise RuntimeError(f"no features recorded for layers {missing}: run the model's forward "
                                   "in training mode on this batch before asking for the PDCR loss")
            # Sample every (site, layer) first, then gather each layer once: one sparse
            # gradient per feature map instead of one per site.
            positions = [[self._sample(site, name, self._features_of(name, labels)) for name in site.layers]
                         for site in cfg.sites]
            vectors = self._gather(positions)
            geometry = [self._geometry(site, positions[i], tuple(labels.shape[1:]))
                        for i, site in enumerate(cfg.sites)]
            table = self._table(labels, geometry) if cfg.affinity == "ratio" else None
            total = labels.new_zeros((), dtype=torch.float32)
            with torch.autocast(labels.device.type, enabled=False):
                for i, site in enumerate(cfg.sites):
                    total = total + self._site_loss(i, site, labels, table, geometry[i], vectors[i])
            return total
        finally:
            self.clear()

    def _features_of(self, name: str, labels: torch.Tensor) -> torch.Tensor:
        feat = self._features[name]
        if not isinstance(feat, torch.Tensor) or feat.ndim != labels.ndim + 1 or feat.shape[0] != labels.shape[0]:
            shape = tuple(feat.shape) if isinstance(feat, torch.Tensor) else type(feat).__name__
            raise ValueError(f"layer {name!r} output {shape} must be (B={labels.shape[0]}, C, *S) with "
                             f"{labels.ndim - 1} spatial axes to match `labels` {tuple(labels.shape)}")
        return feat

    def _sample(self, site: Site, name: str, feat: torch.Tensor) -> torch.Tensor:
        size = tuple(feat.shape[2:])
        total = 1
        for s in size:
            total *= s
        if site.n > total:
            raise ValueError(f"site {site_key(site)!r}: n={site.n} exceeds the {total} positions of layer "
                             f"{name!r} (feature map {size}); lower `n`")
        if self.config.sampling == "grid":
            return grid_positions(site.n, size).to(feat.device).expand(feat.shape[0], -1, -1)
        return random_positions(feat.shape[0], site.n, size, device=feat.device)

    def _gather(self, positions: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
        """Sampled vectors (B, N, C) per site and layer, gathering each feature map once."""
        wanted: dict[str, list[torch.Tensor]] = {}
        for site, pos in zip(self.config.sites, positions):
            for name, p in zip(site.layers, pos):
                wanted.setdefault(name, []).append(p)
        pieces = {name: list(gather_vectors(self._features[name], torch.cat(ps, dim=1))
                             .split([p.shape[1] for p in ps], dim=1))
                  for name, ps in wanted.items()}
        return [[pieces[name].pop(0) for name in site.layers] for site in self.config.sites]

    def _geometry(self, site: Site, positions, image: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer of a site: its patches (P, B, N, d, 2) and their centres (B, N, d), in pixels."""
        out = []
        for name, pos in zip(site.layers, positions):
            if site.patch == "series":
                c = cell_centres(pos, self._features[name].shape[2:], image)
                b = series_boxes(c, site.patch_sizes or self.config.patch_sizes)  # (P, B, N, d, 2)
            else:
                b = field_boxes(pos, self.fields[name]).unsqueeze(0)
                c = torch.div(b[..., 0] + b[..., 1], 2, rounding_mode="floor")[0]
            out.append((b, c))
        return out

    def _table(self, labels: torch.Tensor, geometry) -> torch.Tensor | CornerTable:
        """One table of class counts at the corners of every site's patches, shared by all sites."""
        flat = [b.transpose(0, 1).flatten(1, 2) for site in geometry for b, _ in site]  # (B, P*N, d, 2)
        start, stop = clip_boxes(torch.cat(flat, dim=1), tuple(labels.shape[1:]))
        return box_table(labels, self.num_classes, start, stop)

    def _site_loss(self, index: int, site: Site, labels: torch.Tensor, table, geometry, sampled) -> torch.Tensor:
        cfg = self.config
        image = tuple(labels.shape[1:])
        sizes = site.patch_sizes or cfg.patch_sizes
        largest = max(range(len(sizes)), key=sizes.__getitem__) if site.patch == "series" else 0
        vectors, boxes, centres = [], [], []
        for k, (b, c) in enumerate(geometry):
            v = sampled[k]
            if v.dtype in (torch.float16, torch.bfloat16):  # AMP: the loss is computed in float32
                v = v.float()
            if len(site.layers) == 2:
                projections = self.projections[str(index)]
                if not isinstance(projections, nn.ModuleList):
                    raise TypeError(f"site {index}: projections must be an nn.ModuleList, not "
                                    f"{type(projections).__name__}")
                v = projections[k](v)
            if cfg.position_encoding:
                v = torch.cat([v, position_encoding(b[largest], image, v.dtype)], dim=-1)
            vectors.append(v)
            boxes.append(b)
            centres.append(c)
        v_a, v_b = vectors[0], vectors[-1]
        s = cosine_similarity(v_a, v_b)  # (B, N, K); shared by the P patch sizes
        w = self._weights(labels, table, boxes[0], boxes[-1], centres[0], centres[-1], s)
        return loss_from_similarity(s, w, cfg.tau)

    def _weights(self, labels, table, boxes_a, boxes_b, centres_a, centres_b, s) -> torch.Tensor:
        """Affinities (P, B, N, K) or (B, N, K) for the pairs of one site."""
        cfg = self.config
        kind = cfg.affinity
        if kind == "constant":
            return constant_affinity(*s.shape, value=cfg.constant, device=s.device).to(s.dtype)
        if kind == "rigid":
            return rigid_affinity(centres_a, centres_b).to(s.dtype)
        if kind == "centre_label":
            return centre_label_affinity(labels_at(labels, centres_a), labels_at(labels, centres_b)).to(s.dtype)
        if kind == "dice":
            return torch.stack([
                dice_affinity(patch_masks(labels, ba, self.num_classes), patch_masks(labels, bb, self.num_classes))
                for ba, bb in zip(boxes_a, boxes_b)
            ]).to(s.dtype)
        phi_a = self._phi(table, boxes_a, labels, s.dtype)
        phi_b = phi_a if boxes_b is boxes_a else self._phi(table, boxes_b, labels, s.dtype)
        if cfg.series == "ratio_first":
            return affinity(phi_a.mean(0), phi_b.mean(0))
        p, b, n, m = phi_a.shape
        w = affinity(phi_a.reshape(p * b, n, m), phi_b.reshape(p * b, -1, m))
        return w.view(p, b, n, -1)

    def _phi(self, table, boxes: torch.Tensor, labels, dtype: torch.dtype) -> torch.Tensor:
        """phi of boxes (P, B, N, d, 2) -> (P, B, N, M), all P sizes in one look-up."""
        p, b, n = boxes.shape[:3]
        flat = boxes.transpose(0, 1).reshape(b, p * n, *boxes.shape[3:])
        start, stop = clip_boxes(flat, tuple(labels.shape[1:]))
        if bool((start >= stop).any()):
            raise ValueError("a patch lies entirely outside the image: check the layer's receptive field / "
                             "patch sizes against the input size")
        counts = box_counts(table, start, stop)
        area = (flat[..., 1] - flat[..., 0] + 1).prod(-1)
        phi = phi_from_counts(counts, area, self.config.phi, dtype)
        return phi.view(b, p, n, -1).transpose(0, 1)
