"""Trial checkpoints: everything needed to continue exactly (weights, optimizer,
schedule, scaler, RNG states, curves), written whole into a directory."""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

FILE = "trial.pt"
META = "meta.json"
WEIGHTS = "weights.pt"  # a finished trial's model weights only (see save_weights)


class CheckpointMismatch(ValueError):
    """A checkpoint whose ``meta.json`` names another config hash than the trial's
    (:func:`dragsaw.workloads.canonical.config_hash`): its weights belong to another trial."""


def rng_state() -> dict:
    np_state = np.random.get_state(legacy=True)  # the default, named: numpy's stubs assume False
    if not isinstance(np_state, tuple):  # a tuple for the MT19937 global generator
        raise RuntimeError(f"numpy's global random state is a {type(np_state).__name__}, expected the "
                           "legacy MT19937 tuple")
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])


def save(directory: str | os.PathLike[str], payload: dict, meta: dict) -> Path:
    """Write ``payload`` (torch.save) and ``meta`` (JSON) into ``directory``, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, writer in ((FILE, lambda f: torch.save(payload, f)),
                         (META, lambda f: f.write(json.dumps(meta, indent=1, default=str).encode()))):
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            writer(handle)
        os.replace(tmp, directory / name)
    return directory


def load(directory: str | os.PathLike[str], expected_config_hash: str | None = None) -> dict:
    """Read a checkpoint written by :func:`save`; refuse one made for another config
    (:class:`CheckpointMismatch`, when ``expected_config_hash`` is given)."""
    directory = Path(directory)
    path = directory / FILE
    if not path.exists():
        raise FileNotFoundError(f"no trial checkpoint {path} (expected {FILE} written by run_trial)")
    meta = json.loads((directory / META).read_text()) if (directory / META).exists() else {}
    if expected_config_hash and meta.get("config_hash") not in (None, expected_config_hash):
        raise CheckpointMismatch(f"checkpoint {directory} was written for another trial config "
                         f"({meta.get('config_hash')} != {expected_config_hash}); refusing to resume from it")
    return torch.load(path, map_location="cpu", weights_only=True)


def save_weights(directory: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Write the model weights of the checkpoint in ``directory`` (no optimizer, schedule,
    scaler, RNG or curves; with ``eval.selection: best_val`` the selected epoch's) to the
    file ``target``, atomically: ``{"model": state_dict, "epoch": int, "config_hash": str}``.
    Its size is the model's parameter and buffer bytes plus a few KB; what a finished trial
    keeps for its report."""
    directory, target = Path(directory), Path(target)
    meta = json.loads((directory / META).read_text()) if (directory / META).exists() else {}
    state = torch.load(directory / FILE, map_location="cpu", weights_only=True)
    # eval.selection best_val: the selected epoch's weights, the ones the trial was evaluated with
    best = state.get("best")
    model, epoch = (best["weights"], best["epoch"]) if best else (state["model"], state["epoch"])
    payload = {"model": model, "epoch": int(epoch), "config_hash": str(meta.get("config_hash", ""))}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        torch.save(payload, handle)
    os.replace(tmp, target)
    return target


def load_weights(path: str | os.PathLike[str], expected_config_hash: str | None = None) -> dict:
    """Read a file written by :func:`save_weights` (``{"model", "epoch", "config_hash"}``);
    :class:`CheckpointMismatch` when it was written for another config than ``expected_config_hash``."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if expected_config_hash and payload.get("config_hash") not in (None, "", expected_config_hash):
        raise CheckpointMismatch(f"weights {path} were written for another trial config "
                                 f"({payload.get('config_hash')} != {expected_config_hash})")
    return payload
