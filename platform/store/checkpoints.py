"""Trial checkpoints kept beside the results (``{store}/_checkpoints/{experiment}/{trial_id}``).

While a trial runs its folder holds its latest resume checkpoint (``trial.pt`` + ``meta.json``,
written by ``run_trial``: weights, optimizer, schedule, RNG), replaced in place by each newer
one: one PUT per file on object stores, a temp file + rename locally, so the previous one is
gone only once the new one is whole. A retried or resumed trial continues from it on any node
that can reach the store. When the trial completes the folder keeps at most ``weights.pt``
(the model weights only, for the report); a pruned trial keeps nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dragsaw.platform.store._location import filesystem

FILES = ("trial.pt", "meta.json")  # meta.json last: informational, the epoch is inside trial.pt
WEIGHTS = "weights.pt"


class CheckpointStore:
    """The checkpoints of one experiment's trials in the store at ``store_url``."""

    def __init__(self, store_url: str, experiment: str):
        self.fs, root = filesystem(store_url)
        self.base = f"{root.rstrip('/')}/_checkpoints/{experiment}"
        self.local = self.fs.protocol in ("file", "local") or "file" in self.fs.protocol

    def _dir(self, trial_id: str) -> str:
        return f"{self.base}/{trial_id}"

    def _put(self, src: Path, target: str) -> None:
        """One file, never seen partial: a rename locally, a single PUT on object stores."""
        if self.local:
            tmp = f"{target}.tmp"
            self.fs.put_file(str(src), tmp)
            self.fs.mv(tmp, target)
        else:
            self.fs.put_file(str(src), target)

    def save(self, trial_id: str, directory: str | Path) -> int:
        """Upload a resume checkpoint directory written by ``run_trial``, replacing the
        previous one once the new one is whole. Returns the bytes uploaded."""
        target = self._dir(trial_id)
        self.fs.makedirs(target, exist_ok=True)
        sent = 0
        for name in FILES:
            src = Path(directory) / name
            if src.exists():
                self._put(src, f"{target}/{name}")
                sent += src.stat().st_size
        return sent

    def save_weights(self, trial_id: str, file: str | Path) -> int:
        """Upload a finished trial's weights-only file (``checkpoint.save_weights``) as
        ``weights.pt``. Returns the bytes uploaded."""
        self.fs.makedirs(self._dir(trial_id), exist_ok=True)
        self._put(Path(file), f"{self._dir(trial_id)}/{WEIGHTS}")
        return Path(file).stat().st_size

    def finish(self, trial_id: str) -> None:
        """Drop the trial's resume checkpoint (it completed), keeping ``weights.pt`` if any."""
        for name in FILES:
            path = f"{self._dir(trial_id)}/{name}"
            if self.fs.exists(path):
                self.fs.rm(path)

    def restore(self, trial_id: str) -> str | None:
        """A local copy of the trial's last resume checkpoint (a temp dir the caller
        removes), or None."""
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

    def weights(self, trial_id: str) -> str | None:
        """A local copy of the trial's ``weights.pt`` (a temp file the caller removes), or None."""
        source = f"{self._dir(trial_id)}/{WEIGHTS}"
        if not self.fs.exists(source):
            return None
        fd, local = tempfile.mkstemp(prefix=f"dragsaw-weights-{trial_id}-", suffix=".pt")
        os.close(fd)
        try:
            self.fs.get_file(source, local)
        except Exception:
            Path(local).unlink(missing_ok=True)
            raise
        return local

    def remove(self, trial_id: str) -> None:
        """Drop everything the trial kept (a pruned trial, or weights a search does not keep)."""
        if self.fs.exists(self._dir(trial_id)):
            self.fs.rm(self._dir(trial_id), recursive=True)

    def sizes(self) -> dict[str, int]:
        """{path under the experiment's folder: bytes} of every stored file."""
        if not self.fs.exists(self.base):
            return {}
        found = self.fs.find(self.base, detail=True)
        if not isinstance(found, dict):  # fsspec returns {path: info} with detail=True
            raise TypeError(f"{type(self.fs).__name__}.find(detail=True) gave a {type(found).__name__}")
        return {path[len(self.base):].lstrip("/"): int(info.get("size") or 0) for path, info in found.items()}
