"""When a running trial uploads its resume checkpoint, and what it keeps when it ends
(the spec's ``checkpoints``, :class:`~dragsaw.platform.experiment.parts.Checkpoints`).

A trial writes a whole checkpoint locally after every epoch (``run_trial``'s report);
:class:`Uploads` decides which of them go to the store, timing each upload so that the
share of a trial's time spent uploading is known (``upload_seconds`` in its metrics) and
bounded. :func:`keep_top_samples` is the search's hook: a study keeps the final weights of
its best ``top_k`` samples only."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dragsaw.platform.store.checkpoints import CheckpointStore

DEFAULTS: dict[str, Any] = {"keep": "final", "top_k": 3, "every_epochs": None, "every_minutes": 30.0,
                            "upload_share": 0.01}


@dataclass
class Uploads:
    """The upload rule of one trial (see ``Checkpoints``) and what it uploaded.

    options: the spec's ``checkpoints`` as a dict. Times are seconds; ``train_seconds`` is
    the trial's training (and evaluation) time so far, summed from its epochs."""

    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS))
    train_seconds: float = 0.0
    upload_seconds: float = 0.0
    uploaded_bytes: int = 0
    uploads: int = 0
    last_epoch: int = 0
    last_duration: float = 0.0
    since_last: float = 0.0

    def due(self, epoch: int, epoch_seconds: float) -> bool:
        """Whether the checkpoint of ``epoch`` (which took ``epoch_seconds``) is uploaded."""
        o = {**DEFAULTS, **self.options}
        self.train_seconds += epoch_seconds
        self.since_last += epoch_seconds
        if o["every_epochs"] and epoch - self.last_epoch >= o["every_epochs"]:
            return True
        if self.since_last >= 60 * float(o["every_minutes"]):
            return True
        share = float(o["upload_share"])
        return share > 0 and self.upload_seconds + self.last_duration <= share * self.train_seconds

    def upload(self, store: CheckpointStore, trial_id: str, directory: str, epoch: int) -> None:
        """Upload the checkpoint in ``directory`` (written after ``epoch``), timing it."""
        start = time.perf_counter()
        self.uploaded_bytes += store.save(trial_id, directory)
        self.last_duration = time.perf_counter() - start
        self.upload_seconds += self.last_duration
        self.uploads += 1
        self.last_epoch, self.since_last = epoch, 0.0

    def figures(self) -> dict[str, float]:
        """The trial's upload figures, for its metrics: seconds, bytes, count, share of training time."""
        return {"upload_seconds": self.upload_seconds, "uploaded_bytes": float(self.uploaded_bytes),
                "checkpoint_uploads": float(self.uploads),
                "upload_share": self.upload_seconds / self.train_seconds if self.train_seconds else 0.0}


def keep_top_samples(optuna_study: Any, store_url: str, experiment: str, sample_trials: dict[str, list[str]],
                     top_k: int, minimize: bool) -> list[str]:
    """Remove the final weights of every COMPLETE sample of ``optuna_study`` but its best
    ``top_k`` (by its first objective; ``minimize`` for a ``min`` metric). sample_trials:
    {sample id: its trial ids} (one per fold it was scored on). Returns the samples kept."""
    from optuna.trial import TrialState

    from dragsaw.platform.search.tune_searcher import SAMPLE_ATTR

    done = [t for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if SAMPLE_ATTR in t.user_attrs and t.values]
    done.sort(key=lambda t: t.values[0] if minimize else -t.values[0])
    kept = [t.user_attrs[SAMPLE_ATTR] for t in done[:top_k]]
    store = CheckpointStore(store_url, experiment)
    for t in done[top_k:]:
        sample = t.user_attrs[SAMPLE_ATTR]
        for trial_id in sample_trials.get(sample, [sample]):
            store.remove(trial_id)
    return kept


#: Assumed sustained upload rate to the store (bytes/s) for ``--dry-run``'s estimate.
UPLOAD_BYTES_PER_S = 100e6
#: A resume checkpoint holds the weights, Adam's two moments of each, and a few KB of state.
RESUME_FACTOR = 3


