"""Peak memory of one training configuration, measured by a short probe: a couple of
training steps of the trial's own code (model, plug-ins, precision, memory layout,
optimiser, losses) on random inputs of the configured shape. No data is read.

On CUDA the peak is ``torch.cuda.max_memory_allocated`` during the probe, beyond what was
allocated before it. On the CPU it is the rise of the peak resident set of a fresh
process (``VmHWM`` after resetting it through ``/proc/self/clear_refs``; a few seconds to
start); where that cannot be reset the probe is skipped with a note rather than failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dragsaw.workloads.recipe.config import TrialConfig


@dataclass(frozen=True)
class MemoryPeak:
    """peak_bytes: the probe's peak (None: not measured, see ``note``); device: where it ran
    (``cuda:0``, ``cpu``); what: how it was measured; note: why it was not, if it was not."""

    device: str
    peak_bytes: int | None
    what: str
    note: str = ""

    def describe(self) -> str:
        if self.peak_bytes is None:
            return f"not measured on {self.device}: {self.note}"
        return f"{self.peak_bytes / 2**20:,.0f} MiB {self.what} on {self.device}"


def _probe_trial(config: TrialConfig, in_channels: int, num_classes: int, dims: int):
    """A Trial of ``config`` set up without data: the same model / compute / optimiser /
    loss steps as a real one (``Trial``'s named setup steps), one step per epoch."""
    from dragsaw.workloads.recipe.trial import Trial

    trial = object.__new__(Trial)
    trial.config, trial.cpus, trial.epoch, trial.history = config, None, 0, []
    trial._setup_device_and_seed()
    trial.dims, trial.in_channels, trial.num_classes = dims, in_channels, num_classes
    trial._setup_model()
    trial.steps_per_epoch = 1
    trial._setup_optimiser()
    trial._setup_loss()
    return trial


def _steps(trial, steps: int) -> None:
    t = trial.config.train
    spatial = tuple(t.image_size if trial.dims == 2 else t.patch_size)
    gen = torch.Generator().manual_seed(0)
    trial.model.train()
    for _ in range(steps):
        x = torch.randn((t.batch_size, trial.in_channels, *spatial), generator=gen)
        y = torch.randint(0, trial.num_classes, (t.batch_size, *spatial), generator=gen)
        trial.train_step(x, y)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def peak_memory(config: TrialConfig | dict, in_channels: int, num_classes: int, dims: int,
                device: str = "auto", steps: int = 2) -> MemoryPeak:
    """Peak memory of ``steps`` training steps of ``config`` (batch ``train.batch_size`` of
    ``train.image_size`` (2D) or ``train.patch_size`` (3D) inputs with ``in_channels``
    channels and ``num_classes`` classes) on ``device`` (``auto``: CUDA when present).
    Returns a :class:`MemoryPeak` (bytes); never raises for a device that cannot measure."""
    cfg = config if isinstance(config, TrialConfig) else TrialConfig.model_validate(config)
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    cfg = cfg.model_copy(update={"device": "cuda" if cuda else "cpu"})
    if cuda:
        index = torch.cuda.current_device()
        torch.cuda.synchronize(index)
        before = torch.cuda.memory_allocated(index)
        torch.cuda.reset_peak_memory_stats(index)
        trial = _probe_trial(cfg, in_channels, num_classes, dims)
        _steps(trial, steps)
        torch.cuda.synchronize(index)
        peak = torch.cuda.max_memory_allocated(index) - before
        del trial
        torch.cuda.empty_cache()
        return MemoryPeak(f"cuda:{index}", int(peak), "allocated (torch.cuda.max_memory_allocated)")
    import multiprocessing

    # A fresh process: in this one, memory freed by earlier work would be reused unseen.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_cpu_peak, (cfg.model_dump(mode="json"), in_channels, num_classes, dims, steps))


def _cpu_peak(config: dict, in_channels: int, num_classes: int, dims: int, steps: int) -> MemoryPeak:
    torch.set_num_threads(1)
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM (the peak resident set) to the current VmRSS
        base = _rss_kib("VmRSS")
    except OSError as exc:
        return MemoryPeak("cpu", None, "", f"the peak resident set cannot be reset here ({exc}); skipped")
    trial = _probe_trial(TrialConfig.model_validate(config), in_channels, num_classes, dims)
    _steps(trial, steps)
    return MemoryPeak("cpu", max(0, _rss_kib("VmHWM") - base) * 1024, "peak resident set increase (VmHWM)")


def trials_per_gpu(gpus: float) -> int:
    """How many trials asking ``gpus`` GPUs each Ray places on one GPU (1 for whole GPUs)."""
    if not gpus > 0:
        raise ValueError(f"`gpus > 0` must hold, but got gpus={gpus}")
    return max(1, math.floor(1 / gpus + 1e-9)) if gpus < 1 else 1


__all__ = ["MemoryPeak", "peak_memory", "trials_per_gpu"]
