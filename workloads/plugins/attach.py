"""Attach PDCR and UAFR (or SE / CBAM) to any ``nn.Module`` by submodule name.

Re-weighting blocks run as forward hooks that return the modified output; PDCR
runs as forward hooks that record the output for the step's loss. Every name is
checked before anything is attached, a module takes one re-weighting block and
one PDCR recorder at most, and :meth:`Plugins.detach` restores the model exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from dragsaw.workloads._checks import closest
from dragsaw.workloads.pdcr.config import PDCRConfig
from dragsaw.workloads.pdcr.geometry import ReceptiveField
from dragsaw.workloads.pdcr.probe import probe_receptive_field
from dragsaw.workloads.pdcr.regularizer import PDCR
from dragsaw.workloads.plugins.config import KINDS, PluginsConfig
from dragsaw.workloads.plugins.stages import declared_stages

_MARK = "_dragsaw_plugins"  # attribute on a hooked module: {"reweight"|"pdcr": owner id}


def _key(name: str) -> str:
    return name.replace(".", "__")  # ModuleDict keys cannot hold dots


class Plugins(nn.Module):
    """The plug-ins attached to one model: re-weighting blocks (``reweight[layer]``) and
    the PDCR regularizer (``pdcr``, with its cross-layer projections). Train and
    checkpoint it with the model, e.g. through :class:`PluggedModel`. A re-weighting
    block runs in the train/eval mode of the module it is attached to.
    """

    def __init__(self, config: PluginsConfig, paths: dict[str, str]):
        super().__init__()
        self.config = config
        self.paths = paths  # config name -> module path
        self.reweight = nn.ModuleDict()
        self.pdcr: PDCR | None = None
        self._handles: list = []
        self._marked: list[tuple[nn.Module, str]] = []

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def regularization(self, labels: torch.Tensor) -> torch.Tensor:
        """PDCR loss of the last training forward (0 without PDCR). labels: (B, *S) int64."""
        if self.pdcr is None:
            return torch.zeros((), device=labels.device)
        return self.pdcr(labels)

    def detach(self) -> None:
        """Remove every hook and mark; the model computes exactly what it did before."""
        for handle in self._handles:
            handle.remove()
        for module, group in self._marked:
            marks = getattr(module, _MARK, {})
            marks.pop(group, None)
            if not marks and hasattr(module, _MARK):
                delattr(module, _MARK)
        self._handles.clear()
        self._marked.clear()
        if self.pdcr is not None:
            self.pdcr.clear()


class PluggedModel(nn.Module):
    """The training wrapper: the model and its plug-ins as one module, so that
    ``parameters()``, ``state_dict()`` and ``train()/eval()`` cover both.
    forward(x) is the model's; ``regularization(labels)`` the PDCR loss of that forward."""

    def __init__(self, model: nn.Module, plugins: Plugins):
        super().__init__()
        self.model = model
        self.plugins = plugins

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def regularization(self, labels: torch.Tensor) -> torch.Tensor:
        return self.plugins.regularization(labels)


def _resolve(model: nn.Module, config: PluginsConfig) -> dict[str, str]:
    modules = dict(model.named_modules())
    stages = declared_stages(model)
    names = list(config.pdcr.layers()) if config.pdcr else []
    for _kind, block in config.blocks():
        names += [n for n in block.layers if n not in names]
    paths, problems = {}, []
    valid = list(stages) + [n for n in modules if n]
    for name in names:
        if name in stages:
            paths[name] = stages[name].module
        elif name in modules and name:
            paths[name] = name
        else:
            problems.append(f"  {name!r}: no such module or stage; {closest(name, valid)}")
    if problems:
        raise ValueError("unknown layer names in the plug-in config:\n" + "\n".join(problems))
    return paths


