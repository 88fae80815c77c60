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


def load_record(store_url: str, name: str) -> dict[str, Any]:
    """The record :func:`save_record` wrote for ``name``; :class:`RecordMissing` if none."""
    fs, folder = _folder(store_url, name)
    path = f"{folder}/{FILE}"
    if not fs.exists(path):
        raise RecordMissing(f"no experiment {name!r} in the store {store_url}; experiments there: "
                            f"{record_names(store_url) or 'none'}")
    return json.loads(fs.cat_file(path))


__all__ = ["RecordMissing", "load_record", "record_names", "save_record"]
