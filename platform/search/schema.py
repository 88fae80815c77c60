"""The ``search:`` section of a spec: an Optuna study per dataset, run by Ray Tune.

    search:
      num_samples: 40
      sampler: tpe                 # tpe | random | cmaes | gp | qmc | nsgaii | nsgaiii
      seed: 0                      # the sampler's seed
      scheduler: asha              # none | asha | {type: asha, grace_period: 1, reduction_factor: 2, max_t: 20}
      metric: dice                 # mode: max | min (default: the metric's known direction)
      objective: single            # single (one fold) | mean_over_folds
      objectives: null             # or [{metric: dice, mode: max}, {metric: train_seconds, mode: min}]
      storage: null                # default: an Optuna journal kept in the result store (any store,
                                   # s3:// too); or a database URL (postgresql://user@host/db),
                                   # credentials from the environment only (no password in the URL)
      study_name: null             # default: <experiment>.<dataset>
      warm_start: null             # {experiments: [grid_a, search_b], top: 3}: the best `top`
                                   # configurations of each earlier experiment in the same store
                                   # (grids: variants by mean metric; searches: completed samples)
                                   # are the first samples, where the space can express them
      space: {...}                 # see dragsaw.platform.search.space
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dragsaw.platform.experiment.errors import Loc, raise_problems
from dragsaw.platform.search.space import SearchSpace, SpaceError
from dragsaw.workloads._checks import closest

#: Sampler name -> whether it handles several objectives.
SAMPLERS = {"tpe": True, "random": True, "cmaes": False, "gp": True, "qmc": True, "nsgaii": True, "nsgaiii": True}
#: Metrics a trial reports, with the direction that is better. ``dice_<class>`` is per class
#: (max); ``train_seconds`` (cumulative training time) is added by the launcher.
METRIC_MODES = {
    **{f"{m}{c}": "max" for m in ("dice", "jaccard", "accuracy") for c in ("", "_paper2d", "_foreground")},
    "train_loss": "min", "train_seg_loss": "min", "train_pdcr_loss": "min", "epoch_seconds": "min",
    "train_seconds": "min",
    # Dice on the validation cases carved from the training cases (eval.selection: best_val):
    # the metric to steer a search by without looking at the evaluation fold.
    "val_dice": "max",
}
SCHEDULERS = ("none", "asha")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def metric_mode(metric: str, mode: str | None) -> str:
    """``mode`` if given, else the metric's known direction; ValueError for unknown metrics."""
    if metric not in METRIC_MODES and not metric.startswith("dice_"):
        raise ValueError(f"unknown metric {metric!r}; {closest(metric, METRIC_MODES)} (metrics: "
                         f"{', '.join(METRIC_MODES)}, dice_<class>)")
    return mode or METRIC_MODES.get(metric, "max")


class Objective(_Strict):
    """One objective of a multi-objective study."""

    metric: str
    mode: Literal["max", "min"] | None = None

    @model_validator(mode="after")
    def _known(self):
        object.__setattr__(self, "mode", metric_mode(self.metric, self.mode))
        return self


class Scheduler(_Strict):
    """``none``, or ``asha`` (Ray Tune's ASHA: stop poor trials early). ``max_t`` defaults to
    ``train.epochs``; one time step is one epoch."""

    type: Literal["none", "asha"] = "none"
    grace_period: int | None = Field(default=None, ge=1)
    reduction_factor: float | None = Field(default=None, gt=1)
    max_t: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v):
        if isinstance(v, str):
            if v not in SCHEDULERS:
                raise ValueError(f"scheduler must be one of {list(SCHEDULERS)}, but got {v!r}; {closest(v, SCHEDULERS)}")
            return {"type": v}
        return v

    @model_validator(mode="after")
    def _options_need_asha(self):
        given = [k for k in ("grace_period", "reduction_factor", "max_t") if getattr(self, k) is not None]
        if self.type != "asha" and given:
            raise ValueError(f"{given} are options of the asha scheduler, but type is {self.type!r}")
        return self

    def resolved(self, epochs: int) -> dict[str, Any]:
        """The scheduler with its defaults filled: {"type": "none"} or the ASHA arguments."""
        if self.type == "none":
            return {"type": "none"}
        return {"type": "asha", "grace_period": self.grace_period or 1,
                "reduction_factor": self.reduction_factor or 2.0, "max_t": self.max_t or epochs}


