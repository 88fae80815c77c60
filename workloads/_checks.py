"""Argument checks shared by the workloads: each failure names the argument,
what it got and what would be valid, before any work starts."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import torch


def check_tensor(name: str, x, *, ndim: Iterable[int] | int | None = None, integer: bool | None = None,
                 floating: bool | None = None, shape_hint: str = "") -> torch.Tensor:
    """Raise ``TypeError``/``ValueError`` naming ``name`` unless ``x`` is a tensor of the expected kind."""
    hint = f" {shape_hint}" if shape_hint else ""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor{hint}, but got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            raise ValueError(
                f"`{name}` must have {' or '.join(map(str, allowed))} dimensions{hint}, "
                f"but got shape {tuple(x.shape)}"
            )
    if integer and (x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool):
        raise TypeError(f"`{name}` must hold integers (int64 class indices){hint}, but got dtype {x.dtype}")
    if floating and not x.dtype.is_floating_point:
        raise TypeError(f"`{name}` must be a floating-point tensor{hint}, but got dtype {x.dtype}")
    return x


def closest(name: str, valid: Iterable[str], n: int = 3) -> str:
    """A "did you mean" hint: the closest valid names, or a few valid names when none is close."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=n, cutoff=0.5)
    if close:
        return "did you mean " + ", ".join(repr(c) for c in close) + "?"
    shown = ", ".join(repr(v) for v in valid[:8]) + (", ..." if len(valid) > 8 else "")
    return f"valid names include {shown}"


def one_of(argument: str, value, valid: Iterable) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``valid``."""
    valid = list(valid)
    if value not in valid:
        hint = closest(str(value), [str(v) for v in valid]) if isinstance(value, str) else ""
        raise ValueError(
            f"`{argument}` must be one of {valid}, but got {value!r}" + (f"; {hint}" if hint else "")
        )
