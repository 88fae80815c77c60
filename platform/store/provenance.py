"""Where a result came from: code version, package versions, hardware."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("dragsaw", "torch", "monai", "ray", "optuna", "numpy", "pyarrow", "albumentations")


@functools.cache
def git_commit() -> str:
    """The commit of the dragsaw checkout (with ``+dirty`` when it has local changes); in an
    installed image without ``.git``, ``$DRAGSAW_GIT_COMMIT`` (set at build time); else ``unknown``."""
    if os.environ.get("DRAGSAW_GIT_COMMIT"):
        return os.environ["DRAGSAW_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def hardware() -> str:
    """One line: CPU count and model, GPU name when a trial has one."""
    line = f"{platform.machine()} {os.cpu_count()} cpus"
    try:
        import torch

        if torch.cuda.is_available():
            line += f", {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - provenance must never fail a trial
        pass
    return line
