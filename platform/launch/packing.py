"""Packing small trials onto GPUs (``resources.gpus: 0.5`` puts two on one GPU): each
distinct training configuration's peak memory, measured once by a short probe on this
machine's GPU (``workloads/recipe/probe.py``), shown by ``--dry-run`` and used by ``run`` to
refuse a packing that cannot fit, before anything is written.

A configuration is what decides memory: model, plug-ins, batch size, image or patch size,
precision, memory layout, compile, loss, and the dataset's dimensions and classes (inputs
are taken as 3 channels in 2D, 1 in 3D). Seeds, folds, fractions and learning rates share
one probe. A search is probed at its base config (its samples may differ). Where this
machine has no CUDA device, GPU memory is unknown: nothing is probed and the dry run says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dragsaw.workloads.canonical import canonical_json

if TYPE_CHECKING:
    from dragsaw.platform.experiment.schema import ExperimentSpec
    from dragsaw.workloads.recipe.probe import MemoryPeak

#: What one more CUDA process costs beyond its tensors (context, kernels, allocator slack),
#: counted once per packed trial.
CUDA_CONTEXT_BYTES = 512 * 2**20

#: Train settings that change a step's memory.
_MEMORY_TRAIN_KEYS = ("batch_size", "image_size", "patch_size", "precision", "channels_last", "compile", "loss")

_PEAKS: dict[str, Any] = {}  # configuration key -> MemoryPeak, once per process


@dataclass(frozen=True)
class Configuration:
    """One distinct configuration: label (the first trial that has it), how many trials share
    it, and the pieces the probe needs."""

    label: str
    key: str
    config: dict
    dims: int
    num_classes: int
    trials: int


def configurations(trials: Sequence, studies: Sequence, datasets: dict) -> list[Configuration]:
    """The distinct configurations of a grid's trials (TrialSpec) or of searches' base configs."""
    items = [(f"{t.variant} on {t.dataset}", t.config, datasets[t.dataset]) for t in trials]
    items += [(f"study {s.study_name} (base config)", s.base_config, datasets[s.dataset]) for s in studies]
    found: dict[str, Configuration] = {}
    for label, config, dataset in items:
        dims, classes = int(dataset.spatial_dims), int(dataset.num_classes)
        train = {k: config["train"].get(k) for k in _MEMORY_TRAIN_KEYS}
        train.pop("patch_size" if dims == 2 else "image_size")
        key = canonical_json({"model": config["model"], "plugins": config.get("plugins"), "train": train,
                              "dims": dims, "classes": classes})
        if key in found:
            c = found[key]
            found[key] = Configuration(c.label, key, c.config, c.dims, c.num_classes, c.trials + 1)
        else:
            found[key] = Configuration(label, key, config, dims, classes, 1)
    return list(found.values())


def gpu_memory() -> tuple[int, str] | None:
    """(total bytes, name) of this machine's first CUDA device, or None without one."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        return int(props.total_memory), str(props.name)
    except Exception:  # noqa: BLE001 - no usable CUDA: memory unknown
        return None


def peak_of(c: Configuration) -> MemoryPeak:
    """The configuration's MemoryPeak on this machine's GPU, probed once per process."""
    if c.key not in _PEAKS:
        from dragsaw.workloads.recipe.probe import peak_memory

        _PEAKS[c.key] = peak_memory(c.config, 3 if c.dims == 2 else 1, c.num_classes, c.dims, device="cuda")
    return _PEAKS[c.key]


def check(configs: Sequence[Configuration], gpus: float, memory: tuple[int, str] | None,
          peaks: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """(lines for the dry run, problems that refuse the run) for trials asking ``gpus`` GPUs
    each. memory: (bytes, name) of the GPU, None when unknown. peaks: key -> MemoryPeak
    (default: probed with :func:`peak_of`). A packing fits when
    ``trials per GPU x (peak + CUDA_CONTEXT_BYTES) <= GPU memory``."""
    from dragsaw.workloads.recipe.probe import trials_per_gpu

    if not gpus or not configs:
        return [], []
    per_gpu = trials_per_gpu(gpus)
    n = len(configs)
    if memory is None:
        return [f"GPU memory: unknown on this machine (no CUDA device), so the peak memory of the {n} distinct "
                f"configuration{'s' if n != 1 else ''} was not probed and packing {per_gpu} trial"
                f"{'s' if per_gpu != 1 else ''} per GPU (resources.gpus: {gpus:g}) is not checked here; "
                "run --dry-run on a GPU machine to check it"], []
    total, name = memory
    lines = [f"GPU memory: {total / 2**30:,.1f} GiB ({name}); {per_gpu} trial{'s' if per_gpu != 1 else ''} per GPU "
             f"(resources.gpus: {gpus:g}); peak memory of each distinct configuration (a 2-step probe):"]
    problems = []
    for c in configs:
        peak = peaks.get(c.key) if peaks is not None else peak_of(c)
        if peak is None or peak.peak_bytes is None:
            lines.append(f"  {c.label} ({c.trials} trials): {peak.describe() if peak else 'not measured'}")
            continue
        need = per_gpu * (peak.peak_bytes + CUDA_CONTEXT_BYTES)
        fits = need <= total
        lines.append(f"  {c.label} ({c.trials} trial{'s' if c.trials != 1 else ''}): {peak.describe()}; "
                     f"{per_gpu} x (peak + {CUDA_CONTEXT_BYTES / 2**20:.0f} MiB context) = {need / 2**30:,.2f} GiB "
                     f"{'fits' if fits else 'DOES NOT FIT'}")
        if not fits:
            problems.append(f"resources.gpus: {gpus:g} packs {per_gpu} trials per GPU, but configuration "
                            f"{c.label!r} peaks at {peak.peak_bytes / 2**20:,.0f} MiB and {per_gpu} x (peak + "
                            f"{CUDA_CONTEXT_BYTES / 2**20:.0f} MiB CUDA context) = {need / 2**30:,.2f} GiB exceeds "
                            f"the {total / 2**30:,.1f} GiB of the GPU ({name}); raise resources.gpus "
                            f"(to {1 / max(per_gpu - 1, 1):g}) or lower train.batch_size")
    return lines, problems


def packing(spec: ExperimentSpec, trials: Sequence = (), studies: Sequence = (), datasets: dict | None = None
            ) -> tuple[list[str], list[str]]:
    """:func:`check` for ``spec`` on this machine's GPU; trials/studies/datasets as the preview
    has them (default: expanded here without the data)."""
    if not spec.resources.gpus:
        return [], []
    if datasets is None:
        from dragsaw.platform.experiment.datasets import preview_datasets
        from dragsaw.platform.experiment.grid import expand
        from dragsaw.platform.search.study import studies as search_studies

        datasets = preview_datasets(spec)[0]
        if spec.search is None:
            trials = expand(spec, datasets)
        else:
            studies = search_studies(spec, datasets)
    return check(configurations(trials, studies, datasets), float(spec.resources.gpus), gpu_memory())


__all__ = ["Configuration", "configurations", "check", "packing", "gpu_memory", "peak_of", "CUDA_CONTEXT_BYTES"]
