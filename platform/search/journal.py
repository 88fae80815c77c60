"""An Optuna journal kept in an object store: one object per append, created only if absent.

Optuna's ``JournalStorage`` replays an ordered log of operations; its file backend orders
appends with a file lock, which an object store does not have. Here each ``append_logs``
call writes ``{prefix}/{seq:010d}.json`` (a JSON list of log records) with a create-only
PUT (S3 ``If-None-Match: *``): of two drivers racing for the same sequence number exactly
one wins, the other re-reads and takes the next number. Objects are never rewritten, so a
reader caches what it has read and only asks for the objects after it; a fresh machine
rebuilds the study from the store alone.

    storage = optuna.storages.JournalStorage(ObjectJournalBackend("s3://bucket/results/_studies/exp"))
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from optuna.storages.journal import BaseJournalBackend

from dragsaw.platform.store._location import filesystem


def _exists_error(err: BaseException) -> bool:
    """Whether a failed create-only PUT failed because the object exists: s3fs raises
    FileExistsError when the server names the condition (moto), else OSError whose cause
    carries ``PreconditionFailed`` (SeaweedFS, see STACK-NOTES)."""
    if isinstance(err, FileExistsError):
        return True
    cause = err.__cause__
    response = getattr(cause, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in ("PreconditionFailed", "412") or "PreconditionFailed" in str(err)


class ObjectJournalBackend(BaseJournalBackend):
    """Optuna journal backend over an ``s3://`` prefix (see the module docstring).

    url: ``s3://bucket/prefix`` (the endpoint and credentials as for the result store)."""

    def __init__(self, url: str):
        self.url = url
        self._fs, root = filesystem(url)
        self._prefix = root.rstrip("/")
        self._objects = 0  # objects read so far: 0 .. _objects - 1
        self._logs: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    # Ray Tune pickles the searcher (and so this backend) into its experiment state.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)  # vars(): pyright reads self.__dict__ as the class's mappingproxy here
        self._lock = threading.Lock()

    def _path(self, seq: int) -> str:
        return f"{self._prefix}/{seq:010d}.json"

    def _sync(self) -> None:
        """Read the objects written since the last sync (all of them, listed once, when nothing
        is cached yet; then one GET per new object until one is missing)."""
        if self._objects == 0:
            try:
                names = sorted(p for p in self._fs.find(self._prefix) if p.endswith(".json"))
            except FileNotFoundError:
                names = []
            expected = [self._path(i) for i in range(len(names))]
            names = [n for n, e in zip(names, expected) if n.lstrip("/") == e.lstrip("/")]
            if names:
                blobs = self._fs.cat(names)
                blobs = blobs if isinstance(blobs, dict) else {names[0]: blobs}
                for name in names:
                    self._logs.extend(json.loads(blobs[name]))
                self._objects = len(names)
        while True:
            try:
                data = self._fs.cat_file(self._path(self._objects))
            except FileNotFoundError:
                return
            self._logs.extend(json.loads(data))
            self._objects += 1

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        with self._lock:
            self._sync()
            return list(self._logs[log_number_from:])

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = json.dumps(logs, separators=(",", ":")).encode()
        with self._lock:
            for _ in range(10_000):
                self._sync()
                path = self._path(self._objects)
                try:
                    self._fs.pipe_file(path, data, mode="create")
                except OSError as err:
                    if _exists_error(err):
                        continue  # another driver took this number: read it, take the next
                    raise
                self._logs.extend(logs)
                self._objects += 1
                return
            raise RuntimeError(f"could not append to the Optuna journal at {self.url}: too many concurrent writers")


__all__ = ["ObjectJournalBackend"]
