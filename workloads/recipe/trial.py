"""One trial: build -> fit -> evaluate -> checkpoint, reporting through a callback
(torchtune's recipe shape: setup, train, save_checkpoint, cleanup). Knows nothing
of Ray, Optuna or the result store: ``report(metrics, checkpoint_dir)`` is the seam.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dragsaw.workloads.canonical import config_hash
from dragsaw.workloads.data import load_dataset
from dragsaw.workloads.data.cache import CaseCache
from dragsaw.workloads.data.loading import TrainingSamples
from dragsaw.workloads.data.preprocess import Preprocessing
from dragsaw.workloads.models import build_model
from dragsaw.workloads.plugins import PluggedModel, attach
from dragsaw.workloads.recipe import checkpoint
from dragsaw.workloads.recipe.config import TrialConfig
from dragsaw.workloads.recipe.evaluate import case_counts, predict_2d, predict_3d
from dragsaw.workloads.recipe.loaders import loader_settings, training_loader
from dragsaw.workloads.recipe.precision import resolve_compute
from dragsaw.workloads.recipe.results import epoch_scores, result_rows
from dragsaw.workloads.recipe.selection import BestEpoch, split_cases
from dragsaw.workloads.runtime import tune_cpu_allocator

Report = Callable[[dict[str, Any], str], None]


class Trial:
    """A trial built from a :class:`TrialConfig`; :meth:`run` trains and evaluates it.

    Setup happens in named steps, in this order (the order fixes which random numbers each
    step draws, so a resumed trial continues exactly): seed, data, model and plug-ins,
    training samples and their loader, optimiser; :meth:`load_checkpoint` restores a saved
    state on top. cpus: the CPUs the trial was given (sizes the loader's workers when
    ``train.num_workers`` is None); how a trial computes, not what: outside its config hash.
    data_root: where this node reads the data from when it is not ``data.root`` (a local copy
    of a dataset whose root is a URL, staged by the platform); also outside the config hash.
    """

    def __init__(self, config: TrialConfig | dict, cpus: float | None = None, data_root: str | None = None):
        self.config = config if isinstance(config, TrialConfig) else TrialConfig.model_validate(config)
        self.cpus = cpus
        self.data_root = data_root
        self.config_hash = config_hash(self.config)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []
        self.best = BestEpoch()  # eval.selection best_val: the best validated epoch so far
        self._setup_device_and_seed()
        self._setup_data()
        self._setup_model()
        self._setup_samples()
        self._setup_loader()
        self._setup_optimiser()
        self._setup_loss()

    # -- setup -------------------------------------------------------------------------
    def _setup_device_and_seed(self) -> None:
        cfg = self.config
        cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if cuda else "cpu")
        if self.device.type == "cpu":
            tune_cpu_allocator()
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        random.seed(cfg.seed)

    def _setup_data(self) -> None:
        """The dataset, its train / validation / held-out split (fraction and eval cap applied,
        validation cases carved from the training ones with ``eval.selection: best_val``), the
        case cache, and what the model needs from the data: dims, input channels, classes."""
        cfg, t = self.config, self.config.train
        self.dataset = load_dataset(cfg.data.name, self.data_root or cfg.data.root, **cfg.data.options)
        train_ids, self.val_ids, eval_ids = split_cases(self.dataset, cfg)
        self.train_ids, self.eval_ids = train_ids, eval_ids
        self.dims = self.dataset.spatial_dims
        self.cache = CaseCache(self.dataset, Preprocessing(image_size=t.image_size, spacing=t.spacing),
                               root=cfg.cache_dir)
        first = self.cache.get(train_ids[0])["image"]
        self.in_channels = first.shape[-1] if self.dims == 2 else first.shape[0]
        self.num_classes = self.dataset.num_classes

    def _setup_model(self) -> None:
        """The network, its plug-ins (sizes filled from the dataset's classes), precision,
        memory layout and compilation (``precision.resolve_compute``), on the trial's device.
        ``self.model`` is the module whose state is saved; ``self.forward`` runs it (compiled
        when asked)."""
        cfg, t = self.config, self.config.train
        net = build_model(cfg.model.name, in_channels=self.in_channels, num_classes=self.num_classes,
                          width=cfg.model.width, **cfg.model.options)
        if net.spatial_dims != self.dims:
            raise ValueError(f"model {cfg.model.name!r} is {net.spatial_dims}D but dataset "
                             f"{cfg.data.name!r} is {self.dims}D")
        plugins = cfg.for_classes(self.num_classes).plugins
        spatial = t.image_size if self.dims == 2 else t.patch_size
        self.plugins = (attach(net, plugins, example_input=(1, self.in_channels, *spatial))
                        if plugins is not None else None)
        model: nn.Module = PluggedModel(net, self.plugins) if self.plugins else net
        self.compute = resolve_compute(t, self.device, self.dims)
        self.model = self.compute.prepare_model(model)
        self.forward = self.compute.compiled(self.model)

    def _setup_samples(self) -> None:
        """The training samples of an epoch: one pass over the training cases (2D), or
        ``iterations_per_epoch`` batches of patches (3D: 250 by default)."""
        cfg, t = self.config, self.config.train
        iterations = t.iterations_per_epoch or (250 if self.dims == 3 else None)
        length = iterations * t.batch_size if iterations else max(len(self.train_ids), t.batch_size)
        self.samples = TrainingSamples(self.cache, self.train_ids, seed=cfg.seed, length=length, augment=t.augment,
                                       patch_size=t.patch_size if self.dims == 3 else None,
                                       foreground_ratio=t.foreground_ratio)
        self.steps_per_epoch = length // t.batch_size

    def _setup_loader(self) -> None:
        """The training loader: workers, pinned memory and persistent workers from the
        trial's CPUs (``loaders.loader_settings``); its batches do not depend on them."""
        t = self.config.train
        self.loader_settings = loader_settings(t.num_workers, self.cpus, self.device)
        self.loader, self.sampler = training_loader(self.samples, t.batch_size, self.loader_settings,
                                                    seed=self.config.seed * 1000003)

    def _setup_optimiser(self) -> None:
        """Adam, a cosine schedule over every step of the run, and the gradient scaler (on
        for fp16 only)."""
        t = self.config.train
        total = max(1, self.steps_per_epoch * t.epochs)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
        self.scaler = self.compute.grad_scaler()

    def _setup_loss(self) -> None:
        """The segmentation loss: cross-entropy (2D default, as the paper) or CE + Dice (3D)."""
        t = self.config.train
        self._seg_loss = None
        if (t.loss or ("ce_dice" if self.dims == 3 else "ce")) == "ce_dice":
            from monai.losses.dice import DiceCELoss

            self._seg_loss = DiceCELoss(to_onehot_y=True, softmax=True)

    # -- pieces ------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's autocast context (a null context in float32)."""
        return self.compute.autocast()

    def segmentation_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self._seg_loss is None:
            return F.cross_entropy(logits.float(), labels)
        return self._seg_loss(logits.float(), labels.unsqueeze(1))

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One optimiser step on a batch. x: (B, C, *S) float32, y: (B, *S) int64 (on any
        device). Returns the detached (loss, segmentation loss, PDCR loss or None)."""
        t = self.config.train
        x = self.compute.prepare_input(x.to(self.device, non_blocking=True))
        y = y.to(self.device, non_blocking=True)
        with self.autocast():
            logits = self.forward(x)
        seg = self.segmentation_loss(logits, y)
        reg = self.plugins.regularization(y) if self.plugins is not None and self.plugins.pdcr else None
        loss = seg + t.pdcr_weight * reg if reg is not None else seg
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at epoch {self.epoch + 1}: {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach(), seg.detach(), reg.detach() if reg is not None else None

    def train_epoch(self) -> dict[str, float]:
        self.sampler.set_epoch(self.epoch)
        self.model.train()
        totals = {"loss": 0.0, "seg_loss": 0.0, "pdcr_loss": 0.0}
        steps = 0
        for x, y in self.loader:
            loss, seg, reg = self.train_step(x, y)
            totals["loss"] += loss.item()
            totals["seg_loss"] += seg.item()
            totals["pdcr_loss"] += reg.item() if reg is not None else 0.0
            steps += 1
        return {f"train_{k}": v / max(steps, 1) for k, v in totals.items()}

    def predict(self, case_ids: Sequence[str]) -> dict[str, np.ndarray]:
        self.model.eval()
        ev, t = self.config.eval, self.config.train
        if self.dims == 2:
            return predict_2d(self.forward, self.cache, case_ids, self.device, ev.batch_size, self.autocast)
        return predict_3d(self.forward, self.cache, case_ids, self.device, t.patch_size, ev.overlap,
                          ev.sw_batch_size, self.autocast)

    def evaluate(self) -> dict[str, np.ndarray]:
        """{case_id: (M, 4) confusion counts} on the held-out cases."""
        return case_counts(self.predict(self.eval_ids), self.cache, self.num_classes)

    def validate(self) -> float:
        """Dice (the trial's primary convention, ``eval.empty`` rule) of the current weights on
        the validation cases carved from the training ones (``eval.selection: best_val``)."""
        counts = case_counts(self.predict(self.val_ids), self.cache, self.num_classes)
        return float(epoch_scores(counts, self.dataset.classes, self.dims, self.config.eval.empty)["dice"])

    def evaluate_selected(self) -> dict[str, np.ndarray]:
        """Load the best validated epoch's weights into the model and evaluate them on the
        held-out cases: {case_id: (M, 4) confusion counts}."""
        if self.best.weights is None:
            raise RuntimeError("eval.selection best_val: no epoch was validated, nothing to select")
        self.model.load_state_dict(self.best.weights)
        return self.evaluate()

    def selection_metrics(self) -> dict[str, Any]:
        """What the final metrics say about model selection (``eval.selection: best_val`` only):
        selection, selected_epoch, val_dice (at that epoch), val_fraction, n_val_cases."""
        ev = self.config.eval
        return {"selection": ev.selection, "selected_epoch": self.best.epoch, "val_dice": self.best.val_dice,
                "val_fraction": ev.val_fraction, "n_val_cases": len(self.val_ids)}

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": self.epoch, "history": self.history, "rng": checkpoint.rng_state(),
                "best": self.best.state()}

    def save_checkpoint(self, directory: str | os.PathLike[str]) -> None:
        checkpoint.save(directory, self.state(), {"epoch": self.epoch, "config_hash": self.config_hash,
                                                  "config": self.config.model_dump(mode="json")})

    def load_checkpoint(self, directory: str | os.PathLike[str]) -> None:
        state = checkpoint.load(directory, self.config_hash)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.best = BestEpoch.from_state(state.get("best"))
        checkpoint.set_rng_state(state["rng"])

    def close(self) -> None:
        """Stop the loader's persistent worker processes (a new iteration starts them again)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None

    # -- the loop ----------------------------------------------------------------------
    def run(self, report: Report | None = None) -> dict[str, Any]:
        """Train the remaining epochs, reporting after each; return final metrics, per-case
        rows and the per-epoch curves."""
        cfg = self.config
        counts = None
        while self.epoch < cfg.train.epochs:
            start = time.perf_counter()
            metrics: dict[str, Any] = self.train_epoch()
            self.epoch += 1
            metrics.update(epoch=self.epoch, lr=self.optimizer.param_groups[0]["lr"])
            if self.epoch % cfg.eval.every == 0 or self.epoch == cfg.train.epochs:
                counts = self.evaluate()
                metrics.update(epoch_scores(counts, self.dataset.classes, self.dims, cfg.eval.empty))
            if self.val_ids and (self.epoch % cfg.eval.val_every == 0 or self.epoch == cfg.train.epochs):
                metrics["val_dice"] = self.validate()
                self.best.offer(self.epoch, metrics["val_dice"], self.model)
            metrics["epoch_seconds"] = time.perf_counter() - start
            self.history.append(metrics)
            directory = tempfile.mkdtemp(prefix=f"dragsaw-epoch{self.epoch}-")
            try:
                self.save_checkpoint(directory)
                if report is not None:
                    report(dict(metrics), directory)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
        if self.val_ids and not (counts is not None and self.best.epoch == self.epoch):
            counts = self.evaluate_selected()  # best_val: the selected epoch's weights
        elif counts is None:  # resumed after the last epoch: evaluate what was trained
            counts = self.evaluate()
        final = dict(self.history[-1]) if self.history else {}
        final.update(epoch_scores(counts, self.dataset.classes, self.dims, cfg.eval.empty))
        if self.val_ids:
            final.update(self.selection_metrics())
        return {"metrics": final, "cases": result_rows(counts, self.dataset.classes, cfg.eval.empty),
                "epochs": list(self.history)}


def run_trial(config: TrialConfig | dict, report: Report | None = None, resume_from: str | None = None,
              cpus: float | None = None, data_root: str | None = None) -> dict[str, Any]:
    """Run one trial from a plain config (see :class:`TrialConfig`).

    report(metrics, checkpoint_dir) is called after every epoch; the directory holds a
    checkpoint from which ``run_trial(config, report, resume_from=dir)`` continues exactly
    (same weights and metrics as an uninterrupted run, on CPU with the same seed); it is
    removed when ``report`` returns, so copy it there if you keep it.
    cpus: the CPUs the trial was given (sizes the data loader, see :class:`Trial`).
    data_root: a local copy of the data to read instead of ``data.root`` (see :class:`Trial`).
    Returns {"metrics": final metrics, "cases": per-case-per-class rows, "epochs": curves}.
    """
    trial = Trial(config, cpus=cpus, data_root=data_root)
    try:
        if resume_from is not None:
            trial.load_checkpoint(resume_from)
        return trial.run(report)
    finally:
        trial.close()
