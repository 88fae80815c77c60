"""A search spec as studies: one Optuna study per dataset, each turning a sample into trials."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dragsaw.platform.experiment.datasets import folds_of, prepare_datasets
from dragsaw.platform.experiment.grid import (
    TrialSpec,
    resources,
    trial_config,
    trial_id,
)
from dragsaw.platform.experiment.schema import ExperimentSpec
from dragsaw.platform.search.probe import Cut, effective_space
from dragsaw.platform.search.schema import SearchSpec
from dragsaw.platform.search.space import SearchSpace, parse_distribution
from dragsaw.workloads.canonical import digest
from dragsaw.workloads.data import SegmentationDataset
from dragsaw.workloads.recipe import TrialConfig

if TYPE_CHECKING:  # Optuna is imported where a study is opened, not by the spec schema
    import optuna


@dataclass(frozen=True)
class StudySpec:
    """One study: the base trial config of a dataset plus what the launcher needs.

    folds: the folds each sample is scored on (one for objective ``single``; their mean for
    ``mean_over_folds``); base_config: a complete TrialConfig dict for ``folds[0]`` before any
    parameter is applied; scheduler: {"type": "none"} or the ASHA arguments, defaults filled.
    """

    study_name: str
    experiment: str
    dataset: str
    folds: tuple
    seed: int
    fraction: float
    num_classes: int
    base_config: dict = field(hash=False)
    search: SearchSpec = field(hash=False)
    resources: dict = field(hash=False)
    #: choices cut before the study starts (``probe.effective_space``), and the narrowed
    #: distributions (suggest name -> distribution as plain data) they leave
    cuts: tuple[Cut, ...] = ()
    narrowed: dict = field(hash=False, default_factory=dict)

    @property
    def space(self) -> SearchSpace:
        """The effective space: the spec's, less the choices that cannot run (``cuts``)."""
        space = self.search.search_space()
        return space.with_dists({n: parse_distribution(d) for n, d in self.narrowed.items()}) if self.narrowed else space

    @property
    def metrics(self) -> list[str]:
        return self.search.metrics

    @property
    def modes(self) -> list[str]:
        return self.search.modes

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """Optuna's study directions, one per objective."""
        return ["maximize" if m == "max" else "minimize" for m in self.search.modes]

    @property
    def scheduler(self) -> dict[str, Any]:
        return self.search.scheduler.resolved(self.base_config["train"]["epochs"])

    def variant(self, params: Mapping[str, Any]) -> str:
        """A sample's variant name: ``search-`` and 8 hex digits of its parameters."""
        return "search-" + digest(dict(params), 8)

    def trial(self, params: Mapping[str, Any], fold: int | str | None = None) -> TrialSpec:
        """The trial of one sample (``params`` from ``SearchSpace.suggest``) on ``fold``
        (default: the first fold). The config is validated (plug-ins completed with the dataset's
        classes); ValueError (SpaceError, pydantic's ValidationError) if it is not valid."""
        fold = self.folds[0] if fold is None else fold
        if fold not in self.folds:
            raise ValueError(f"fold {fold!r} is not one of this study's folds {list(self.folds)}")
        config = self.space.apply(self.base_config, params)
        config["data"] = {**copy.deepcopy(config["data"]), "fold": fold}
        config = TrialConfig.model_validate(config).for_classes(self.num_classes).model_dump(mode="json")
        variant = self.variant(params)
        return TrialSpec(trial_id=trial_id(self.experiment, variant, self.dataset, fold, self.fraction, self.seed,
                                           params),
                         experiment=self.experiment, variant=variant, dataset=self.dataset, fold=str(fold),
                         seed=self.seed, fraction=self.fraction, params=dict(params), config=config,
                         resources=dict(self.resources))


