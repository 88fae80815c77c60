"""Experiment records kept beside the results (``{store}/_experiments/{name}/spec.json``): the
validated spec an experiment ran, its spec hash, commit and package versions, for
``dragsaw resume NAME``, status, leaderboards and reports.

    save_record(url, "table4", {"spec": {...}, "spec_hash": "...", "git_commit": "...", "versions": {...}})
    load_record(url, "table4")            # the same dict; RecordMissing when there is none
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dragsaw.platform.store._location import StoreError, filesystem

FOLDER = "_experiments"
FILE = "spec.json"


class RecordMissing(StoreError):
    """The store holds no record of the experiment (the message lists those it has)."""


def _folder(store_url: str, name: str) -> tuple[Any, str]:
    fs, root = filesystem(store_url)
    return fs, f"{root.rstrip('/')}/{FOLDER}/{name}"


def save_record(store_url: str, name: str, record: dict[str, Any]) -> None:
    """Write experiment ``name``'s record (JSON types; other values as their str) in one PUT,
    replacing an earlier one."""
    fs, folder = _folder(store_url, name)
    fs.makedirs(folder, exist_ok=True)
    fs.pipe_file(f"{folder}/{FILE}", json.dumps(record, indent=1, default=str).encode())


def record_names(store_url: str) -> list[str]:
    """The experiments that have a record in the store, sorted."""
    fs, root = filesystem(store_url)
    folder = f"{root.rstrip('/')}/{FOLDER}"
    return sorted(Path(p).name for p in fs.ls(folder)) if fs.exists(folder) else []


def journal_location(store_url: str, name: str) -> str:
    """Where experiment ``name``'s default Optuna study journal lives in the store: a file
    ``_experiments/<name>/study.journal`` in a local store, a prefix
    ``_experiments/<name>/study-journal`` of one object per append elsewhere (s3)."""
    from urllib.parse import urlsplit

    base = str(store_url).rstrip("/")
    parts = urlsplit(base)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and base[1:3] in (":\\", ":/")):
        folder = Path(parts.path if parts.scheme == "file" else base).expanduser().resolve()
        return str(folder / FOLDER / name / "study.journal")
    return f"{base}/{FOLDER}/{name}/study-journal"


def tune_folder(store_url: str) -> str:
    """Where Ray Tune keeps its own bookkeeping (never read back: results and checkpoints
    live in the store): ``_tune`` in a local store; for a remote store a folder in the
    system's temp directory, so that a run writes nothing into the folder it started from."""
    import tempfile

    if "://" not in store_url or store_url.startswith("file://"):
        return str(Path(store_url.removeprefix("file://")) / "_tune")
    return str(Path(tempfile.gettempdir()) / "dragsaw-tune")


def load_record(store_url: str, name: str) -> dict[str, Any]:
    """The record :func:`save_record` wrote for ``name``; :class:`RecordMissing` if none."""
    fs, folder = _folder(store_url, name)
    path = f"{folder}/{FILE}"
    if not fs.exists(path):
        raise RecordMissing(f"no experiment {name!r} in the store {store_url}; experiments there: "
                            f"{record_names(store_url) or 'none'}")
    return json.loads(fs.cat_file(path))


__all__ = ["RecordMissing", "journal_location", "load_record", "record_names", "save_record", "tune_folder"]
