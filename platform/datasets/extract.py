"""Unpacking a verified archive into a folder: zip, tar (plain, gzip, bzip2, xz) and RAR.

The kind is read from the file's first bytes, not its name (users rename downloads).
Members with absolute paths or ``..`` are refused (nothing outside the folder is ever
written); ``__MACOSX/`` folders of zips made on a Mac are skipped. Everything else is
unpacked as it is: the loaders skip the macOS ``._`` files of the MSD tars themselves.

RAR (PH2 ships only as ``PH2Dataset.rar``) is read with the ``rarfile`` package, which
unpacks stored members itself and needs one of the system tools ``unrar``, ``unar``,
``7z`` or ``bsdtar`` for compressed ones (Debian/Ubuntu: ``apt-get install unar`` or
``libarchive-tools``).
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

SKIPPED_TOPS = frozenset({"__MACOSX"})
RAR_TOOLS = "unrar, unar, 7z or bsdtar (Debian/Ubuntu: apt-get install unar, or libarchive-tools)"


class ExtractError(Exception):
    """An archive cannot be unpacked (unknown kind, unsafe member, missing tool, damage)."""


def archive_kind(path: Path) -> str:
    """``"zip"``, ``"tar"`` or ``"rar"``, from the file's magic bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")):
        return "rar"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    raise ExtractError(f"{path}: not a zip, tar or RAR archive (first bytes {head[:8]!r})")


def _member(name: str, archive: Path) -> PurePosixPath | None:
    """The member's safe relative path, or None to skip it; unsafe names raise."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ExtractError(f"{archive}: refusing member {name!r}: it would be written outside the target folder")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts or parts[0] in SKIPPED_TOPS:
        return None
    return PurePosixPath(*parts)


def _copy_members(infos, opener, archive: Path, into: Path) -> set[str]:
    """Copy a zip's or RAR's members (``infos``: objects with ``filename`` and ``is_dir()``;
    ``opener(info)``: a binary stream) under ``into``; returns their top-level names."""
    tops = set()
    for info in infos:
        rel = _member(info.filename, archive)
        if rel is None:
            continue
        tops.add(rel.parts[0])
        target = into.joinpath(*rel.parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with opener(info) as src, open(target, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    return tops


def _zip(archive: Path, into: Path) -> set[str]:
    with zipfile.ZipFile(archive) as zf:
        return _copy_members(zf.infolist(), zf.open, archive, into)


def _tar(archive: Path, into: Path) -> set[str]:
    tops = set()
    with tarfile.open(archive, "r:*") as tf:
        members = []
        for member in tf:
            rel = _member(member.name, archive)
            if rel is None:
                continue
            if not (member.isfile() or member.isdir()):
                continue  # links and devices: none in the official archives, never followed
            member.name = rel.as_posix()
            tops.add(rel.parts[0])
            members.append(member)
        if hasattr(tarfile, "data_filter"):
            tf.extractall(into, members=members, filter="data")
        else:  # Python < 3.11.4: members were checked above
            tf.extractall(into, members=members)
    return tops


def _rar(archive: Path, into: Path) -> set[str]:
    try:
        import rarfile
    except ImportError:
        raise ExtractError(f"{archive} is a RAR archive: install the `rarfile` package "
                           f"(pip install rarfile) and one of {RAR_TOOLS}") from None
    try:
        with rarfile.RarFile(archive) as rf:
            tops = _copy_members(rf.infolist(), rf.open, archive, into)
    except rarfile.RarCannotExec:
        raise ExtractError(f"{archive}: its compressed RAR members need one of the system tools {RAR_TOOLS}; "
                           "none was found on PATH") from None
    except rarfile.Error as exc:
        raise ExtractError(f"{archive}: cannot read the RAR archive: {exc}") from None
    return tops


def extract(archive: Path, into: Path) -> list[str]:
    """Unpack ``archive`` into the folder ``into`` (created if needed); return the sorted
    top-level names it placed there. Raises :class:`ExtractError` naming the archive."""
    kind = archive_kind(archive)
    into.mkdir(parents=True, exist_ok=True)
    try:
        tops = {"zip": _zip, "tar": _tar, "rar": _rar}[kind](archive, into)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ExtractError(f"{archive}: cannot unpack the {kind} archive: {type(exc).__name__}: {exc}") from None
    if not tops:
        raise ExtractError(f"{archive}: the {kind} archive holds no files")
    return sorted(t for t in tops if os.path.lexists(into / t))


__all__ = ["ExtractError", "RAR_TOOLS", "archive_kind", "extract"]
