"""The model registry: config name -> factory (timm's ``_registry`` in spirit).

A factory is a class or function called as ``factory(in_channels=.., num_classes=..,
width=.., **options)``; its other keyword parameters are the model's options, so that
an option a model does not take is refused by name before anything is built.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from torch import nn

from dragsaw.workloads._checks import closest

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_COMMON = ("in_channels", "num_classes", "width")


def register_model(name: str) -> Callable:
    """Decorator: register ``factory`` under ``name``, the name configs use.
    Refuses a name that is already taken (a second model would silently win)."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"a model name must be a non-empty string without surrounding spaces, but got {name!r}")

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            owner = _MODELS[name]
            raise ValueError(f"model name {name!r} is already registered (by "
                             f"{owner.__module__}.{owner.__qualname__}): names must be unique")
        missing = [p for p in _COMMON if p not in inspect.signature(factory).parameters]
        if missing:
            raise TypeError(f"model factory {factory.__qualname__} for {name!r} must take the keyword "
                            f"arguments {list(_COMMON)}; it lacks {missing}")
        _MODELS[name] = factory
        return factory

    return decorator


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def model_options(name: str) -> dict[str, object]:
    """The options of model ``name`` beyond in_channels / num_classes / width, with defaults."""
    factory = _lookup(name)
    return {p.name: p.default for p in inspect.signature(factory).parameters.values()
            if p.name not in _COMMON and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _lookup(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models are {model_names()}; "
                         f"{closest(str(name), model_names())}")
    return _MODELS[name]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def build_model(name: str, *, in_channels: int, num_classes: int, width: float = 1.0, **options: Any) -> nn.Module:
    """Build registered model ``name``.

    in_channels: channels of the input image (>= 1); num_classes: M, output channels
    (>= 2, background included); width: multiplies every channel count (rounded, at
    least 1), e.g. 0.125 for CPU tests; options: the model's own keyword options
    (see :func:`model_options`). The model maps (B, in_channels, *S) to logits
    (B, num_classes, *S) and declares ``spatial_dims`` and ``feature_stages``.
    Raises ``ValueError`` naming the argument for an unknown name, option or bad value.
    """
    factory = _lookup(name)
    problems = []
    if not _is_int(in_channels) or in_channels < 1:
        problems.append(f"`in_channels` must be an int >= 1, but got {in_channels!r}")
    if not _is_int(num_classes) or num_classes < 2:
        problems.append(f"`num_classes` must be an int >= 2 (background included), but got {num_classes!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        problems.append(f"`width` must be a finite number > 0, but got {width!r}")
    allowed = model_options(name)
    for key in options:
        if key not in allowed:
            hint = closest(key, list(allowed)) if allowed else "it takes no options"
            problems.append(f"model {name!r} has no option {key!r} (options: {sorted(allowed)}); {hint}")
    if problems:
        raise ValueError(f"build_model({name!r}): " + "; ".join(problems))
    return factory(in_channels=in_channels, num_classes=num_classes, width=float(width), **options)