def _shapes(model: nn.Module, paths: dict[str, str], example_input) -> dict[str, tuple[int, ...]]:
    """Output shape (B, C, *S) of each named layer for ``example_input`` (one eval forward)."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}
    handles = []
    for name, path in paths.items():
        def hook(module, inputs, output, name=name):
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returns {type(output).__name__}, not a tensor: plug-ins "
                                "need a module whose output is one feature map (B, C, *S)")
            shapes[name] = tuple(output.shape)
            calls[name] = calls.get(name, 0) + 1
        handles.append(modules[path].register_forward_hook(hook))
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags.items():
            m.training = flag
    for name, shape in shapes.items():
        if len(shape) not in (4, 5):
            raise ValueError(f"layer {name!r} output has shape {shape}: plug-ins need (B, C, H, W) or "
                             "(B, C, D, H, W) feature maps")
    never = [n for n in paths if n not in shapes]
    if never:
        raise ValueError(f"layers {never} were not called in a forward pass of the model")
    shared = {n: c for n, c in calls.items() if c > 1}
    if shared:
        raise ValueError(f"layers {shared} (name: calls) run more than once in one forward pass (a shared "
                         "module, e.g. an activation reused within a block): a plug-in there would re-weight "
                         "every call and PDCR would see only the last; name a module that runs once")
    return shapes


def _example(model: nn.Module, example_input: torch.Tensor | Sequence[int] | None) -> torch.Tensor | None:
    if example_input is None:
        return None
    if isinstance(example_input, torch.Tensor):
        return example_input
    if isinstance(example_input, Sequence) and all(isinstance(v, int) for v in example_input):
        try:
            param = next(model.parameters())
            return torch.zeros(*example_input, device=param.device, dtype=param.dtype)
        except StopIteration:
            return torch.zeros(*example_input)
    raise TypeError(f"`example_input` must be a tensor or a shape (B, C, *S), but got {example_input!r}")


def attach(model: nn.Module, config: PluginsConfig | Mapping,
           example_input: torch.Tensor | Sequence[int] | None = None, num_classes: int | None = None) -> Plugins:
    """Attach the configured plug-ins to ``model`` and return them as a :class:`Plugins` module.

    config: a :class:`PluginsConfig` or the same as a dict (unknown keys are errors).
    num_classes: M, the classes of the labels: fills ``pdcr.num_classes`` and
        ``uafr.num_maps`` where the config leaves them out (a ValueError names what is
        still unset when it is not given, and a ``pdcr.num_classes`` that differs from it).
    example_input: a tensor or shape (B, C, *S) for one forward that tells each layer's
        channels and spatial size (and the input size for receptive-field probes).
        Needed unless every named layer is a stage the model declares with its channels
        and the model has ``spatial_dims``.
    Raises ``ValueError`` (naming every unknown layer, with the closest valid names) before
    anything is attached, and refuses a module that already carries the same kind of plug-in.
    """
    if not isinstance(config, PluginsConfig):
        config = PluginsConfig.model_validate(dict(config))
    if num_classes is not None:
        config = config.for_classes(num_classes)
    paths = _resolve(model, config)
    modules = dict(model.named_modules())
    groups: dict[str, list[str]] = {name: [] for name in paths}
    for _kind, block in config.blocks():
        for name in block.layers:
            groups[name].append("reweight")
    for name in config.pdcr.layers() if config.pdcr else ():
        groups[name].append("pdcr")
    by_module: dict[str, list[str]] = {}
    for name, path in paths.items():
        by_module.setdefault(path, []).append(name)
    for path, names in by_module.items():
        if len(names) > 1:
            raise ValueError(f"layer names {names} all denote module {path!r}: name it once")
    taken = [f"{name!r} already has a {g} plug-in attached" for name in paths for g in groups[name]
             if g in getattr(modules[paths[name]], _MARK, {})]
    if taken:
        raise ValueError("refusing to attach twice to one module: " + "; ".join(taken)
                         + " (call detach() on the earlier plug-ins first)")

    example = _example(model, example_input)
    stages = declared_stages(model)
    if example is not None:
        shapes = _shapes(model, paths, example)
        channels = {n: s[1] for n, s in shapes.items()}
        dims = {n: len(s) - 2 for n, s in shapes.items()}
    else:
        lacking = [n for n in paths if n not in stages]
        if lacking or not hasattr(model, "spatial_dims"):
            raise ValueError(f"attach() needs `example_input` (a tensor or shape (B, C, *S)) to learn the "
                             f"channels of {lacking or list(paths)}: they are not stages the model declares")
        shapes = {}
        channels = {n: stages[n].channels for n in paths}
        spatial_dims: int = getattr(model, "spatial_dims")  # noqa: B009 - checked above; any nn.Module
        dims = {n: spatial_dims for n in paths}

    plugins = Plugins(config, paths)
    for kind, block in config.blocks():
        build = KINDS[kind].build
        assert build is not None  # blocks() yields re-weighting kinds only
        for name in block.layers:
            plugins.reweight[_key(name)] = build(block, channels[name], dims[name])
    if config.pdcr is not None:
        fields = _fields(model, config.pdcr, paths, example, shapes)
        plugins.pdcr = PDCR(config.pdcr, channels, fields)
    try:
        param = next(model.parameters())
        plugins.to(device=param.device, dtype=param.dtype if param.dtype.is_floating_point else None)
    except StopIteration:
        pass
    _register(plugins, modules)
    return plugins


def _fields(model, config: PDCRConfig, paths, example, shapes) -> dict[str, ReceptiveField]:
    """Receptive fields of RF-PDCR sites without a declared chain (gradient probe), and
    an early check that every site's N fits its feature maps for ``example``."""
    fields = {}
    for site in config.sites:
        for name in site.layers:
            if name in shapes:
                positions = 1
                for s in shapes[name][2:]:
                    positions *= s
                if site.n > positions:
                    raise ValueError(f"site {'+'.join(site.layers)!r}: n={site.n} exceeds the {positions} "
                                     f"positions of layer {name!r} (output {shapes[name]}) for the example input")
        if site.patch == "receptive_field" and site.receptive_field is None:
            name = site.layers[0]
            if example is None:
                raise ValueError(f"site {name!r}: RF-PDCR without a declared `receptive_field` is probed, "
                                 "which needs `example_input`")
            fields[name] = probe_receptive_field(model, paths[name], tuple(example.shape[1:]))
    return fields


