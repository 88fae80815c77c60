"""Downloading one file over HTTP(S): a progress bar, resume with HTTP ``Range`` after an
interruption (in this run, by retrying, or in a later run, from the ``.part`` file left
behind), and verification before the file gets its final name.

Nothing unverified ever carries the final name: bytes go to ``<name>.part`` and are
renamed once the transfer is complete and the digest matches. A digest mismatch deletes
the ``.part`` file and raises :class:`ChecksumError` naming the file and both digests.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20  # bytes read per step
USER_AGENT = "dragsaw-datasets-fetch"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(Exception):
    """A file could not be obtained (HTTP error, too many interruptions, wrong size)."""


class ChecksumError(DownloadError):
    """A file's digest differs from the expected one; the file has been deleted."""


@dataclass(frozen=True)
class Digests:
    """What was measured of a complete file: size in bytes, SHA-256 and MD5 (hex)."""

    size: int
    sha256: str
    md5: str

    def get(self, algorithm: str) -> str:
        return {"sha256": self.sha256, "md5": self.md5}[algorithm]


def verify(path: Path, digests: Digests, expected: tuple[str, str] | None, source: str = "",
           name: str = "", delete: bool = True) -> None:
    """Raise :class:`ChecksumError` if ``expected`` = (algorithm, hex) is given and does not
    match ``digests``; the error names the file (``name``, default ``path``'s name), both
    digests and ``source`` (who published the expected one). ``delete``: remove ``path`` first."""
    if expected is None:
        return
    algorithm, want = expected
    got = digests.get(algorithm)
    if got != want.lower():
        if delete:
            path.unlink(missing_ok=True)
        raise ChecksumError(f"checksum mismatch for {name or path.name}: expected {algorithm} {want}"
                            + (f" ({source})" if source else "") + f", got {algorithm} {got}"
                            + (f"; the download was deleted ({path})" if delete else f" ({path})"))


def hash_file(path: Path) -> Digests:
    """Size, SHA-256 and MD5 of a file on disk (read once, in chunks)."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
            md5.update(block)
            size += len(block)
    return Digests(size, sha.hexdigest(), md5.hexdigest())


def _progress(name: str, total: int | None, initial: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                disable=not show, file=sys.stderr, dynamic_ncols=True, leave=True)


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def download(url: str, dest: Path, *, expected: tuple[str, str] | None = None, expected_source: str = "",
             progress: bool = True, retries: int = 5, retry_wait: float = 2.0, timeout: float = 60.0) -> Digests:
    """Download ``url`` to ``dest`` and return its :class:`Digests`.

    Bytes are appended to ``dest.name + ".part"``; an existing ``.part`` (an earlier run
    that was interrupted) is resumed with ``Range: bytes=<its size>-``. A dropped
    connection or a short body is retried up to ``retries`` times, each time resuming
    where the file ends (waits ``retry_wait * 2**k`` seconds). A server that ignores
    ``Range`` (status 200) restarts the file from byte 0. ``expected`` = (``"sha256"`` or
    ``"md5"``, hex) is checked before ``.part`` is renamed to ``dest``; on a mismatch
    ``.part`` is deleted and :class:`ChecksumError` raised. HTTP 4xx errors fail at once.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    offset = 0
    if part.exists():  # resume: the hashes must cover the bytes already there
        with open(part, "rb") as f:
            while block := f.read(CHUNK):
                sha.update(block)
                md5.update(block)
                offset += len(block)
    failures: list[str] = []
    total: int | None = None
    while True:
        try:
            with _open(url, offset, timeout) as resp:
                status = resp.status
                if offset and status == 200:  # Range ignored: start again
                    offset, sha, md5 = 0, hashlib.sha256(), hashlib.md5(usedforsecurity=False)
                    part.write_bytes(b"")
                length = resp.headers.get("Content-Length")
                if status == 206:
                    match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", ""))
                    if not match or int(match[1]) != offset:
                        raise DownloadError(f"{url}: asked for bytes from {offset}, but the server answered "
                                            f"Content-Range {resp.headers.get('Content-Range')!r}")
                    total = int(match[3]) if match[3] != "*" else None
                else:
                    total = int(length) if length is not None else None
                with open(part, "ab") as out, _progress(dest.name, total, offset, progress) as bar:
                    while block := resp.read(CHUNK):
                        out.write(block)
                        sha.update(block)
                        md5.update(block)
                        offset += len(block)
                        bar.update(len(block))
            if total is not None and offset != total:
                raise http.client.IncompleteRead(b"", total - offset)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset and total in (None, offset):  # the .part was already complete
                break
            if exc.code == 416:  # the .part is longer than the file: start again
                failures.append(f"HTTP 416 for a range from byte {offset}: restarted")
                part.unlink(missing_ok=True)
                offset, sha, md5 = 0, hashlib.sha256(), hashlib.md5(usedforsecurity=False)
            elif exc.code < 500:
                raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
            else:
                failures.append(f"HTTP {exc.code} {exc.reason}")
        except (http.client.HTTPException, urllib.error.URLError, OSError) as exc:
            failures.append(f"{type(exc).__name__}: {exc} (after {offset} bytes)")
        if len(failures) > retries:
            raise DownloadError(f"cannot download {url}: {len(failures)} attempts failed ({'; '.join(failures)}); "
                                f"the {offset} bytes received are kept in {part}: run the fetch again to resume")
        print(f"{dest.name}: transfer interrupted ({failures[-1]}); resuming from byte {offset}", file=sys.stderr)
        time.sleep(retry_wait * 2 ** (len(failures) - 1))

    digests = Digests(offset, sha.hexdigest(), md5.hexdigest())
    verify(part, digests, expected, expected_source, name=dest.name)
    os.replace(part, dest)
    return digests


__all__ = ["ChecksumError", "DownloadError", "Digests", "download", "hash_file", "verify"]
