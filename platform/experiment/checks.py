"""What a valid spec still needs from this machine and installation: dataset roots,
registered dataset and model names, and layer names that the chosen models have.
Nothing is written and nothing is launched."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dragsaw.platform.datasets.staging import is_url, url_root_problem
from dragsaw.platform.experiment.configs import deep_merge, plugin_layers, unflatten
from dragsaw.platform.experiment.datasets import fold_problems, folds_of, outline, resolve_root
from dragsaw.platform.experiment.errors import Loc, format_loc
from dragsaw.platform.experiment.schema import ExperimentSpec
from dragsaw.platform.experiment.variants import axis_entries, combine
from dragsaw.platform.search.distributions import CategoricalDist
from dragsaw.workloads._checks import closest
from dragsaw.workloads.data import DATASETS, load_dataset
from dragsaw.workloads.models import build_model, model_names
from dragsaw.workloads.plugins import declared_stages
from dragsaw.workloads.recipe.preflight import config_problems


class _Models:
    """Models built once per (name, width, options) on the meta device: their layer names."""

    def __init__(self):
        self._cache: dict[str, tuple[nn.Module | None, str | None]] = {}

    def get(self, model: Mapping) -> tuple[nn.Module | None, str | None]:
        key = json.dumps(model, sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = self._build(model)
        return self._cache[key]

    @staticmethod
    def _build(model: Mapping) -> tuple[nn.Module | None, str | None]:
        name = model.get("name")
        if name not in model_names():
            return None, f"unknown model {name!r}; {closest(str(name), model_names())} (registered: {model_names()})"
        kwargs: dict[str, Any] = dict(in_channels=1, num_classes=2, width=model.get("width", 1.0),
                                      **(model.get("options") or {}))
        try:
            with torch.device("meta"):  # names only: no memory, no time
                return build_model(name, **kwargs), None
        except (ValueError, TypeError) as exc:
            return None, str(exc)
        except Exception:  # a model that cannot live on meta: build it small on the CPU instead
            kwargs["width"] = min(kwargs["width"], 0.0625)
            try:
                return build_model(name, **kwargs), None
            except Exception as exc:  # noqa: BLE001 - reported as a problem of the spec
                return None, f"cannot build model {name!r}: {exc}"


def _valid_layers(net: nn.Module) -> list[str]:
    return list(declared_stages(net)) + [n for n, _ in net.named_modules() if n]


def _layer_problems(where: Loc, parts: Mapping, models: _Models, reported: set, prefix: str = "") -> list[str]:
    """Problems with the model of ``parts`` and the layer names its plug-ins use."""
    net, error = models.get(parts["model"])
    if net is None:
        key = ("model", error)
        if key in reported:
            return []
        reported.add(key)
        return [f"{prefix}{format_loc(where + ('model', 'name'))}: {error}"]
    valid = _valid_layers(net)
    out = []
    for loc, layer in plugin_layers(parts.get("plugins")):
        if layer in valid or (parts["model"]["name"], layer) in reported:
            continue
        reported.add((parts["model"]["name"], layer))
        out.append(f"{prefix}{format_loc(where + ('plugins',) + loc)}: {layer!r} is not a stage or module of "
                   f"{parts['model']['name']}; {closest(str(layer), valid)}")
    return out


def _dataset_problems(spec: ExperimentSpec, models: _Models, require_data: bool = True) -> list[str]:
    problems = []
    for i, d in enumerate(spec.datasets):
        where = f"datasets[{i}]"
        model_dims = set()  # this dataset's models (its overrides may pick a 3D one beside 2D sets)
        for _name, overrides in combine(spec.variants, spec.axes):
            model = deep_merge(spec.dataset_base(d), overrides)["model"]
            net, _ = models.get(model)
            if net is not None:
                model_dims.add((net.spatial_dims, model["name"]))
        if d.name not in DATASETS:
            problems.append(f"{where}.name: unknown dataset {d.name!r}; {closest(d.name, DATASETS)} "
                            f"(registered: {sorted(DATASETS)})")
            continue
        root = resolve_root(d.root)
        if is_url(d.root):  # on object storage: it must list files; staged when it runs
            problem = url_root_problem(d.root)
            if problem:
                problems.append(f"{where}.root: {problem}")
                continue
        if not root.exists():
            if d.synthetic is None and require_data and not is_url(d.root):
                problems.append(f"{where}.root: {d.root} does not exist (resolved: {root}); give the folder the "
                                "dataset was extracted into, or a `synthetic:` section to write a look-alike there")
                continue
            try:
                known = outline(d)  # its classes, dimensionality and official splits
            except ValueError as exc:
                problems.append(f"{where}.root: {d.root} does not exist (resolved: {root}) and {exc}")
                continue
            problems += _dims_problems(where, d.name, known.spatial_dims, model_dims)
            continue
        if not root.is_dir():
            problems.append(f"{where}.root: {root} is not a folder")
            continue
        try:
            dataset = load_dataset(d.name, root, **d.options)
        except (ValueError, OSError, TypeError) as exc:
            problems.append(f"{where}.root: cannot open {d.name} at {root}: {exc}")
            continue
        problems += [f"{where}.folds: {msg}" for msg in fold_problems(d, dataset)]
        try:
            folds_of(d, dataset)
        except ValueError as exc:
            problems.append(f"{where}.folds: {exc}")
        problems += _dims_problems(where, d.name, dataset.spatial_dims, model_dims)
    return problems


def _dims_problems(where: str, name: str, dims: int, model_dims: set) -> list[str]:
    return [f"{where}: {name} is {dims}D but model {model} is {m}D" for m, model in sorted(model_dims) if m != dims]


def _search_problems(spec: ExperimentSpec, base: dict, models: _Models, reported: set) -> list[str]:
    if spec.search is None:
        return []
    space = spec.search.search_space()
    candidates = [base["model"]]
    if "model.name" in space.names():
        names = space.param("model.name").dist
        if isinstance(names, CategoricalDist):
            candidates = [{**base["model"], "name": c} for c in names.choices]
    problems = []
    for model in candidates:
        problems += _layer_problems((), {**base, "model": model}, models, reported)
        net, _ = models.get(model)
        if net is None:
            continue
        valid = _valid_layers(net)
        for p in space.params:
            if p.target[0] != "placement":
                continue
            for j, layer in enumerate(p.layer_choices):
                if layer not in valid and (model["name"], layer) not in reported:
                    reported.add((model["name"], layer))
                    problems.append(f"{format_loc(('search', 'space', p.name, 'choices', j))}: {layer!r} is not a "
                                    f"stage or module of {model['name']}; {closest(layer, valid)}")
    return problems


def check_paths(spec: ExperimentSpec, require_data: bool = True) -> list[str]:
    """Problems that stop ``spec`` from running here, each ``path: message`` (empty when fine):
    dataset names and roots (a root may be absent when ``synthetic`` is given), folds the
    datasets lack, model names, 2D/3D mismatches, and every plug-in layer name (base,
    variants, axes, crossed variants, search placements) the chosen model does not have,
    with the closest valid names, and what the models refuse (``preflight``: PDCR ``n`` beyond a
    layer's positions, patches larger than the image), once per distinct (model, width, image
    size, placement). Models are built on the ``meta`` device (no memory).
    ``require_data=False`` (validate, dry runs): a missing root is no problem; its dataset is
    known from its outline (classes, dimensionality, official splits)."""
    models = _Models()
    reported: set = set()
    problems = _dataset_problems(spec, models, require_data)
    base = spec.base_config()
    problems += _layer_problems((), base, models, reported)
    bases: dict[str, tuple[str, dict]] = {}
    for i, d in enumerate(spec.datasets):
        own = spec.dataset_base(d)
        if d.overrides:
            problems += _layer_problems(("datasets", i, "overrides"), own, models, reported)
        bases.setdefault(json.dumps(own, sort_keys=True, default=str), (d.key, own))
    if spec.search is not None:
        for _key, own in bases.values():
            problems += _search_problems(spec, own, models, reported)
        return problems
    for name, overrides in (spec.variants or {}).items():
        problems += _layer_problems(("variants", name), deep_merge(base, overrides or {}), models, reported)
    for axis, values in (spec.axes or {}).items():
        for where, _label, overrides in axis_entries(axis, values):
            problems += _layer_problems(("axes", axis) + where, deep_merge(base, unflatten(overrides)), models,
                                        reported)
    probed: set[str] = set()
    for key, own in bases.values():
        for name, overrides in combine(spec.variants, spec.axes):
            prefix = (f"dataset {key!r}, " if len(bases) > 1 else "") + f"variant {name!r}: "
            parts = deep_merge(own, overrides)
            problems += _layer_problems((), parts, models, reported, prefix=prefix)
            problems += _model_problems(parts, probed, prefix)
    return problems


def _model_problems(parts: Mapping, probed: set[str], prefix: str) -> list[str]:
    """What the model itself refuses in one trial config (``preflight``: PDCR ``n`` against the
    positions of its layers at the image size, patches larger than the image); each distinct
    (model, width, image size, placement) is probed once."""
    train = parts.get("train") or {}
    key = json.dumps([parts.get("model"), train.get("image_size"), train.get("patch_size"), parts.get("plugins")],
                     sort_keys=True, default=str)
    if key in probed:
        return []
    probed.add(key)
    return [f"{prefix}{format_loc(loc)}: {msg}" for loc, msg in config_problems(parts)]


__all__ = ["check_paths"]
