"""What a trial config asks that its model cannot give, found before any data is read:
a PDCR site sampling more vectors than its layer's feature map has positions (``n``), or
patches larger than the image they are cut from.

The model is built once per (model, width, options, input size, layers) on the ``meta``
device (no memory, no arithmetic) and run forward with hooks on the plug-ins' layers, so
the feature-map sizes are the model's own, not computed from declared strides. Models that
cannot run on ``meta`` are run at the smallest width on the CPU (sizes do not depend on
the width).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from pydantic import ValidationError

from dragsaw.workloads.pdcr.config import PDCRConfig
from dragsaw.workloads.recipe.config import ConfigError, ModelConfig, TrainConfig, TrialConfig

Loc = tuple[Any, ...]


def input_size(config: TrialConfig, spatial_dims: int) -> tuple[int, ...]:
    """The spatial size a training step feeds the model: ``train.image_size`` (2D, (H, W))
    or ``train.patch_size`` (3D, (D, H, W)), in pixels / voxels."""
    return tuple(config.train.image_size if spatial_dims == 2 else config.train.patch_size)


@functools.lru_cache(maxsize=256)
def _probe(model_json: str, size: tuple[int, ...] | None) -> tuple[int, dict[str, tuple[int, ...]], str | None]:
    """(spatial_dims, stage or module name -> feature-map spatial size, error) of one model at
    one input size (``size`` None: the spatial_dims only). One forward pass answers every layer."""
    from dragsaw.workloads.models import build_model
    from dragsaw.workloads.plugins import declared_stages

    model = json.loads(model_json)
    kwargs = dict(in_channels=1, num_classes=2, width=model.get("width", 1.0), **(model.get("options") or {}))
    try:
        with torch.device("meta"):
            net = build_model(model["name"], **kwargs)
        device = "meta"
    except (ValueError, TypeError, KeyError) as exc:
        return 0, {}, f"cannot build model {model.get('name')!r}: {exc}"
    except Exception:  # noqa: BLE001 - a model that cannot live on meta: small, on the CPU
        net = build_model(model["name"], **{**kwargs, "width": min(kwargs["width"], 0.0625)})
        device = "cpu"
    dims = int(getattr(net, "spatial_dims", 2))
    if size is None or len(size) != dims:
        return dims, {}, None
    names = {n: n for n, _ in net.named_modules() if n}
    names.update({name: stage.module for name, stage in declared_stages(net).items()})
    modules = dict(net.named_modules())
    by_path: dict[str, tuple[int, ...]] = {}
    handles = [modules[path].register_forward_hook(
        lambda _m, _i, out, path=path: by_path.__setitem__(path, tuple(out.shape[2:]))
        if isinstance(out, torch.Tensor) else None) for path in set(names.values()) if path in modules]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros((1, 1, *size), device=device))
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the config
        return dims, {}, f"model {model['name']!r} cannot run on inputs of size {list(size)}: {exc}"
    finally:
        for h in handles:
            h.remove()
    return dims, {name: by_path[path] for name, path in names.items() if path in by_path}, None


def feature_sizes(model: Mapping[str, Any], size: Sequence[int], layers: Sequence[str]
                  ) -> dict[str, tuple[int, ...]]:
    """Spatial size of each of ``layers`` (stage or module names) for one input of ``size``
    ((H, W) or (D, H, W)); layers the model lacks are left out. Raises ConfigError when the
    model cannot be built or run at that size."""
    _, shapes, error = _probe(json.dumps(dict(model), sort_keys=True, default=str), tuple(int(s) for s in size))
    if error:
        raise ConfigError(error)
    return {name: shapes[name] for name in layers if name in shapes}


def _pdcr(plugins: Any) -> PDCRConfig | None:
    """The PDCR part of a plug-in config (a PluginsConfig or its dict), or None."""
    if isinstance(getattr(plugins, "pdcr", None), PDCRConfig):
        return plugins.pdcr
    pdcr = plugins.get("pdcr") if isinstance(plugins, Mapping) else None
    if not isinstance(pdcr, Mapping):
        return None
    try:
        return PDCRConfig.model_validate(pdcr)
    except ValidationError:
        return None  # the config's own checks report it


def config_problems(config: Mapping[str, Any] | TrialConfig) -> list[tuple[Loc, str]]:
    """(loc, message) for every PDCR site whose ``n`` exceeds the positions of one of its
    layers, and every patch size larger than the training input's shortest side (the bound:
    a patch is a box inside the image). ``config``: a TrialConfig or its dict (plug-ins may
    lack ``num_classes``: the dataset fills it). Locs are paths in the trial config (``plugins.pdcr.sites[0].n``)."""
    if isinstance(config, TrialConfig):
        model, train, plugins = config.model.model_dump(mode="json"), config.train, config.plugins
    else:
        try:
            model = ModelConfig.model_validate(config.get("model") or {}).model_dump(mode="json")
            train = TrainConfig.model_validate(config.get("train") or {})
        except ValidationError:
            return []  # the config's own checks report it
        plugins = config.get("plugins")
    pdcr = _pdcr(plugins)
    if pdcr is None:
        return []
    model_json = json.dumps(model, sort_keys=True, default=str)
    dims, _, error = _probe(model_json, None)
    if error:
        return []  # an unknown model is reported by the name checks
    size = tuple(train.image_size if dims == 2 else train.patch_size)
    what = "image_size" if dims == 2 else "patch_size"
    try:
        shapes = feature_sizes(model, size, pdcr.layers())
    except ConfigError as exc:
        return [(("model",), str(exc))]
    out: list[tuple[Loc, str]] = []
    shortest = min(size)
    for key, sizes in [(("plugins", "pdcr", "patch_sizes"), pdcr.patch_sizes)] + [
            (("plugins", "pdcr", "sites", i, "patch_sizes"), s.patch_sizes) for i, s in enumerate(pdcr.sites)
            if s.patch_sizes]:
        big = [k for k in sizes or () if k > shortest]
        if big:
            out.append((key, f"patch sizes {big} exceed the training input's shortest side ({shortest} px, "
                             f"train.{what} {list(size)}); a patch must fit inside the image: at most {shortest}"))
    for i, site in enumerate(pdcr.sites):
        for name in site.layers:
            if name not in shapes:
                continue
            positions = 1
            for s in shapes[name]:
                positions *= s
            if site.n > positions:
                grid = "x".join(map(str, shapes[name]))
                out.append((("plugins", "pdcr", "sites", i, "n"),
                            f"n={site.n} exceeds the {positions} positions of layer {name!r} ({grid} feature map "
                            f"of {model['name']} at train.{what} {list(size)}): at most {positions}"))
                break
    return out


def preflight(config: Mapping[str, Any] | TrialConfig) -> None:
    """Raise :class:`ConfigError` listing :func:`config_problems` (a deterministic failure)."""
    problems = config_problems(config)
    if problems:
        raise ConfigError("the trial config cannot run:\n" + "\n".join(
            f"  {'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))


__all__ = ["config_problems", "feature_sizes", "input_size", "preflight", "ConfigError"]