def model_bytes(model: dict, in_channels: int, num_classes: int) -> int | None:
    """Bytes of a network's parameters and buffers (float32), built on the ``meta`` device
    (no memory, no data); None when it cannot be built there. Plug-ins are not counted."""
    import torch

    from dragsaw.workloads.models import build_model

    try:
        with torch.device("meta"):
            net = build_model(model["name"], in_channels=in_channels, num_classes=num_classes,
                              width=model.get("width", 1.0), **(model.get("options") or {}))
    except Exception:  # noqa: BLE001 - an estimate only
        return None
    return sum(t.numel() * t.element_size() for t in net.state_dict().values())


def _mb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def uploads_per_trial(options: dict[str, Any], epochs: int, epoch_seconds: float | None, resume_bytes: int) -> int:
    """How many resume checkpoints a trial of ``epochs`` epochs uploads under ``options``
    (the last epoch never is); with ``epoch_seconds`` unknown the share rule counts as every epoch."""
    o = {**DEFAULTS, **options}
    most = max(epochs - 1, 0)
    count = most // o["every_epochs"] if o["every_epochs"] else 0
    if epoch_seconds is None:
        return most if o["upload_share"] > 0 else count
    count = max(count, int(most * epoch_seconds // (60 * o["every_minutes"])))
    if o["upload_share"] > 0:
        per_upload = resume_bytes / UPLOAD_BYTES_PER_S
        count = max(count, 1 + int(o["upload_share"] * most * epoch_seconds // max(per_upload, 1e-9)))
    return min(count, most)


def checkpoint_volume(spec: Any, configs: list[tuple[dict, Any, int]], epoch_seconds: float | None) -> list[str]:
    """The ``--dry-run`` lines on checkpoints: what the store keeps after the run, the resume
    checkpoint each running trial holds, and the bytes uploaded in all. configs: (trial
    config, its dataset, how many trials have it); epoch_seconds: mean seconds per epoch, if known."""
    o = spec.checkpoints
    kept = uploaded = resume_max = 0
    unknown = False
    for config, dataset, times in configs:
        channels = 3 if dataset.spatial_dims == 2 else 1
        weights = model_bytes(config["model"], channels, max(len(dataset.classes), 2))
        if weights is None:
            unknown = True
            continue
        resume = RESUME_FACTOR * weights
        resume_max = max(resume_max, resume)
        epochs = int(config["train"]["epochs"])
        uploads = uploads_per_trial(o.model_dump(), epochs, epoch_seconds, resume)
        final = weights if o.keep == "final" else 0
        uploaded += times * (uploads * resume + final)
        if spec.search is None:
            kept += times * final
        else:
            per_sample = max(times // max(spec.search.num_samples, 1), 1)  # folds of one sample
            kept += min(o.top_k, spec.search.num_samples) * per_sample * final
    what = ("the final weights of each trial" if spec.search is None
            else f"the final weights of each study's best {o.top_k} samples")
    lines = [f"checkpoints (keep {o.keep}): {_mb(kept)} kept after the run "
             f"({what if o.keep == 'final' else 'nothing'}; pruned trials keep nothing); while running, one "
             f"resume checkpoint per unfinished trial (up to {_mb(resume_max)} each); {_mb(uploaded)} uploaded in "
             f"all (rules: every_epochs {o.every_epochs}, every_minutes {o.every_minutes:g}, upload_share "
             f"{o.upload_share:g}" + (f"; {UPLOAD_BYTES_PER_S / 1e6:g} MB/s assumed)" if epoch_seconds else
                                      "; every epoch assumed, the epoch time being unknown)")]
    if unknown:
        lines.append("checkpoints: some models could not be sized on the meta device; not counted")
    return lines


__all__ = ["DEFAULTS", "Uploads", "keep_top_samples", "checkpoint_volume", "uploads_per_trial", "model_bytes"]
