"""The datasets of a spec on this machine: roots resolved, synthetic look-alikes written
where asked, loaders opened, and the folds each dataset runs.

Without the data (``validate``, ``run --dry-run`` before a download), each registered
dataset is described by an :func:`outline`: its classes, dimensionality and official
splits, known from the dataset's publication (the same splits the loader makes), so a
grid expands to exactly the trials it will run once the data is there."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dragsaw.platform.datasets.staging import is_url, local_path, stage
from dragsaw.platform.experiment.errors import Problem, SpecError
from dragsaw.platform.experiment.schema import DatasetSpec, ExperimentSpec
from dragsaw.workloads.data import SegmentationDataset, load_dataset

CV_FOLDS = (0, 1, 2, 3, 4)

#: name -> (classes, spatial dims, official split -> number of cases). CV datasets list their
#: folds (held-out cases per fold, as the loaders split them) and "all".
_FOLDS5 = ("fold0", "fold1", "fold2", "fold3", "fold4")
OFFICIAL: dict[str, tuple[tuple[str, ...], int, dict[str, int]]] = {
    "isic2016": (("background", "lesion"), 2, {"train": 900, "test": 379}),
    "isic2016_ph2": (("background", "lesion"), 2, {"train": 900, "test": 200}),
    "isic2017": (("background", "lesion"), 2, {"train": 2000, "val": 150, "test": 600}),
    "mc": (("background", "lung"), 2, {"train": 80, "test": 58}),
    "digestpath": (("background", "lesion"), 2, {**{f: 50 for f in _FOLDS5}, "all": 250}),
    "msd_brain": (("background", "edema", "non-enhancing tumour", "enhancing tumour"), 3,
                  {**{f: 97 for f in _FOLDS5}, "all": 484}),
    "msd_heart": (("background", "left atrium"), 3, {**{f: 4 for f in _FOLDS5}, "all": 20}),
    "msd_prostate": (("background", "PZ", "TZ"), 3, {**{f: 6 for f in _FOLDS5}, "all": 32}),
}


class DatasetOutline(SegmentationDataset):
    """A dataset known without its files: ``classes``, ``spatial_dims``, ``splits`` (split
    name -> placeholder case ids, as many as the split has cases), ``missing`` (True: the
    root is not on this machine) and ``counts_known`` (False for a ``folder`` dataset: its
    splits are known, its number of cases is not). Nothing can be read from it."""

    def __init__(self, name: str, root: str, classes: Sequence[str], spatial_dims: int, sizes: dict[str, int],
                 missing: bool,
                 counts_known: bool = True):
        super().__init__(root, classes)
        self.name, self.spatial_dims, self.missing = name, spatial_dims, missing
        self.counts_known = counts_known  # False: the splits are known, not how many cases they hold
        self.splits = {split: [f"{split}-{i}" for i in range(n)] for split, n in sizes.items() if split != "all"}
        self.sizes = dict(sizes)

    def _read(self, case_id: str):
        raise FileNotFoundError(f"{self.name}: {self.root} is not on this machine (an outline has no cases)")


def outline(d: DatasetSpec) -> DatasetOutline:
    """What ``d`` will be once its data is there: the official splits of a registered dataset,
    the splits a ``synthetic:`` look-alike writes, or those a ``folder`` dataset's options make.
    Raises ValueError for a dataset whose splits cannot be known without its files."""
    missing = not resolve_root(d.root).exists()
    options = dict(d.options)
    if d.synthetic is not None:
        kind = d.synthetic.get("kind", d.name)
        if kind == "isic2016":
            n_train, n_test = int(d.synthetic.get("n_train", 40)), int(d.synthetic.get("n_test", 16))
            return DatasetOutline(d.name, d.root, OFFICIAL["isic2016"][0], 2, {"train": n_train, "test": n_test},
                                  missing)
        if kind == "mc":
            n = int(d.synthetic.get("n", 24))
            n_test = min(max(round(n * 58 / 138), 1), n - 1)
            return DatasetOutline(d.name, d.root, OFFICIAL["mc"][0], 2, {"train": n - n_test, "test": n_test}, missing)
        if kind == "msd_brain":
            n = int(d.synthetic.get("n", 10))
            return DatasetOutline(d.name, d.root, OFFICIAL["msd_brain"][0], 3,
                                  {**{f: max(1, n // 5) for f in _FOLDS5}, "all": n}, missing)
    if d.name in OFFICIAL:
        classes, dims, sizes = OFFICIAL[d.name]
        return DatasetOutline(d.name, d.root, classes, dims, sizes, missing)
    if d.name == "folder":
        classes = options.get("classes")
        if not classes or isinstance(classes, str) or len(classes) < 2:
            raise ValueError("a `folder` dataset needs `options.classes` (two or more names, background first)")
        folds, test_fraction = options.get("folds", 5), options.get("test_fraction")
        sizes = {"test": 1} if test_fraction else {}
        sizes.update({f"fold{k}": 1 for k in range(int(folds or 0))})
        return DatasetOutline(d.name, d.root, classes, 2, {**sizes, "all": 0}, missing, counts_known=False)
    raise ValueError(f"{d.name}: its splits are not known without its files")


def resolve_root(root: str) -> Path:
    """A dataset root as an absolute path on this machine (relative roots: from the working
    directory); for a URL root (``s3://bucket/ISIC2016``) where its staged copy is (or will be)
    in this node's cache (``staging.local_path``)."""
    if is_url(root):
        return local_path(root)
    return Path(root).expanduser().resolve()


def root_text(root: str) -> str:
    """A dataset root as trial configs carry it: a URL as written, a path made absolute."""
    return root if is_url(root) else str(resolve_root(root))


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


def preview_datasets(spec: ExperimentSpec) -> tuple[dict[str, SegmentationDataset], list[str]]:
    """Every dataset of ``spec`` without writing or requiring anything: the opened loader
    where its root is on this machine, else its :func:`outline`. Returns (key -> dataset,
    one line per root that is missing here). Raises :class:`SpecError` for a present root
    that cannot be opened or lacks a fold, and for folds an outline does not have."""
    out: dict[str, SegmentationDataset] = {}
    missing: list[str] = []
    problems: list[Problem] = []
    for i, d in enumerate(spec.datasets):
        where = f"datasets[{i}]"
        root = resolve_root(d.root)
        if root.exists():
            try:
                out[d.key] = load_dataset(d.name, root, **d.options)
            except (ValueError, OSError, TypeError) as exc:
                problems.append(Problem(f"{where}.root", f"cannot open {d.name} at {root}: {exc}"))
                continue
        else:
            try:
                out[d.key] = outline(d)
            except ValueError as exc:
                problems.append(Problem(f"{where}.root", f"{d.root} does not exist (resolved: {root}) and {exc}"))
                continue
            missing.append(f"{d.key}: {d.root} (on object storage: each node stages it into {root} when it runs)"
                           if is_url(d.root) else
                           f"{d.key}: {root}" + (" (the synthetic look-alike is written there when the experiment "
                                                  "runs)" if d.synthetic is not None else " (not on this machine)"))
        problems += [Problem(f"{where}.folds", msg) for msg in fold_problems(d, out[d.key])]
        try:
            folds_of(d, out[d.key])
        except ValueError as exc:
            problems.append(Problem(f"{where}.folds", str(exc)))
    if problems:
        raise SpecError(problems, spec.source)
    return out, missing


def prepare_datasets(spec: ExperimentSpec, *, write: bool = True) -> dict[str, SegmentationDataset]:
    """Open every dataset of ``spec`` (key -> loader), first writing the synthetic look-alike
    into an absent root when the entry has ``synthetic`` and ``write`` is true.
    Raises :class:`SpecError` listing every dataset that cannot be opened or lacks a fold."""
    out, problems = {}, []
    for i, d in enumerate(spec.datasets):
        root = resolve_root(d.root)
        where = f"datasets[{i}]"
        try:
            if is_url(d.root):  # staged once into this node's cache (the driver reads it too)
                root = stage(d.root).path
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


__all__ = ["resolve_root", "root_text", "prepare_datasets", "preview_datasets", "outline", "DatasetOutline", "OFFICIAL", "default_folds", "folds_of", "fold_problems", "CV_FOLDS"]
