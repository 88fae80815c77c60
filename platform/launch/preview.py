"""What an experiment will be, before it runs and without its data: the whole grid (or the
searches), the resources each trial asks, an estimate of the cost, which dataset roots are
missing here, and whether any node can ever place a trial. ``dragsaw validate``,
``dragsaw run --dry-run`` and ``dragsaw run`` (before anything is written) use it.

Cost: trials x epochs x seconds per epoch, where seconds per epoch are measured (the mean
``epoch_seconds`` of the experiment's stored epochs, when it has any) or estimated from the
model's FLOPs (one forward pass on the ``meta`` device, x3 for training) times the training
images of an epoch, at an assumed sustained rate (``GPU_FLOPS`` per GPU, ``CPU_FLOPS`` per
CPU core). Evaluation is not counted.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dragsaw.platform.launch.checkpoints import checkpoint_volume
from dragsaw.platform.launch.packing import packing
from dragsaw.platform.launch.run import LaunchError

if TYPE_CHECKING:
    from dragsaw.platform.experiment.schema import ExperimentSpec

#: Assumed sustained training throughput (FLOP/s): an A100-class GPU in mixed precision at
#: about 30% of its peak, and one CPU core (vectorised float32).
GPU_FLOPS = 30e12
CPU_FLOPS = 50e9


@dataclass
class Preview:
    """trials: grid trials (TrialSpec) or [] for a search; studies: the searches' StudySpecs;
    missing: dataset roots absent here (one line each); seconds: estimated wall-clock
    seconds of all trials on one worker each (None: unknown); basis: how it was estimated."""

    spec: Any
    trials: list = field(default_factory=list)
    studies: list = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    seconds: float | None = None
    basis: str = ""
    epochs: int = 0
    notes: list[str] = field(default_factory=list)
    memory: list[str] = field(default_factory=list)  # GPU packing: peak memory per configuration (packing.py)
    checkpoints: list[str] = field(default_factory=list)  # storage and upload volume (checkpoints.py)
    space: list[str] = field(default_factory=list)  # the searches' effective spaces (space_lines)

    @property
    def count(self) -> int:
        if self.spec.search is not None:
            return self.spec.search.num_samples * len(self.studies)
        return len(self.trials)

    def summary(self) -> list[str]:
        """The lines ``validate`` and ``--dry-run`` print about the whole experiment."""
        spec = self.spec
        res = spec.resources
        what = (f"{self.count} trials" if spec.search is None
                else f"a search: {spec.search.num_samples} samples x {len(self.studies)} "
                      f"{'study' if len(self.studies) == 1 else 'studies'} = {self.count} trials")
        lines = [f"{spec.name}: {what}, {res.cpus:g} CPU / {res.gpus:g} GPU each, "
                 f"{spec.concurrency or 'as many as fit'} at once"]
        if self.seconds is not None:
            hours = self.seconds / 3600
            unit = f"{hours * res.gpus:,.3g} GPU-hours" if res.gpus else f"{hours * res.cpus:,.3g} CPU-hours"
            per = self.seconds / max(self.epochs, 1)
            lines.append(f"estimated cost: {unit}: {self.epochs:,} trial-epochs x {per:,.3g} s per epoch on average "
                         f"= {_duration(self.seconds)} of trial time ({self.basis})")
        else:
            lines.append("estimated cost: unknown until the data is here (the number of training images per "
                         "epoch is not known without it), or measured once the experiment has stored epochs")
        lines += self.checkpoints
        lines += self.memory
        lines += [f"note: {n}" for n in self.notes]
        lines += self.space
        if self.missing:
            lines.append(f"dataset roots missing here ({len(self.missing)}):")
            lines += [f"  {m}" for m in self.missing]
        return lines


def preview(spec: ExperimentSpec, store_url: str | None = None) -> Preview:
    """The experiment of ``spec`` without running or writing anything (see the module doc).
    Raises SpecError for a dataset that is present but broken, or folds it lacks."""
    from dragsaw.platform.experiment.datasets import preview_datasets
    from dragsaw.platform.experiment.grid import expand
    from dragsaw.platform.search.study import studies

    datasets, missing = preview_datasets(spec)
    out = Preview(spec, missing=missing)
    if spec.search is not None:
        out.studies = studies(spec, datasets)
        for study in out.studies:
            out.notes += [c.note() for c in study.cuts if c.note() not in out.notes]
            out.space += space_lines(study)
        configs = [(s.base_config, s.dataset, spec.search.num_samples * len(s.folds)) for s in out.studies]
    else:
        out.trials = expand(spec, datasets)
        configs = [(t.config, t.dataset, 1) for t in out.trials]
    out.memory = packing(spec, out.trials, out.studies, datasets)[0]
    measured = _measured_epoch_seconds(store_url, spec.name) if store_url else None
    total, basis, count = 0.0, "", 0
    for config, key, times in configs:
        epochs = int(config["train"]["epochs"])
        if measured is not None:
            per_epoch, basis = measured
        else:
            per_epoch = _estimated_epoch_seconds(config, datasets[key], spec.resources)
            if per_epoch is None:
                out.checkpoints = checkpoint_volume(spec, [(c, datasets[k], n) for c, k, n in configs], None)
                return out
            where = (f"{GPU_FLOPS / 1e12:g} TFLOP/s per GPU" if spec.resources.gpus
                     else f"{CPU_FLOPS / 1e9:g} GFLOP/s per CPU core")
            basis = f"estimated from the models' FLOPs at an assumed {where}, training only"
        total += times * epochs * per_epoch
        count += times * epochs
    out.seconds, out.basis, out.epochs = total, basis, count
    out.checkpoints = checkpoint_volume(spec, [(c, datasets[k], n) for c, k, n in configs], total / max(count, 1))
    return out


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


def _measured_epoch_seconds(store_url: str, experiment: str) -> tuple[float, str] | None:
    """Mean stored ``epoch_seconds`` of the experiment (read only), or None."""
    from dragsaw.platform.store import ResultStore, StoreError

    try:
        rows = ResultStore(store_url).read("epochs", experiment, columns=["name", "value"])
    except (StoreError, ValueError, OSError):
        return None
    values = [v for n, v in zip(rows.column("name").to_pylist(), rows.column("value").to_pylist())
              if n == "epoch_seconds" and v is not None]
    if not values:
        return None
    mean = sum(values) / len(values)
    return mean, f"measured: {mean:.1f} s per epoch, the mean of {len(values)} stored epochs"


def _estimated_epoch_seconds(config: dict, dataset, resources) -> float | None:
    """Training FLOPs of one epoch / the assumed rate of the trial's resources."""
    if not getattr(dataset, "counts_known", True):
        return None  # a folder dataset not on this machine: how many images an epoch has is unknown
    train = config["train"]
    dims = dataset.spatial_dims
    size = tuple(train["image_size"] if dims == 2 else train["patch_size"])
    flops = _forward_flops(json.dumps(config["model"], sort_keys=True), size, dims)
    if flops is None:
        return None
    if dims == 3 or train.get("iterations_per_epoch"):
        images = (train.get("iterations_per_epoch") or 250) * train["batch_size"]
    else:
        from dragsaw.workloads.data import fold_split

        try:
            train_ids, _ = fold_split(dataset, config["data"]["fold"])
        except (ValueError, KeyError):
            return None
        images = max(len(train_ids) * float(config["data"].get("fraction", 1.0)), train["batch_size"])
    rate = GPU_FLOPS * resources.gpus if resources.gpus else CPU_FLOPS * max(resources.cpus, 1)
    return 3 * flops * images / rate