def studies(spec: ExperimentSpec, datasets: Mapping[str, SegmentationDataset] | None = None) -> list[StudySpec]:
    """The studies of a search spec, one per dataset (default study name: ``<experiment>.<dataset>``)."""
    if spec.search is None:
        raise ValueError(f"spec {spec.name!r} is a grid, not a search; use expand(spec)")
    loaded = datasets if datasets is not None else prepare_datasets(spec)
    single = spec.search.objective == "single"
    out = []
    for d in spec.datasets:
        dataset = loaded[d.key]
        folds = tuple(folds_of(d, dataset, single=single))
        seed, fraction = spec.seeds[0], d.fraction[0]
        base = trial_config(spec, spec.dataset_base(d), d, dataset, folds[0], fraction, seed)
        space, cuts, _ = effective_space(spec.search.search_space(), spec.dataset_base(d))  # memoised
        narrowed = {n: space.dist(n).model_dump(mode="json") for n in {c.param for c in cuts}}
        name = spec.search.study_name or f"{spec.name}.{d.key}"
        if spec.search.study_name and len(spec.datasets) > 1:
            name = f"{spec.search.study_name}.{d.key}"
        out.append(StudySpec(study_name=name, experiment=spec.name, dataset=d.key, folds=folds, seed=seed,
                             fraction=fraction, num_classes=dataset.num_classes, base_config=base, search=spec.search,
                             resources=resources(spec), cuts=tuple(cuts), narrowed=narrowed))
    return out


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO notices off inside the block (its warnings stay), the verbosity as it
    was afterwards: dragsaw says in its own words what happened to a study."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def open_study(storage: optuna.storages.BaseStorage, study: StudySpec,
               sampler: optuna.samplers.BaseSampler | None = None,
               echo: Callable[[str], None] | None = None) -> optuna.Study:
    """Create or reopen ``study`` in ``storage`` (same name, same directions), without Optuna's
    "A new study created" / "Using an existing study" notices; ``echo`` gets one line instead
    (``study NAME: created`` or ``study NAME: reopened, N samples recorded``)."""
    import optuna

    from dragsaw.platform.search.samplers import make_sampler

    with quiet_optuna():
        existed = any(s.study_name == study.study_name for s in storage.get_all_studies())
        opened = optuna.create_study(storage=storage, study_name=study.study_name, directions=study.directions,
                                     sampler=sampler or make_sampler(study.search.sampler, study.search.seed),
                                     load_if_exists=True)
    check_space(opened, study, echo)
    if echo is not None:
        echo(f"study {study.study_name}: " + (f"reopened, {len(opened.trials)} samples recorded" if existed
                                              else "created"))
    return opened


#: The study's user attribute holding its effective space (``SearchSpace.describe``).
SPACE_ATTR = "dragsaw_space"


def check_space(opened: optuna.Study, study: StudySpec, echo: Callable[[str], None] | None = None) -> None:
    """Record the effective space in a new study; on reopening, compare it with the recorded
    one. Optuna cannot mix two choice lists of one categorical parameter in a study (it raises
    at the next suggestion, and TPE would read old indices against new choices), so a
    changed categorical or subset raises ValueError naming the parameters; a changed numeric
    range is only noted (Optuna keeps both). ``echo`` gets the note."""
    now = study.space.describe()
    recorded = opened.user_attrs.get(SPACE_ATTR)
    if recorded is None:
        opened.set_user_attr(SPACE_ATTR, now)
        return
    changed = sorted(n for n in set(now) | set(recorded) if now.get(n) != recorded.get(n))
    discrete = [n for n in changed if {(now.get(n) or {}).get("type"), (recorded.get(n) or {}).get("type")}
                & {"categorical", "subset"}]
    if discrete:
        lines = [f"  {n}: recorded {recorded.get(n)}, now {now.get(n)}" for n in discrete]
        raise ValueError(f"study {study.study_name}: its space changed since it was created (the image size, "
                         "the model or the spec's choices differ), and Optuna cannot mix the choices of one "
                         "parameter in a study:\n" + "\n".join(lines)
                         + "\n  restore the spec, or start a new study (search.study_name)")
    if changed:
        if echo is not None:
            echo(f"study {study.study_name}: note: ranges changed since it was created: {changed}")
        opened.set_user_attr(SPACE_ATTR, now)


__all__ = ["StudySpec", "open_study", "check_space", "quiet_optuna", "studies", "SPACE_ATTR"]
