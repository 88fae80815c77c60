"""The training data loader of a trial: worker processes, pinned memory and persistent
workers sized from the trial's CPUs, and batches that do not depend on any of them.

A training sample is fixed by (seed, epoch, index) (``TrainingSamples``), so workers only
change where it is computed. Persistent workers keep their own copy of the samples across
epochs; the epoch therefore travels with every index (:class:`EpochSampler` yields
``(epoch, index)`` pairs from the main process) instead of living in the dataset's state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dragsaw.workloads.data.loading import TrainingSamples


@dataclass(frozen=True)
class LoaderSettings:
    """num_workers: worker processes (0: in the training process); pin_memory: page-locked
    batches for asynchronous copies to a GPU; persistent_workers: keep the workers between
    epochs (only with workers)."""

    num_workers: int
    pin_memory: bool
    persistent_workers: bool


def loader_settings(num_workers: int | None, cpus: float | None, device: torch.device) -> LoaderSettings:
    """Loader settings of a trial.

    num_workers: the config's (None: ``max(0, floor(cpus) - 1)``, one CPU left to the
    training loop; 0 when ``cpus`` is None, e.g. a trial run outside the platform).
    cpus: the trial's CPUs (``resources.cpus``). pin_memory only on CUDA.
    """
    if num_workers is None:
        num_workers = max(0, math.floor(cpus) - 1) if cpus is not None else 0
    return LoaderSettings(num_workers=num_workers, pin_memory=device.type == "cuda",
                          persistent_workers=num_workers > 0)


class EpochItems(Dataset):
    """``samples`` indexed by ``(epoch, index)``: item (epoch, i) is ``samples[i]`` of that epoch."""

    def __init__(self, samples: TrainingSamples):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if self.samples.epoch != epoch:  # cheap: a permutation of the case ids
            self.samples.set_epoch(epoch)
        return self.samples[index]


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, 0) .. (epoch, length - 1)`` in order, for the epoch set by :meth:`set_epoch`."""

    def __init__(self, length: int):
        self.length, self.epoch = int(length), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in range(self.length))

    def __len__(self) -> int:
        return self.length


def training_loader(samples: TrainingSamples, batch_size: int, settings: LoaderSettings,
                    seed: int) -> tuple[DataLoader, EpochSampler]:
    """A loader of (x (B, C, *S) float32, y (B, *S) int64) batches over ``samples`` (the
    last partial batch dropped) and its sampler; call ``sampler.set_epoch(e)`` before each
    epoch. ``seed`` seeds the loader's own generator, so iterating never draws from torch's
    global random stream (which the model's training uses)."""
    sampler = EpochSampler(len(samples))
    loader = DataLoader(EpochItems(samples), batch_size=batch_size, sampler=sampler, drop_last=True,
                        num_workers=settings.num_workers, pin_memory=settings.pin_memory,
                        persistent_workers=settings.persistent_workers,
                        generator=torch.Generator().manual_seed(seed))
    return loader, sampler


__all__ = ["LoaderSettings", "loader_settings", "EpochItems", "EpochSampler", "training_loader"]
