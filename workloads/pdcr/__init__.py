"""PDCR: patch-dragsaw contrastive regularization (paper Sec. III).

The equations as functions (``foreground_ratios``, ``affinity``, ``dragsaw_loss``,
``receptive_field``) and the configurable plug-in (:class:`PDCR`, :class:`PDCRConfig`).
"""

from dragsaw.workloads.pdcr.affinity import (
                       AFFINITY_KINDS,
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
from dragsaw.workloads.pdcr.loss import cosine_similarity, dragsaw_loss, loss_from_similarity
from dragsaw.workloads.pdcr.probe import probe_receptive_field
from dragsaw.workloads.pdcr.ratios import (
                       PHI_KINDS,
                       box_counts,
                       foreground_ratios,
                       integral_image,
                       phi_from_counts,
)
from dragsaw.workloads.pdcr.regularizer import PDCR, site_key
from dragsaw.workloads.pdcr.sampling import (
                       SAMPLING_KINDS,
                       gather_vectors,
                       grid_positions,
                       random_positions,
)

__all__ = [
    "AFFINITY_KINDS", "PHI_KINDS", "SAMPLING_KINDS",
    "affinity", "dice_affinity", "constant_affinity", "rigid_affinity", "centre_label_affinity",
    "foreground_ratios", "integral_image", "box_counts", "phi_from_counts",
    "dragsaw_loss", "cosine_similarity", "loss_from_similarity",
    "receptive_field", "ReceptiveField", "probe_receptive_field",
    "cell_centres", "series_boxes", "field_boxes", "position_encoding",
    "grid_positions", "random_positions", "gather_vectors",
    "PDCR", "PDCRConfig", "Site", "site_key",
]
