"""The parts of an experiment spec besides the trial config: datasets, resources, failures."""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dragsaw.platform.experiment.errors import raise_problems
from dragsaw.workloads._checks import closest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _fold(value: Any) -> int | str:
    """A fold as the loaders take it: a CV fold 0-4 (``2``, ``"2"``, ``"fold2"``) or a split name."""
    if isinstance(value, bool):
        raise ValueError(f"a fold is a CV fold 0-4 or an official split name such as 'test', but got {value!r}")
    text = str(value)
    digits = text.removeprefix("fold")
    if isinstance(value, int) or digits.isdigit():
        k = int(digits)
        if not 0 <= k <= 4:
            raise ValueError(f"a cross-validation fold must be 0-4, but got {value!r}")
        return k
    if not isinstance(value, str) or not value:
        raise ValueError(f"a fold is a CV fold 0-4 or an official split name such as 'test', but got {value!r}")
    return value


class DatasetSpec(_Strict):
    """One dataset of the experiment.

    name: a registered dataset (``DATASETS``); root: the folder it was extracted into (relative
    paths are relative to the working directory); options: the loader's options; label: how
    trials and leaderboards name this entry (default: ``name``; set it when one dataset appears
    twice); folds: official split names and/or CV folds 0-4 (default: ``[test]`` when the loader
    has a test split, else ``[0, 1, 2, 3, 4]``); synthetic: write the look-alike into ``root``
    when it is absent (``kind`` defaults to ``name``, the other keys go to the writer);
    fraction: share of the training cases (a list crosses several, Fig. 7); subset_seed and
    max_eval_cases: as in the trial's DataConfig; overrides: model / plugins / train / eval
    settings for this dataset only (e.g. the 3D U-Net and patch size of an MSD task beside 2D
    sets), merged over the spec's before any variant (dotted keys allowed).
    """

    name: str
    root: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    folds: list[int | str] | None = Field(default=None, min_length=1)
    synthetic: dict[str, Any] | None = None
    fraction: list[float] = Field(default_factory=lambda: [1.0], min_length=1)
    subset_seed: int = 0
    max_eval_cases: int | None = Field(default=None, ge=1)
    overrides: dict[str, Any] = Field(default_factory=dict)

    @field_validator("label")
    @classmethod
    def _label(cls, v):
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", v):
            raise ValueError(f"a label uses letters, digits, '_', '.', '-', but got {v!r}")
        return v

    @field_validator("folds", mode="before")
    @classmethod
    def _folds(cls, v):
        if v is None:
            return v
        values = v if isinstance(v, list) else [v]
        problems, out = [], []
        for i, item in enumerate(values):
            try:
                out.append(_fold(item))
            except ValueError as exc:
                problems.append(((i,), str(exc)))
        raise_problems("folds", problems)
        repeated = sorted({str(f) for f in out if out.count(f) > 1})
        if repeated:
            raise ValueError(f"folds must be distinct, but {repeated} repeat")
        return out

    @field_validator("fraction", mode="before")
    @classmethod
    def _fractions(cls, v):
        values = v if isinstance(v, list) else [v]
        for f in values:
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
                raise ValueError(f"`0 < fraction <= 1` must hold for every fraction, but got {f!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"fractions must be distinct, but got {values}")
        return values

    @field_validator("synthetic")
    @classmethod
    def _synthetic(cls, v, info: ValidationInfo):
        if v is None:
            return v
        from dragsaw.workloads.data.synthetic import WRITERS

        kind = v.get("kind", info.data.get("name"))
        if kind not in WRITERS:
            raise_problems("synthetic", [(("kind",), (f"no synthetic look-alike of {kind!r}; look-alikes exist for "
                                                     f"{sorted(WRITERS)} ({closest(str(kind), WRITERS)})"))])
        if "name" in info.data and kind != info.data["name"]:
            raise_problems("synthetic", [(("kind",), (f"the look-alike must be of the dataset it stands for "
                                                     f"({info.data['name']!r}), but got {kind!r}"))])
        params = _writer_options(kind)
        unknown = [k for k in v if k != "kind" and k not in params]
        raise_problems("synthetic", [((k,), (f"unknown option of the {kind} writer; {closest(k, params)} "
                                            f"(options: kind, {', '.join(params)})")) for k in unknown])
        return {"kind": kind, **{k: val for k, val in v.items() if k != "kind"}}

    @property
    def key(self) -> str:
        """The dataset's name in trials and leaderboards."""
        return self.label or self.name


def _writer_options(kind: str) -> list[str]:
    from dragsaw.workloads.data.synthetic import WRITERS

    writer = WRITERS[kind]
    if kind == "msd_brain":
        from dragsaw.workloads.data.synthetic3d import write_msd_brain as writer
    return [p for p in inspect.signature(writer).parameters if p not in ("root", "overwrite", "kw")]


class Resources(_Strict):
    """Per trial: CPUs (may be fractional) and GPUs (a fraction of one, or whole GPUs)."""

    cpus: float = Field(default=1.0, gt=0)
    gpus: float = Field(default=0.0, ge=0)

    @field_validator("gpus")
    @classmethod
    def _whole_above_one(cls, v):
        if v > 1 and v != int(v):
            raise ValueError(f"more than one GPU must be a whole number (Ray shares only single GPUs), but got {v}")
        return v


class Checkpoints(_Strict):
    """What a trial keeps in the store's ``_checkpoints`` (``checkpoints: final | none`` is
    short for ``{keep: ...}``).

    keep: after a trial completes, ``final`` keeps its weights only (``weights.pt``, what the
    report rebuilds pictures from), ``none`` nothing; pruned trials keep nothing either way.
    top_k: a search keeps the final weights of its study's best ``top_k`` samples only.
    While a trial runs, its latest resume checkpoint is uploaded after an epoch when any of:
    ``every_epochs`` epochs passed since the last upload (null: no such rule),
    ``every_minutes`` of training passed since it, or the uploads so far plus the last one's
    duration stay within ``upload_share`` of the trial's training time (so the first epoch is
    always uploaded, and fast uploads are made every epoch; 0 turns this rule off). The last
    epoch is never uploaded as a resume checkpoint: the trial completes with it.
    """

    keep: str = "final"
    top_k: int = Field(default=3, ge=0)
    every_epochs: int | None = Field(default=None, ge=1)
    every_minutes: float = Field(default=30.0, gt=0)
    upload_share: float = Field(default=0.01, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _short(cls, v):
        return {"keep": v} if isinstance(v, str) else v

    @field_validator("keep")
    @classmethod
    def _keep(cls, v):
        if v not in ("final", "none"):
            raise ValueError(f"keep must be 'final' (the finished trial's weights) or 'none', but got {v!r}")
        return v


class Failure(_Strict):
    """max_failures: retries of a failed trial, each from its last checkpoint."""

    max_failures: int = Field(default=1, ge=0)


__all__ = ["DatasetSpec", "Resources", "Failure", "Checkpoints"]
