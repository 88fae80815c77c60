"""Running a command the way a user without write access would: as root (CI), the
capabilities that bypass file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) are
dropped with ``setpriv``, so a folder's mode bits hold; as any other user, unchanged."""

from __future__ import annotations

import os
import shutil

import pytest


def unprivileged(argv: list[str]) -> list[str]:
    """``argv`` prefixed so that it runs without permission-bypassing capabilities."""
    if os.name != "posix":
        pytest.skip("POSIX permissions only")
    if os.geteuid() != 0:
        return list(argv)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): cannot drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", caps, "--inh-caps", caps, "--", *argv]


def read_only(path) -> None:
    """Remove every write bit under ``path`` (files and folders)."""
    for folder, dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(folder, name)
            os.chmod(p, os.stat(p).st_mode & 0o555)
        os.chmod(folder, os.stat(folder).st_mode & 0o555)


def writable(path) -> None:
    """Give the owner write access back (so that pytest can remove ``path``)."""
    for folder, dirs, files in os.walk(path):
        os.chmod(folder, os.stat(folder).st_mode | 0o700)
        for name in files:
            p = os.path.join(folder, name)
            os.chmod(p, os.stat(p).st_mode | 0o200)
