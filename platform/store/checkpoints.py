"""Trial checkpoints kept beside the results (``{store}/_checkpoints/{experiment}/{trial_id}``),
so that a retried trial, or every trial of an experiment whose driver was killed,
continues from its last epoch on any node that can reach the store, and a report can
rebuild a trial from its last weights."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from dragsaw.platform.store._location import filesystem

FILES = ("trial.pt", "meta.json")  # meta.json last: informational, the epoch is inside trial.pt


class CheckpointStore:
    """The checkpoints of one experiment's trials in the store at ``store_url``, as written
    by ``run_trial`` (``trial.pt`` and ``meta.json``)."""

    def __init__(self, store_url: str, experiment: str):
        self.fs, root = filesystem(store_url)
        self.base = f"{root.rstrip('/')}/_checkpoints/{experiment}"
        self.local = self.fs.protocol in ("file", "local") or "file" in self.fs.protocol

    def _dir(self, trial_id: str) -> str:
        return f"{self.base}/{trial_id}"

    def save(self, trial_id: str, directory: str | Path) -> None:
        """Upload a checkpoint directory written by ``run_trial``, replacing the previous one.
        Each file is a single PUT (object stores) or a rename (local), never a partial file."""
        target = self._dir(trial_id)
        self.fs.makedirs(target, exist_ok=True)
        for name in FILES:
            src = Path(directory) / name
            if not src.exists():
                continue
            if self.local:
                tmp = f"{target}/.{name}.tmp"
                self.fs.put_file(str(src), tmp)
                self.fs.mv(tmp, f"{target}/{name}")
            else:
                self.fs.put_file(str(src), f"{target}/{name}")

    def restore(self, trial_id: str) -> str | None:
        """A local copy of the trial's last checkpoint (a temp dir the caller removes), or None."""
        source = f"{self._dir(trial_id)}/trial.pt"
        if not self.fs.exists(source):
            return None
        local = tempfile.mkdtemp(prefix=f"dragsaw-resume-{trial_id}-")
        try:
            for name in FILES:
                if self.fs.exists(f"{self._dir(trial_id)}/{name}"):
                    self.fs.get_file(f"{self._dir(trial_id)}/{name}", str(Path(local) / name))
        except Exception:
            shutil.rmtree(local, ignore_errors=True)
            raise
        return local

    def remove(self, trial_id: str) -> None:
        if self.fs.exists(self._dir(trial_id)):
            self.fs.rm(self._dir(trial_id), recursive=True)
