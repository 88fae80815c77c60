"""Datasets on object storage: a dataset ``root`` may be an fsspec URL (``s3://bucket/ISIC2016``).
Each node stages it once into its local cache and its trials read the local copy from then on.

Staging is atomic (downloaded into a temp folder beside the target, then renamed), locked
across the node's concurrent trials (an ``fcntl`` file lock: the second waits and then finds
the copy there) and verified against the store's listing: every file's size and ETag (where
the store gives one) are kept in ``.dragsaw-staged.json``; a copy whose listing changed on the
store, or whose files on disk differ in size, is staged again. The copy lives in
``$DRAGSAW_CACHE/datasets`` (default ``~/.cache/dragsaw/datasets``), in a folder named after
the URL's last part and a hash of the whole URL.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dragsaw.platform.store._location import filesystem, redact

MANIFEST = ".dragsaw-staged.json"


def is_url(root: str) -> bool:
    """True for a remote fsspec URL (``s3://...``); local paths and ``file://`` are not."""
    return "://" in root and not root.startswith(("file://", "local://"))


def cache_dir() -> Path:
    """The node's dataset cache: ``$DRAGSAW_CACHE/datasets`` or ``~/.cache/dragsaw/datasets``."""
    base = os.environ.get("DRAGSAW_CACHE") or os.path.join("~", ".cache", "dragsaw")
    return Path(base).expanduser() / "datasets"


def local_path(url: str) -> Path:
    """Where ``url`` is staged on this node (whether or not it is there yet)."""
    name = url.rstrip("/").rsplit("/", 1)[-1] or "dataset"
    return cache_dir() / f"{name}-{hashlib.sha256(url.rstrip('/').encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Staged:
    """path: the local copy; downloaded: True when this call fetched it (False: it was
    there and matched the listing); files / bytes: what the copy holds."""

    path: Path
    downloaded: bool
    files: int
    bytes: int


def listing(url: str) -> dict[str, list]:
    """{relative path: [size in bytes, ETag or None]} of every file under ``url``.
    FileNotFoundError when there is none (the root does not exist on the store)."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    found = fs.find(root, detail=True)
    if not isinstance(found, dict) or not found:
        raise FileNotFoundError(f"{redact(url)}: no files under it on the store")
    out = {}
    for path, info in found.items():
        if info.get("type", "file") != "file":
            continue
        etag = info.get("ETag") or info.get("etag")
        out[path[len(root):].lstrip("/")] = [int(info.get("size") or 0), str(etag).strip('"') if etag else None]
    return dict(sorted(out.items()))


def _matches(target: Path, files: dict[str, list]) -> bool:
    """The staged copy at ``target`` was made from this listing and its files have its sizes."""
    try:
        recorded = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if recorded.get("files") != files:
        return False
    return all((target / rel).is_file() and (target / rel).stat().st_size == size for rel, (size, _) in files.items())


def stage(url: str) -> Staged:
    """The local copy of the dataset at ``url``, staged into this node's cache if it is
    absent or stale (see the module doc). Safe to call from many processes at once: one
    downloads, the others wait on the lock and then use its copy. Raises FileNotFoundError
    when the URL holds no files, OSError when a download fails (nothing partial is left)."""
    files = listing(url)
    target = local_path(url)
    total = sum(size for size, _ in files.values())
    if _matches(target, files):
        return Staged(target, False, len(files), total)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _matches(target, files):  # another trial staged it while this one waited
            return Staged(target, False, len(files), total)
        fs, root = filesystem(url)
        root = root.rstrip("/")
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for rel, (size, _) in files.items():
                local = tmp / rel
                local.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{root}/{rel}", str(local))
                if local.stat().st_size != size:
                    raise OSError(f"{redact(url)}/{rel}: downloaded {local.stat().st_size} bytes, the store "
                                  f"lists {size}")
            (tmp / MANIFEST).write_text(json.dumps({"url": redact(url), "files": files}))
            if target.exists():  # a stale copy: moved aside, then removed
                stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale.", dir=target.parent))
                os.replace(target, stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Staged(target, True, len(files), total)


def url_root_problem(url: str) -> str | None:
    """Why ``url`` cannot be a dataset root (one line), or None when it holds files."""
    try:
        listing(url)
    except FileNotFoundError:
        return f"{redact(url)} holds no files on the store (is the bucket and prefix right?)"
    except Exception as err:  # noqa: BLE001 - any failure to list is reported, not raised
        return f"{redact(url)} cannot be listed: {type(err).__name__}: {str(err)[:300]}"
    return None


__all__ = ["MANIFEST", "Staged", "cache_dir", "is_url", "listing", "local_path", "stage", "url_root_problem"]
