"""Where studies persist. ``study_storage`` (what searches use): the study lives with the
results, in an Optuna journal inside the store (a file for a local store, one object per
append for ``s3://``), or in a database named by ``search.storage`` (``postgresql://...``,
credentials from the environment only). ``make_storage`` / ``default_storage_url``: the
older SQLite default, still read when a store already holds ``optuna.db``."""

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


def _database(url: str) -> optuna.storages.BaseStorage:
    """An RDBStorage for a database URL without a password (libpq and SQLAlchemy read
    PGPASSWORD / ~/.pgpass / PGUSER from the environment); ``postgresql://`` uses psycopg2."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password:
        raise ValueError("search.storage must not carry a password: set it in the environment "
                         "(PGPASSWORD or ~/.pgpass for PostgreSQL) and write the URL without it")
    if parsed.drivername == "postgresql":
        url = "postgresql+psycopg2" + url[len("postgresql"):]
    if url.startswith("sqlite:///"):
        return make_storage(url, "")
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except ImportError as err:
        raise ValueError(f"search.storage {parsed.drivername}:// needs its database driver: {err.msg} "
                         "(for PostgreSQL: pip install psycopg2-binary)") from None


def journal_location(store_url: str, experiment: str) -> str:
    """Where the default study journal of ``experiment`` lives in the store (the store package
    owns every path under its root: :func:`dragsaw.platform.store.records.journal_location`)."""
    from dragsaw.platform.store.records import journal_location as in_store

    return in_store(store_url, experiment)


def study_storage(url: str | None, store_url: str, experiment: str) -> tuple[optuna.storages.BaseStorage, str]:
    """(storage, where: a description without credentials) of the studies of ``experiment``.

    url: ``search.storage`` (a database URL) or None: then the journal in the store (see
    :func:`journal_location`), or, for a local store that already holds the older
    ``optuna.db``, that SQLite file. ValueError for a store the journal cannot live in (only
    local folders and ``s3://`` have the create-only writes it needs) or a URL with a password."""
    from dragsaw.platform.store._location import redact

    if url is not None:
        return _database(url), redact(url)
    local = _local_dir(store_url)
    if local is not None:
        legacy = local / "optuna.db"
        if legacy.exists():
            return make_storage(f"sqlite:///{legacy}", ""), str(legacy)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = Path(journal_location(str(local), experiment))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return optuna.storages.JournalStorage(backend), str(path)
    if urlsplit(str(store_url)).scheme in ("s3", "s3a"):
        from dragsaw.platform.search.journal import ObjectJournalBackend

        where = journal_location(store_url, experiment)
        return optuna.storages.JournalStorage(ObjectJournalBackend(where)), where
    raise ValueError(f"the Optuna study cannot be kept in the store {redact(str(store_url))} (its journal needs a "
                     "local folder or s3://); set search.storage to a database URL, e.g. postgresql://host/db")


__all__ = ["make_storage", "default_storage_url", "study_storage", "journal_location"]
