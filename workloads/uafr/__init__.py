"""UAFR (paper Sec. IV) and the attention blocks it is compared with."""

from dragsaw.workloads.uafr.attention import CBAM, SqueezeExcitation
from dragsaw.workloads.uafr.uafr import UAFR, normalised_entropy

__all__ = ["UAFR", "normalised_entropy", "SqueezeExcitation", "CBAM"]
