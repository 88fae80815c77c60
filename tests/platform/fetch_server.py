"""Test helpers for ``dragsaw datasets fetch``: a real HTTP server on 127.0.0.1 that serves a
folder with ``Range`` support and can drop a connection mid-file once, and archive writers
(zip, tar, and a stored RAR 4 file, so RAR needs no non-free tool to create or read)."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import struct
import tarfile
import threading
import time
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ArchiveServer:
    """Serve the files of ``folder`` at ``http://127.0.0.1:<free port>/<name>``.

    ``requests`` logs (name, Range header or None) per GET. ``drop_once[name] = n`` makes
    the next transfer of ``name`` stop after byte ``n`` of the file by closing the
    connection (the client is promised more by Content-Length); it happens once.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.requests: list[tuple[str, str | None]] = []
        self.drop_once: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                path = server.folder / name
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if rng:
                    match = re.fullmatch(r"bytes=(\d+)-", rng)
                    assert match, rng
                    start = int(match[1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                stop = server.drop_once.pop(name, None)
                if stop is not None and start < stop < len(data):
                    self.wfile.write(data[start:stop])
                    self.wfile.flush()
                    time.sleep(0.05)
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ArchiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def gets(self, name: str) -> list[str | None]:
        """The Range headers of the requests for ``name``, in order (None: no Range)."""
        return [rng for n, rng in self.requests if n == name]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _files(root: Path, top: str) -> list[Path]:
    return sorted(p for p in (root / top).rglob("*") if p.is_file())


def zip_folders(root: Path, tops: list[str], dest: Path) -> Path:
    """A zip of the folders ``root/<top>`` (paths inside start with ``<top>/``)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for top in tops:
            for path in _files(root, top):
                zf.write(path, path.relative_to(root).as_posix())
    return dest


def tar_folder(root: Path, top: str, dest: Path) -> Path:
    """An uncompressed tar of ``root/<top>``, as the MSD tars are."""
    with tarfile.open(dest, "w") as tf:
        tf.add(root / top, arcname=top)
    return dest


def rar_stored(root: Path, top: str, dest: Path) -> Path:
    """A RAR 4 archive of ``root/<top>`` with every member stored (method 0x30), written
    byte by byte from the format's specification: ``rarfile`` reads stored members itself."""

    def block(head_type: int, flags: int, body: bytes) -> bytes:
        header = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header

    out = io.BytesIO()
    out.write(b"Rar!\x1a\x07\x00")
    out.write(block(0x73, 0, struct.pack("<HI", 0, 0)))
    dos_time = (46 << 25) | (1 << 21) | (1 << 16)  # 2026-01-01 00:00
    for path in sorted((root / top).rglob("*")):
        name = path.relative_to(root).as_posix().encode()
        if path.is_dir():
            body = struct.pack("<IIBIIBBHI", 0, 0, 3, 0, dos_time, 20, 0x30, len(name), 0o40755) + name
            out.write(block(0x74, 0x8000 | 0xE0, body))
            continue
        data = path.read_bytes()
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), dos_time, 20, 0x30,
                           len(name), 0o100644) + name
        out.write(block(0x74, 0x8000, body) + data)
    out.write(b"\xc4\x3d\x7b\x00\x40\x07\x00")
    dest.write_bytes(out.getvalue())
    return dest
