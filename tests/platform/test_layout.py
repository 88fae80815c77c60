"""The repository layout keeps the standard library's ``platform`` importable:
from the repository root, inside pytest and in Ray workers (STACK-NOTES.md)."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def test_platform_folder_has_no_init():
    assert (ROOT / "platform").is_dir()
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_in_pytest():
    import platform

    assert Path(platform.__file__).resolve().parent == STDLIB
    assert platform.system() == os.uname().sysname


def test_stdlib_platform_from_repository_root():
    out = subprocess.run([sys.executable, "-c", "import platform, torch; print(platform.system(), platform.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == os.uname().sysname
    assert Path(out[1]).resolve().parent == STDLIB


def test_package_halves_import_by_their_dragsaw_names():
    import dragsaw.platform.cli as cli
    import dragsaw.workloads.pdcr as pdcr

    assert Path(cli.__file__).resolve().parent == ROOT / "platform"
    assert Path(pdcr.__file__).resolve().parent == ROOT / "workloads" / "pdcr"


def test_workloads_import_no_orchestration_code():
    """workloads/ never imports Ray, Optuna or the store, nor the platform (the seam runs one way).
    Checked on the source (MONAI itself imports optuna when it is installed)."""
    import ast

    banned = {"ray", "optuna", "s3fs", "fsspec", "pyarrow", "duckdb"}
    offenders = []
    for path in (ROOT / "workloads").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in banned or name.startswith("dragsaw.platform"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []
    code = ("import sys, dragsaw.workloads.recipe, dragsaw.workloads.pictures, dragsaw.workloads.data.isic, "
            "dragsaw.workloads.data.msd, dragsaw.workloads.demo; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray' or m.startswith('dragsaw.platform')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_console_entry_point_runs_the_demo():
    exe = Path(sys.executable).with_name("dragsaw")
    out = subprocess.run([str(exe), "demo", "--steps", "2", "--size", "32"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "+PDCR+UAFR" in out.stdout and "detach restores the network: True" in out.stdout
    bad = subprocess.run([str(exe), "demo", "--steps", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--steps must be >= 1" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.integration
def test_stdlib_platform_in_ray_workers():
    ray = pytest.importorskip("ray")
    cwd = os.getcwd()
    os.chdir(ROOT)  # Ray puts the driver's working directory first on the workers' sys.path
    try:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)

        @ray.remote
        def probe():
            import platform

            import dragsaw.workloads.pdcr  # noqa: F401

            return platform.system(), platform.__file__

        system, path = ray.get(probe.remote())
    finally:
        ray.shutdown()
        os.chdir(cwd)
    assert system == os.uname().sysname
    assert Path(path).resolve().parent == STDLIB
