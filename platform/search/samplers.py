"""Optuna samplers by the names specs use (``search.sampler``)."""

from __future__ import annotations

import warnings

import optuna

from dragsaw.platform.search.schema import SAMPLERS
from dragsaw.workloads._checks import closest


def make_sampler(name: str, seed: int | None = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` (``tpe``, ``random``, ``cmaes``, ``gp``, ``qmc``, ``nsgaii``,
    ``nsgaiii``), seeded.

    ``tpe`` is multivariate with group decomposition, which models conditional spaces
    (parameters present in some trials only) jointly per sub-space, and keeps Optuna's
    constant liar so that concurrent trials spread out. ``grid`` is refused: grids are
    crossed by the platform (``variants``/``axes``), not sampled.
    """
    if name not in SAMPLERS:
        hint = ("grids are written as `variants`/`axes`, not sampled" if name in ("grid", "bruteforce")
                else closest(str(name), SAMPLERS))
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, but got {name!r}; {hint}")
    with warnings.catch_warnings():  # `group` and QMC are marked experimental; chosen on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, warn_asynchronous_seeding=False)
        if name == "nsgaii":
            return optuna.samplers.NSGAIISampler(seed=seed)
        return optuna.samplers.NSGAIIISampler(seed=seed)


__all__ = ["make_sampler"]