class WarmStart(_Strict):
    """Earlier experiments (in the same store) whose best ``top`` configurations each are
    enqueued as the first samples of a new study."""

    experiments: list[str] = Field(min_length=1)
    top: int = Field(default=3, ge=1, le=1000)

    @field_validator("experiments")
    @classmethod
    def _names(cls, v):
        bad = [n for n in v if not re.fullmatch(r"[a-z0-9_-]+", n)]
        if bad:
            raise ValueError(f"experiment names match [a-z0-9_-]+, but got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"experiments must be distinct, but got {v}")
        return v


class SearchSpec(_Strict):
    """An Optuna study per dataset (see the module docstring)."""

    num_samples: int = Field(ge=1)
    sampler: str = "tpe"
    seed: int = 0
    scheduler: Scheduler = Field(default_factory=Scheduler)
    metric: str = "dice"
    mode: Literal["max", "min"] | None = None
    objective: Literal["single", "mean_over_folds"] = "single"
    objectives: list[Objective] | None = Field(default=None, min_length=2)
    storage: str | None = None
    study_name: str | None = None
    warm_start: WarmStart | None = None
    space: dict[str, Any]

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v):
        if v in ("grid", "bruteforce"):
            raise ValueError(f"{v!r} is not a search sampler here: write a grid as `variants`/`axes` (the "
                             "platform crosses them and runs every trial)")
        if v not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, but got {v!r}; {closest(v, SAMPLERS)}")
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v):
        metric_mode(v, None)
        return v

    @field_validator("storage")
    @classmethod
    def _storage(cls, v):
        if v is None:
            return v
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(v)
        except ArgumentError:
            raise ValueError("storage must be an SQLAlchemy URL such as postgresql://user@host/db (or absent: a "
                             "journal in the result store), but it does not parse as one") from None
        if url.password is not None:  # never repeat it: the message may be logged
            raise ValueError(f"storage {url.render_as_string(hide_password=True)} holds a password: a spec is "
                             "copied into the store (spec.json), so give the URL without it and the password "
                             "in the environment (PGPASSWORD, or ~/.pgpass)")
        return v

    @field_validator("space")
    @classmethod
    def _space(cls, v):
        try:
            SearchSpace(v)
        except SpaceError as exc:
            raise_problems("space", exc.problems)
        return v

    @model_validator(mode="after")
    def _objectives(self):
        problems: list[tuple[Loc, str]] = []
        if self.objectives is not None:
            defaults = {"metric": "dice", "mode": None}  # a dumped spec spells them out: not a conflict
            given = [k for k, d in defaults.items() if k in self.model_fields_set and getattr(self, k) != d]
            if given:
                problems.append(((), f"give either `objectives` or {given}, not both"))
            if not SAMPLERS[self.sampler]:
                problems.append((("sampler",), (f"sampler {self.sampler!r} optimises one objective; for "
                                               f"`objectives` use one of {[k for k, v in SAMPLERS.items() if v]}")))
            if self.scheduler.type != "none":
                problems.append((("scheduler",), ("a scheduler stops trials by one metric; with `objectives` "
                                                 "use scheduler: none")))
            metrics = [o.metric for o in self.objectives]
            if len(set(metrics)) != len(metrics):
                problems.append((("objectives",), f"metrics must be distinct, but got {metrics}"))
        else:
            object.__setattr__(self, "mode", metric_mode(self.metric, self.mode))
        raise_problems("SearchSpec", problems)
        return self

    def search_space(self) -> SearchSpace:
        return SearchSpace(self.space)

    @property
    def metrics(self) -> list[str]:
        """The objective metric(s), in order."""
        return [o.metric for o in self.objectives] if self.objectives else [self.metric]

    @property
    def modes(self) -> list[str]:
        pairs = [(o.metric, o.mode) for o in self.objectives] if self.objectives else [(self.metric, self.mode)]
        return [metric_mode(metric, mode) for metric, mode in pairs]  # modes are filled in by validation

    def scheduler_problems(self, epochs: int) -> list[tuple[Loc, str]]:
        """ASHA's steps against the number of epochs."""
        if self.scheduler.type != "asha":
            return []
        s = self.scheduler.resolved(epochs)
        out = []
        if s["max_t"] > epochs:
            out.append((("max_t",), (f"`max_t <= train.epochs` must hold, but got (max_t={s['max_t']}, "
                                    f"train.epochs={epochs})")))
        if s["grace_period"] > s["max_t"]:
            out.append((("grace_period",), (f"`grace_period <= max_t` must hold, but got "
                                           f"(grace_period={s['grace_period']}, max_t={s['max_t']})")))
        return out


__all__ = ["SearchSpec", "WarmStart", "Scheduler", "Objective", "SAMPLERS", "METRIC_MODES", "metric_mode"]