@functools.lru_cache(maxsize=64)
def _forward_flops(model_json: str, size: tuple[int, ...], dims: int) -> float | None:
    """FLOPs of one forward pass of one image (3 channels in 2D, 1 in 3D) on ``meta``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dragsaw.workloads.models import build_model

    model = json.loads(model_json)
    channels = 3 if dims == 2 else 1
    try:
        with torch.device("meta"):
            net = build_model(model["name"], in_channels=channels, num_classes=2, width=model.get("width", 1.0),
                              **(model.get("options") or {}))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.zeros((1, channels, *size), device="meta"))
    except Exception:  # noqa: BLE001 - an estimate only: unknown when the model cannot run on meta
        return None
    return float(counter.get_total_flops())


# -- resources ----------------------------------------------------------------------------------


def local_resource_problems(spec: ExperimentSpec) -> list[str]:
    """What this machine can never give one trial when Ray is started here. A GPU request on
    a machine without GPUs is not one: such a run falls back to the CPU on purpose."""
    problems = []
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if spec.resources.cpus > cpus:
        problems.append(f"resources.cpus: {spec.resources.cpus:g} CPUs per trial, but this machine has {cpus}; "
                        f"a trial could never start here: at most {cpus} (or run on a cluster with --address)")
    gpus = _local_gpus()
    if gpus and spec.resources.gpus > gpus:
        problems.append(f"resources.gpus: {spec.resources.gpus:g} GPUs per trial, but this machine has {gpus}: "
                        f"at most {gpus}")
    elif gpus:  # trials packed onto this machine's GPUs must fit in their memory
        problems += packing(spec)[1]
    return problems


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no usable CUDA: no GPUs
        return 0


def cluster_resource_problems(spec: ExperimentSpec, wait_s: float | None = None, echo: Callable[[str], None] = print,
                              poll_s: float = 2.0) -> list[str]:
    """On a connected Ray cluster: whether any alive node can place one trial (its CPUs and
    GPUs at once). ``wait_s``: the cluster has an autoscaler; ask it for one trial's bundle
    and wait up to that many seconds for a node that fits before giving up."""
    import ray

    need = {"CPU": float(spec.resources.cpus), "GPU": float(spec.resources.gpus)}
    need = {k: v for k, v in need.items() if v > 0}

    def fits() -> bool:
        for node in ray.nodes():
            have = node.get("Resources", {})
            if node.get("Alive") and all(have.get(k, 0.0) >= v for k, v in need.items()):
                return True
        return False

    if fits():
        return []
    if wait_s:
        from ray.autoscaler.sdk import request_resources

        echo(f"no node of the cluster fits one trial ({need}); asking the autoscaler and waiting up to "
             f"{wait_s:g} s (--wait-for-resources)")
        try:
            request_resources(bundles=[need])
        except Exception as exc:  # noqa: BLE001 - no autoscaler answered: the wait decides
            echo(f"note: could not ask the autoscaler for nodes: {exc}")
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if fits():
                return []
            time.sleep(poll_s)
    largest = _largest_nodes()
    hint = (f"no node appeared within --wait-for-resources {wait_s:g} s" if wait_s else
            "if the cluster has an autoscaler that can add such nodes, pass --wait-for-resources SECONDS")
    return [f"resources: each trial needs {_fmt(need)} on one node, but no node of the cluster has that "
            f"(nodes: {largest}); lower resources.cpus / resources.gpus, or {hint}"]


def _largest_nodes() -> str:
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    seen = sorted({_fmt({k: v for k, v in r.items() if k in ("CPU", "GPU")}) for r in nodes})
    return "; ".join(seen) or "none alive"


def _fmt(resources: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in sorted(resources.items())) or "nothing"


def ray_connected() -> bool:
    """Whether this process is connected to Ray (without importing it)."""
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def space_lines(study: Any) -> list[str]:
    """The effective search space of one study (a StudySpec), one line per parameter; a
    template's instances whose choices were cut are listed beside it."""
    space = study.space
    lines = [f"effective space of study {study.study_name}" + (f" ({len(study.cuts)} choices cut):" if study.cuts
                                                               else ":")]
    for p in space.params:
        text = _dist_text(p.dist)
        if p.template:
            narrowed = {layer: _dist_text(space.dist(p.instance(layer))) for layer in space.layer_domain}
            by_text: dict[str, list[str]] = {}
            for layer, t in narrowed.items():
                if t != text:
                    by_text.setdefault(t, []).append(layer)
            text += "".join(f"; on {', '.join(layers)}: {t}" for t, layers in by_text.items())
        else:
            text = _dist_text(space.dist(p.name))
        lines.append(f"  {p.name}: {text}" + (f"  when {p.dist.when}" if p.dist.when else ""))
    return lines