def _register(plugins: Plugins, modules: dict[str, nn.Module]) -> None:
    config = plugins.config
    owner = id(plugins)
    # Re-weighting hooks first: PDCR then records the features the network passes on.
    for _kind, block in config.blocks():
        for name in block.layers:
            module = modules[plugins.paths[name]]
            reweight = plugins.reweight[_key(name)]

            def hook(mod, inputs, output, name=name, reweight=reweight):
                if not isinstance(output, torch.Tensor):
                    raise TypeError(f"layer {name!r} returned {type(output).__name__}, not a feature map")
                if reweight.training != mod.training:
                    # The block is part of its layer: same train/eval mode, so an eval forward of the
                    # model (e.g. attach()'s shape pass) never moves its BatchNorm statistics.
                    reweight.train(mod.training)
                return reweight(output)
            # prepend: before any hook registered earlier on this module, e.g. the PDCR recorder
            # of plug-ins attached before, which must see the features the network passes on.
            plugins._handles.append(module.register_forward_hook(hook, prepend=True))
            _mark(plugins, module, "reweight", owner)
    pdcr = plugins.pdcr
    if config.pdcr is not None and pdcr is not None:
        for name in config.pdcr.layers():
            module = modules[plugins.paths[name]]

            def record(mod, inputs, output, name=name, pdcr=pdcr):
                if mod.training and torch.is_grad_enabled():
                    pdcr.record(name, output)
            plugins._handles.append(module.register_forward_hook(record))
            _mark(plugins, module, "pdcr", owner)


def _mark(plugins: Plugins, module: nn.Module, group: str, owner: int) -> None:
    marks = getattr(module, _MARK, None)
    if marks is None:
        marks = {}
        object.__setattr__(module, _MARK, marks)
    marks[group] = owner
    plugins._marked.append((module, group))
