"""Model selection: which epoch's weights a trial's final evaluation uses.

``eval.selection: last`` (the default) evaluates the weights of the last epoch.
``eval.selection: best_val`` carves a validation subset out of the trial's TRAINING cases
(never its test / evaluation fold), trains on the rest, scores the model on the validation
cases (Dice in the trial's primary convention) every ``eval.val_every`` epochs and after
the last one, keeps the weights of the best-scoring epoch (the first one on ties), and
evaluates those on the held-out cases. The kept weights travel in the trial's checkpoint,
so a resumed trial selects and evaluates exactly what an uninterrupted one does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dragsaw.workloads.data import SegmentationDataset, fold_split, nested_subsets
from dragsaw.workloads.recipe.config import ConfigError, TrialConfig


def carve_validation(train_ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split training case ids into (remaining training ids, validation ids).

    ``round(fraction * n)`` cases (at least 1) are drawn by a shuffle seeded with ``seed`` (the
    trial's seed; a seed of its own, so the draw is not the data-fraction subset's order);
    the same ids, fraction and seed always give the same split. Training ids keep their
    order; validation ids are sorted. Raises :class:`ConfigError` when fewer than 2 training
    cases are given (nothing would be left to train on).
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"`0 < eval.val_fraction < 1` must hold, but got val_fraction={fraction}")
    n = len(train_ids)
    n_val = max(1, round(fraction * n))
    if n - n_val < 1:
        raise ConfigError(
            f"eval.selection best_val: the trial's training split has {n} case(s); carving "
            f"eval.val_fraction={fraction} ({n_val} case(s)) for validation leaves none to train on. "
            "It needs at least 2 training cases: use more data (data.fraction, a larger split) "
            "or eval.selection: last")
    order = sorted(train_ids)
    random.Random(f"dragsaw-validation-{seed}").shuffle(order)
    val = sorted(order[:n_val])
    held = set(val)
    return [c for c in train_ids if c not in held], val


def split_cases(dataset: SegmentationDataset, config: TrialConfig) -> tuple[list[str], list[str], list[str]]:
    """(training ids, validation ids, held-out ids) of one trial: its fold's split, the
    training cases cut to ``data.fraction`` (nested subsets), the held-out cases capped at
    ``data.max_eval_cases``, and with ``eval.selection: best_val`` the validation cases
    carved from the training ones (:func:`carve_validation`; else no validation ids)."""
    data, ev = config.data, config.eval
    train_ids, eval_ids = fold_split(dataset, data.fold)
    if data.fraction < 1:
        train_ids = nested_subsets(train_ids, [data.fraction], seed=data.subset_seed)[data.fraction]
    if data.max_eval_cases:
        eval_ids = eval_ids[: data.max_eval_cases]
    val_ids: list[str] = []
    if ev.selection == "best_val":
        train_ids, val_ids = carve_validation(train_ids, ev.val_fraction, config.seed)
    return train_ids, val_ids, eval_ids


@dataclass
class BestEpoch:
    """The best validated epoch so far: its number (1-based), validation Dice and a CPU copy
    of the model's weights (``state_dict``). NaN scores rank below every number."""

    epoch: int | None = None
    val_dice: float = math.nan
    weights: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _key(score: float) -> float:
        return score if math.isfinite(score) else -math.inf

    def offer(self, epoch: int, val_dice: float, model: nn.Module) -> bool:
        """Keep ``model``'s weights when ``val_dice`` beats the best so far (strictly: on a
        tie the earlier epoch stays). Returns whether it was kept."""
        if self.epoch is not None and not self._key(val_dice) > self._key(self.val_dice):
            return False
        self.epoch, self.val_dice = int(epoch), float(val_dice)
        self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True

    def state(self) -> dict[str, Any] | None:
        """What a checkpoint keeps (None before any epoch was validated)."""
        if self.epoch is None:
            return None
        return {"epoch": self.epoch, "val_dice": self.val_dice, "weights": self.weights}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> BestEpoch:
        if not state:
            return cls()
        return cls(int(state["epoch"]), float(state["val_dice"]), dict(state["weights"]))


__all__ = ["BestEpoch", "carve_validation", "split_cases"]
