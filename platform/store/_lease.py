"""One driver per experiment: a lease object in the store.

    lease = Lease("s3://bucket/results", "table4")   # or a folder
    lease.acquire()           # LeaseHeld (exit 2) names the holder: host, pid, since
    lease.start_heartbeat()   # renews it every seconds/4 in a thread
    ...
    lease.release()           # on every exit path

The lease is ``{root}/_experiments/{name}/lease.json``: holder host, pid, a random token,
when it started, its last heartbeat and when it expires (holder's clock; UTC). It is only
ever changed atomically:

- a local folder: created with ``os.link`` of a complete temp file (fails if it exists);
  renewed, taken over and released under an ``flock`` on a sidecar ``.lease.lock``,
  comparing the content first (local filesystems; NFS locks are not trusted).
- S3 (and endpoints with S3 conditional writes: AWS, MinIO, SeaweedFS, moto): created
  with ``If-None-Match: *``; renewed, taken over and released (a ``released`` marker, never
  a delete) with ``If-Match: <ETag>``, so of two racing drivers exactly one wins.
- other fsspec filesystems (gs://, memory://...): check-then-write, which is not atomic;
  a second driver is still refused unless both start within the same second.

A driver that dies (SIGKILL, a lost node) stops renewing: its lease expires ``seconds``
after its last heartbeat (``DRAGSAW_LEASE_SECONDS``, default 60), after which another
driver takes it over; ``take_over=True`` takes it at once (``--take-over``). A holder
whose lease was taken over learns it at its next heartbeat (``on_lost``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from dragsaw.platform.store._location import StoreError, filesystem, is_local, redact

#: Seconds a lease lives after its last heartbeat, unless DRAGSAW_LEASE_SECONDS says otherwise.
DEFAULT_SECONDS = 60.0


def lease_seconds() -> float:
    """The lease lifetime: ``DRAGSAW_LEASE_SECONDS`` (a number > 0) or :data:`DEFAULT_SECONDS`."""
    text = os.environ.get("DRAGSAW_LEASE_SECONDS")
    if not text:
        return DEFAULT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 86400:
        raise StoreError(f"DRAGSAW_LEASE_SECONDS must be a number of seconds in (0, 86400), but got {text!r}")
    return value


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class Holder:
    """Who holds a lease. Times are seconds since the epoch (the holder's clock)."""

    host: str
    pid: int
    token: str
    started: float
    heartbeat: float
    expires: float
    released: bool = False

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        left = self.expires - now
        when = f"expires in {left:.0f} s" if left > 0 else f"expired {-left:.0f} s ago"
        return (f"host {self.host}, pid {self.pid}, since {_iso(self.started)} "
                f"(last heartbeat {_iso(self.heartbeat)}, {when})")

    def free(self, now: float) -> bool:
        return self.released or self.expires <= now


class LeaseHeld(StoreError):
    """Another live driver holds the experiment's lease: exit status 2, naming it."""

    def __init__(self, message: str, holder: Holder | None):
        super().__init__(message)
        self.holder = holder


class Lease:
    """The lease of experiment ``name`` in the store at ``url`` (see the module doc).
    ``on_lost(message)`` is called from the heartbeat thread if another driver took it."""

    def __init__(self, url: str, name: str, seconds: float | None = None,
                 on_lost: Callable[[str], None] | None = None):
        fs, root = filesystem(url)
        self.url, self.name = redact(url), name
        self.seconds = lease_seconds() if seconds is None else float(seconds)
        self.path = f"{root.rstrip('/')}/_experiments/{name}/lease.json"
        self._backend: _Backend = _Local(self.path) if is_local(fs) else _Objects(fs, self.path)
        self.on_lost = on_lost
        self.holder = Holder(host=socket.gethostname(), pid=os.getpid(), token=uuid.uuid4().hex,
                             started=0.0, heartbeat=0.0, expires=0.0)
        self._tag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    @property
    def held(self) -> bool:
        return self._tag is not None and self.lost is None

    def _content(self, released: bool = False) -> bytes:
        now = time.time()
        self.holder.heartbeat = now
        self.holder.expires = now if released else now + self.seconds
        self.holder.released = released
        return json.dumps(asdict(self.holder), indent=1).encode()

    def acquire(self, take_over: bool = False) -> Holder | None:
        """Take the lease: create it, or replace one that is released or expired (or any, with
        ``take_over``). Returns the holder it replaced while that one was live or expired
        (None if the lease was free or released). Raises :class:`LeaseHeld` naming a live
        holder, StoreError if the store cannot be written."""
        self.holder.started = time.time()
        current: Holder | None = None
        with _io(self.url, "take the experiment lease in"):
            for _ in range(8):  # each round loses only to a driver that changed the lease meanwhile
                self._tag = self._backend.create(self._content())
                if self._tag is not None:
                    return None
                found = self._backend.read()
                if found is None:
                    continue  # released (deleted) meanwhile: create again
                data, tag = found
                current = _parse(data)
                if current is not None and not current.free(time.time()) and not take_over:
                    raise LeaseHeld(self._held_message(current), current)
                self._tag = self._backend.replace(self._content(), tag)
                if self._tag is not None:
                    return None if current is None or current.released else current
        raise LeaseHeld(f"experiment {self.name!r} in {self.url}: other drivers keep changing its lease "
                        f"({self.path}); try again", current)

    def _held_message(self, holder: Holder) -> str:
        return (f"experiment {self.name!r} in {self.url} is being run by another driver: {holder.describe()}. "
                f"Wait for it to finish; if that driver is gone (killed, its machine lost), its lease expires "
                f"{self.seconds:g} s after its last heartbeat, after which `dragsaw resume {self.name}` takes "
                f"over, or take over at once with --take-over")

    def renew(self) -> bool:
        """Extend the lease; False (and ``lost`` set) if another driver has taken it."""
        if not self.held:
            return False
        tag = self._backend.replace(self._content(), self._tag)
        if tag is None:
            found = self._backend.read()
            other = _parse(found[0]) if found else None
            self.lost = (f"another driver took over experiment {self.name!r}: "
                         f"{other.describe() if other else 'the lease is gone'}")
            return False
        self._tag = tag
        return True

    def start_heartbeat(self) -> None:
        """Renew every ``seconds / 4`` in a daemon thread until :meth:`release`."""
        def beat() -> None:
            while not self._stop.wait(self.seconds / 4):
                try:
                    if not self.renew():
                        if self.on_lost is not None and self.lost:
                            self.on_lost(self.lost)
                        return
                except Exception:  # noqa: BLE001 - a store hiccup: the next beat retries
                    continue

        self._thread = threading.Thread(target=beat, name=f"dragsaw-lease-{self.name}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and give the lease up if this driver still holds it (best effort:
        if the store cannot be reached, the lease expires by itself)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        if not self.held:
            return
        try:
            self._backend.release(self._content(released=True), self._tag)
        except Exception:  # noqa: BLE001 - it expires anyway
            pass
        self._tag = None

    def __enter__(self) -> Lease:
        self.acquire()
        self.start_heartbeat()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _parse(data: bytes) -> Holder | None:
    """The holder in a lease file, or None if it is unreadable (treated as expired)."""
    try:
        fields = json.loads(data)
        return Holder(**{k: fields[k] for k in Holder.__dataclass_fields__ if k in fields})
    except (ValueError, TypeError, KeyError):
        return None


@contextmanager
def _io(url: str, what: str):
    try:
        yield
    except StoreError:
        raise
    except Exception as err:  # filesystem and network errors of any backend
        raise StoreError(f"result store {url}: cannot {what} it: {type(err).__name__}: {err}") from None


class _Backend:
    """Atomic operations on one lease object; a tag identifies the content seen or written."""

    def create(self, data: bytes) -> str | None:  # None: it exists
        raise NotImplementedError

    def read(self) -> tuple[bytes, str] | None:  # None: it does not exist
        raise NotImplementedError

    def replace(self, data: bytes, tag: str | None) -> str | None:  # None: changed since ``tag``
        raise NotImplementedError

    def release(self, data: bytes, tag: str | None) -> None:
        raise NotImplementedError


class _Local(_Backend):
    def __init__(self, path: str):
        self.path = path
        self.folder = os.path.dirname(path)

    def _temp(self, data: bytes) -> str:
        os.makedirs(self.folder, exist_ok=True)
        temp = os.path.join(self.folder, f".lease.{uuid.uuid4().hex}.tmp")
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return temp

    @contextmanager
    def _locked(self):
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, ".lease.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def create(self, data: bytes) -> str | None:
        temp = self._temp(data)
        try:
            os.link(temp, self.path)  # atomic, and fails if the lease exists
        except FileExistsError:
            return None
        finally:
            os.unlink(temp)
        return _digest(data)

    def read(self) -> tuple[bytes, str] | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, _digest(data)

    def replace(self, data: bytes, tag: str | None) -> str | None:
        with self._locked():
            current = self.read()
            if current is None or current[1] != tag:
                return None
            os.replace(self._temp(data), self.path)
        return _digest(data)

    def release(self, data: bytes, tag: str | None) -> None:
        with self._locked():
            current = self.read()
            if current is not None and current[1] == tag:
                os.unlink(self.path)


class _Objects(_Backend):
    def __init__(self, fs: Any, path: str):
        self.fs, self.path = fs, path
        self.conditional = "s3" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))

    def create(self, data: bytes) -> str | None:
        if not self.conditional:
            if self.fs.exists(self.path):
                return None
            self.fs.pipe_file(self.path, data)
            return self._etag()
        try:
            out = self.fs.pipe_file(self.path, data, mode="create")
        except OSError as err:
            if _precondition_failed(err):
                return None
            raise
        return _etag_of(out) or self._etag()

    def _etag(self) -> str | None:
        info = self.fs.info(self.path)
        tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
        return None if tag is None else str(tag)

    def read(self) -> tuple[bytes, str] | None:
        try:
            tag = self._etag()
            data = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        return data, tag or _digest(data)

    def replace(self, data: bytes, tag: str | None) -> str | None:
        if not self.conditional:
            found = self.read()
            if found is None or found[1] != tag:
                return None
            self.fs.pipe_file(self.path, data)
            return self._etag()
        try:
            out = self.fs.pipe_file(self.path, data, IfMatch=tag)
        except (OSError, FileNotFoundError) as err:
            if _precondition_failed(err) or isinstance(err, FileNotFoundError):
                return None
            raise
        return _etag_of(out) or self._etag()

    def release(self, data: bytes, tag: str | None) -> None:
        # A marker, not a delete: S3 has no conditional delete everywhere, and an unconditional
        # one could remove the lease of a driver that took over a moment ago.
        self.replace(data, tag)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _etag_of(out: Any) -> str | None:
    return out.get("ETag") if isinstance(out, dict) else None


def _precondition_failed(err: BaseException) -> bool:
    """Whether an s3fs error is a failed If-None-Match / If-Match (412): s3fs raises
    FileExistsError for If-None-Match on moto/AWS, OSError(22) otherwise (SeaweedFS, If-Match)."""
    if isinstance(err, FileExistsError):
        return True
    cause = err.__cause__ or err.__context__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return error.get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status == 412
    return "PreconditionFailed" in str(err) or "412" in str(err)
