"""The repository layout keeps the standard library's ``platform`` importable:
from the repository root, inside pytest and in Ray workers (STACK-NOTES.md)."""

import os
import re
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

    assert Path(cli.__file__).resolve().parent == ROOT / "platform" / "cli"
    assert Path(pdcr.__file__).resolve().parent == ROOT / "workloads" / "pdcr"


def test_dragsaw_folder_spells_every_import_path():
    """Static tools (IDEs, jedi, pyright) run no import hook: ``dragsaw/platform`` and
    ``dragsaw/workloads`` must be folders on disk that lead to the top-level halves."""
    assert (ROOT / "dragsaw" / "__init__.py").is_file()
    for half in ("platform", "workloads"):
        link = ROOT / "dragsaw" / half
        assert link.is_symlink() and link.resolve() == ROOT / half


def test_no_relative_imports():
    """Relative imports inside a top-level folder named ``platform`` resolve, for static
    tools, against the standard library's ``platform``: the code spells imports in full."""
    import ast

    offenders = []
    for folder in ("platform", "workloads", "dragsaw"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_go_to_definition_resolves_every_project_import():
    """jedi (what IDEs use) follows every ``dragsaw.*`` import in platform/ and workloads/
    to the file and name it means, with nothing installed in its view but the repository."""
    jedi = pytest.importorskip("jedi")
    import ast

    project = jedi.Project(str(ROOT), added_sys_path=[], smart_sys_path=False)
    unresolved, checked = [], 0
    for folder in ("platform", "workloads"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text()
            lines = source.splitlines()
            script = jedi.Script(source, path=str(path), project=project)
            for node in ast.walk(ast.parse(source)):
                if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dragsaw")):
                    continue
                for alias in node.names:
                    line_no = next(i for i in range(node.lineno - 1, len(lines))
                                   if re.search(rf"\b{alias.name}\b", lines[i]) and i >= node.lineno - 1)
                    column = re.search(rf"\b{alias.name}\b", lines[line_no]).start()
                    names = script.goto(line_no + 1, column, follow_imports=True)
                    checked += 1
                    if not names or names[0].module_path is None:
                        unresolved.append(f"{path.relative_to(ROOT)}:{line_no + 1} {node.module}.{alias.name}")
    assert checked > 250
    assert unresolved == []


@pytest.mark.slow
def test_wheel_holds_both_halves(tmp_path):
    """A built wheel carries the linked folders' files under ``dragsaw/``, and no ``platform``
    or ``workloads`` at its top level."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=600)
    wheel = next(tmp_path.glob("dragsaw-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dragsaw/__init__.py" in names
    assert "dragsaw/platform/cli/__init__.py" in names and "dragsaw/platform/experiment/schema.py" in names
    assert "dragsaw/workloads/pdcr/__init__.py" in names
    assert not [n for n in names if n.split("/")[0] in ("platform", "workloads", "tests")]
    sources = {p.relative_to(ROOT).as_posix() for f in ("platform", "workloads") for p in (ROOT / f).rglob("*.py")}
    assert sources <= {n.removeprefix("dragsaw/") for n in names}


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


def test_launch_package_only_exports():
    """``dragsaw.platform.launch`` re-exports what the commands call; the logic lives in its modules."""
    import ast

    body = ast.parse((ROOT / "platform" / "launch" / "__init__.py").read_text()).body
    kinds = {type(node).__name__ for node in body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}, kinds
    import dragsaw.platform.launch as launch

    assert sorted(launch.__all__) == ["LaunchError", "launch", "resume", "validate"]
    import dragsaw.platform.launch.status  # noqa: F401  (rebinds the package's ``status``: never exported)
    assert all(getattr(launch, name).__module__ != "dragsaw.platform.launch" for name in launch.__all__)
