"""Where studies persist: an SQLAlchemy URL, by default an SQLite file next to the results."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import optuna

log = logging.getLogger("dragsaw.platform.search")


def _local_dir(store: str) -> Path | None:
    """The folder of a local store URL (a path or ``file://``), None for a remote one."""
    parts = urlsplit(str(store))
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and str(store)[1:3] in (":\\", ":/")):
        return Path(parts.path if parts.scheme == "file" else str(store)).expanduser().resolve()
    return None


def default_storage_url(results_dir: str, experiment: str | None = None) -> tuple[str, str | None]:
    """(SQLAlchemy URL, note): ``sqlite:///<results_dir>/optuna.db`` for a local store; for a
    remote store (``s3://`` ...) SQLite cannot live there, so ``./results/<experiment>/optuna.db``
    on this machine, with a note saying so."""
    local = _local_dir(results_dir)
    if local is not None:
        return f"sqlite:///{local / 'optuna.db'}", None
    if not experiment:
        raise ValueError(f"the store {results_dir!r} is not a local folder: name the experiment so that the "
                         "study can be kept under ./results/<experiment>/, or give search.storage")
    path = Path("results", experiment, "optuna.db").resolve()
    note = (f"the store {results_dir} is remote, so the Optuna study is kept in {path} on this machine; "
            "set search.storage to a database URL to share it between drivers")
    return f"sqlite:///{path}", note


def make_storage(url: str | None, results_dir: str, *, experiment: str | None = None
                 ) -> optuna.storages.RDBStorage:
    """An RDBStorage (what OptunaSearch needs: an object, not a URL) for ``url``, or for the
    default of :func:`default_storage_url` when ``url`` is None. SQLite folders are created;
    the note about a remote store is logged at WARNING level."""
    if url is None:
        url, note = default_storage_url(results_dir, experiment)
        if note:
            log.warning(note)
    engine_kwargs = None
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}  # concurrent writers wait instead of failing
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


__all__ = ["make_storage", "default_storage_url"]