def _dist_text(dist: Any) -> str:
    d = dist.model_dump(mode="json", exclude={"when", "type"}, exclude_defaults=True)
    return f"{dist.type} " + ", ".join(f"{k}={v}" for k, v in d.items())


def refuse(problems: list[str], source: str) -> None:
    """Raise the LaunchError (exit status 2) that lists ``problems``, if any."""
    if problems:
        raise LaunchError(f"{source}: cannot run:\n" + "\n".join(f"  {p}" for p in problems))


def print_trials(result: Preview, store_url: str, echo: Callable[[str], None]) -> None:
    """The dry run's listing: the summary, then one line per trial (or per study)."""
    for line in result.summary():
        echo(line)
    spec = result.spec
    if spec.search is not None:
        for study in result.studies:
            echo(f"  study {study.study_name}: {spec.search.num_samples} samples on {study.dataset} folds "
                 f"{list(study.folds)}, objective {spec.search.objective} {study.metrics} {study.modes}, "
                 f"scheduler {study.scheduler}")
        return
    echo(f"results -> {store_url}")
    for t in result.trials:
        echo(f"  {t.trial_id}  {t.variant:<24} {t.dataset:<14} fold {t.fold:<5} fraction {t.fraction:<5g} "
             f"seed {t.seed:<3} epochs {t.config['train']['epochs']:<5} cpu {t.resources['cpu']:g} "
             f"gpu {t.resources['gpu']:g}")


__all__ = ["Preview", "preview", "space_lines", "local_resource_problems", "cluster_resource_problems", "refuse", "print_trials", "ray_connected",
           "GPU_FLOPS", "CPU_FLOPS"]
