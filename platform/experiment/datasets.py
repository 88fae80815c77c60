"""The datasets of a spec on this machine: roots resolved, synthetic look-alikes written
where asked, loaders opened, and the folds each dataset runs."""

from __future__ import annotations

from pathlib import Path

from dragsaw.platform.experiment.errors import Problem, SpecError
from dragsaw.platform.experiment.schema import DatasetSpec, ExperimentSpec
from dragsaw.workloads.data import SegmentationDataset, load_dataset

CV_FOLDS = (0, 1, 2, 3, 4)


def resolve_root(root: str) -> Path:
    """A dataset root as an absolute path (relative roots: from the working directory)."""
    return Path(root).expanduser().resolve()


def fold_problems(d: DatasetSpec, dataset: SegmentationDataset) -> list[str]:
    """Folds of ``d`` that ``dataset`` has no split for."""
    names = sorted(dataset.splits)
    out = []
    for fold in d.folds or ():
        split = f"fold{fold}" if isinstance(fold, int) else fold
        if split not in dataset.splits:
            out.append(f"{d.name} at {d.root} has no split for fold {fold!r}; its splits are {names} "
                       "(CV folds 0-4 are the splits fold0..fold4)")
        elif not split.startswith("fold") and "train" not in dataset.splits:
            out.append(f"{d.name}: split {fold!r} has no 'train' split beside it to train on")
    return out


def default_folds(dataset: SegmentationDataset, single: bool = False) -> list[int | str]:
    """``[test]`` when the loader has a test split, else the CV folds it has (only the first
    when ``single``: a search with objective ``single``)."""
    if "test" in dataset.splits:
        return ["test"]
    folds: list[int | str] = [k for k in CV_FOLDS if f"fold{k}" in dataset.splits]
    if not folds:
        raise ValueError(f"{dataset.name} has neither a test split nor CV folds (splits: {sorted(dataset.splits)}); "
                         "list the folds to run")
    return folds[:1] if single else folds


def folds_of(d: DatasetSpec, dataset: SegmentationDataset, single: bool = False) -> list[int | str]:
    return list(d.folds) if d.folds is not None else default_folds(dataset, single)


def prepare_datasets(spec: ExperimentSpec, *, write: bool = True) -> dict[str, SegmentationDataset]:
    """Open every dataset of ``spec`` (key -> loader), first writing the synthetic look-alike
    into an absent root when the entry has ``synthetic`` and ``write`` is true.
    Raises :class:`SpecError` listing every dataset that cannot be opened or lacks a fold."""
    out, problems = {}, []
    for i, d in enumerate(spec.datasets):
        root = resolve_root(d.root)
        where = f"datasets[{i}]"
        try:
            if not root.exists():
                if d.synthetic is None:
                    problems.append(Problem(f"{where}.root", f"{d.root} does not exist (resolved: {root})"))
                    continue
                if not write:
                    problems.append(Problem(f"{where}.root", f"{d.root} does not exist yet (the synthetic "
                                                             "look-alike is written when the experiment runs)"))
                    continue
                from dragsaw.workloads.data.synthetic import write_synthetic

                options = {k: v for k, v in d.synthetic.items() if k != "kind"}
                write_synthetic(d.synthetic["kind"], root, **options)
            dataset = load_dataset(d.name, root, **d.options)
        except (ValueError, OSError, TypeError) as exc:
            problems.append(Problem(f"{where}.root", f"cannot open {d.name} at {root}: {exc}"))
            continue
        problems += [Problem(f"{where}.folds", msg) for msg in fold_problems(d, dataset)]
        try:
            folds_of(d, dataset)
        except ValueError as exc:
            problems.append(Problem(f"{where}.folds", str(exc)))
        out[d.key] = dataset
    if problems:
        raise SpecError(problems, spec.source)
    return out


__all__ = ["resolve_root", "prepare_datasets", "default_folds", "folds_of", "fold_problems", "CV_FOLDS"]
