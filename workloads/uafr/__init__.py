"""UAFR (paper Sec. IV) and the attention blocks it is compared with."""

from .attention import CBAM, SqueezeExcitation
from .uafr import UAFR, normalised_entropy

__all__ = ["UAFR", "normalised_entropy", "SqueezeExcitation", "CBAM"]
