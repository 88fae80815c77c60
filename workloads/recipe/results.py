"""What a trial hands back: epoch scores under the named conventions and per-case rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dragsaw.workloads.metrics import case_rows, summarize


def primary_convention(dims: int) -> str:
    """The convention of a trial's headline numbers: the paper's 2D one for 2D datasets,
    nnU-Net's foreground mean for 3D (as the paper reports each)."""
    return "paper2d" if dims == 2 else "foreground"


def epoch_scores(counts: dict[str, np.ndarray], classes: Sequence[str], dims: int, empty: str
                 ) -> dict[str, float | str]:
    """Headline dice/jaccard/accuracy (primary convention) plus both conventions spelled
    out and per-foreground-class Dice: ``dice``, ``dice_paper2d``, ``dice_foreground``,
    ``dice_<class>`` ..."""
    stacked = np.stack(list(counts.values()))
    out: dict[str, float | str] = {}
    for metric in ("dice", "jaccard", "accuracy"):
        for convention in ("paper2d", "foreground"):
            out[f"{metric}_{convention}"] = summarize(stacked, convention, metric, empty)
        out[metric] = out[f"{metric}_{primary_convention(dims)}"]
    per_class = summarize(stacked, "foreground", "dice", empty, per_class=True)
    for name, value in zip(classes[1:], per_class):
        out[f"dice_{name.replace(' ', '_')}"] = float(value)
    out["convention"] = primary_convention(dims)
    return out


def result_rows(counts: dict[str, np.ndarray], classes: Sequence[str], empty: str) -> list[dict]:
    """One row per held-out case and class with TP/FP/FN/TN and the metrics derived from them."""
    return [row for case_id, c in counts.items() for row in case_rows(case_id, c, list(classes), empty)]
