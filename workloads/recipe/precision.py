"""How a trial computes on its device: mixed precision, memory layout, ``torch.compile``.

Each setting of ``TrainConfig`` is resolved here once per trial against the device it runs on,
so the defaults follow the device (one place says what ``auto`` means):

- ``precision``: ``auto`` is bf16 autocast on a CUDA device that supports bfloat16, fp16
  autocast with a gradient scaler on one that does not, and ``off`` (float32) on the CPU.
  ``bf16`` / ``fp16`` force a mode (on the CPU too: CPU autocast, slow but exact to test);
  ``bf16`` on a GPU without bfloat16 is a :class:`ConfigError`.
- ``channels_last``: None is on for 2D models on CUDA, off otherwise; True uses
  ``channels_last`` (2D) or ``channels_last_3d`` (3D).
- ``compile``: wrap the model in ``torch.compile`` (default off).

Losses are always computed in float32: the recipe casts the logits, and PDCR turns
autocast off and casts its features (``workloads/pdcr/regularizer.py``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dragsaw.workloads.recipe.config import ConfigError, TrainConfig

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Compute:
    """A trial's resolved compute settings.

    precision: ``off``, ``bf16`` or ``fp16`` (never ``auto``); scaler: whether fp16 gradients
    go through a ``GradScaler``; memory_format: what the model and its inputs use;
    compile: whether the model is compiled.
    """

    device: torch.device
    precision: str
    memory_format: torch.memory_format
    compile: bool

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for float32."""
        return _DTYPES.get(self.precision)

    @property
    def scaler(self) -> bool:
        return self.precision == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast context of a forward pass (a null context in float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler for this device, enabled only for fp16 (a disabled one is a no-op)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.scaler)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model on the device in the chosen memory format (compiled: see :meth:`compiled`)."""
        model = model.to(self.device)
        if self.memory_format != torch.contiguous_format:
            model = model.to(memory_format=self.memory_format)  # pyright: ignore[reportCallIssue] - torch's stubs omit it
        return model

    def compiled(self, model: nn.Module) -> nn.Module:
        """``torch.compile(model)`` when asked, else the model itself. The compiled wrapper
        shares its parameters (and state_dict keys under ``_orig_mod.``): keep the original
        for checkpoints and optimisers."""
        if not self.compile:
            return model
        compiled = torch.compile(model)
        if not isinstance(compiled, nn.Module):
            raise TypeError(f"torch.compile returned {type(compiled).__name__}, not a module")
        return compiled

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch (B, C, *S) in the model's memory format."""
        if self.memory_format == torch.contiguous_format:
            return x
        return x.contiguous(memory_format=self.memory_format)

    def describe(self) -> str:
        layout = {torch.channels_last: "channels_last", torch.channels_last_3d: "channels_last_3d"}
        return (f"{self.device.type}: precision {self.precision}{' + GradScaler' if self.scaler else ''}, "
                f"{layout.get(self.memory_format, 'contiguous')}, compile {'on' if self.compile else 'off'}")


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 autocast natively (CUDA: compute capability 8.0+)."""
    if device.type != "cuda":
        return device.type == "cpu"
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def resolve_compute(train: TrainConfig, device: torch.device, dims: int) -> Compute:
    """``train``'s precision / channels_last / compile for a ``dims``-D model on ``device``
    (see the module doc for the defaults). Raises ConfigError for bf16 on a GPU without it."""
    precision = train.precision
    if precision == "auto":
        precision = ("bf16" if bf16_supported(device) else "fp16") if device.type == "cuda" else "off"
    elif precision == "bf16" and device.type == "cuda" and not bf16_supported(device):
        raise ConfigError(f"train.precision: bf16, but {torch.cuda.get_device_name(device)} has no bfloat16 "
                          "support; use fp16 (with a gradient scaler) or auto")
    channels_last = train.channels_last if train.channels_last is not None else (device.type == "cuda" and dims == 2)
    fmt = (torch.channels_last if dims == 2 else torch.channels_last_3d) if channels_last else torch.contiguous_format
    return Compute(device=device, precision=precision, memory_format=fmt, compile=train.compile)


__all__ = ["Compute", "resolve_compute", "bf16_supported"]
