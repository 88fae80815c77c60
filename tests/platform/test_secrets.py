"""Credentials never travel in anything Ray logs or stores: a secret planted in the driver's
environment (AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN) appears nowhere under the Ray
session directory, the store, Tune's bookkeeping, a report or the printed output, with an
S3 store (moto_server, which accepts any keys) and with a local one."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dragsaw.platform.store import ResultStore

from .test_cli import TINY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRAGSAW = str(Path(sys.executable).with_name("dragsaw"))
SECRET = "planted-Secret-4f1c9a7e2b"
TOKEN = "planted-Session-Token-9d3e61"


def files_holding(root: Path, needles: tuple[str, ...]) -> list[str]:
    """Every file under ``root`` whose bytes contain one of ``needles``."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(n.encode() in data for n in needles):
                hits.append(str(path))
    return hits


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_a_planted_secret_is_written_nowhere(tmp_path, backend, request):
    store_url = request.getfixturevalue("s3_store_url") if backend == "s3" else str(tmp_path / "results")
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths are length-limited
    try:
        spec = tmp_path / "tiny.yaml"
        spec.write_text(TINY.format(store=store_url, root=tmp_path / "isic", layer="encoder.2"))
        (tmp_path / "tmp").mkdir()  # the driver's temp files (Tune's bookkeeping of an s3 run) are searched too
        env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "RAY_TMPDIR": str(ray_tmp), "TMPDIR": str(tmp_path / "tmp"),
               "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "planted-key-id"),
               "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN}
        run = subprocess.run([DRAGSAW, "run", str(spec)], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        report = subprocess.run([DRAGSAW, "report", "--store", store_url, "--experiment", "tiny",
                                 "--out", str(tmp_path / "report"), "--pictures", "none"],
                                capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
        assert len(ResultStore(store_url).completed("tiny")) == 2  # the trials did reach the store

        sessions = list(ray_tmp.rglob("runtime_env_agent.log"))
        assert sessions, f"no Ray session under {ray_tmp}"  # the place the secret used to leak
        needles = (SECRET, TOKEN)
        assert files_holding(ray_tmp, needles) == []
        assert files_holding(tmp_path, needles) == []  # store (local), Tune's files, data, report
        for text in (run.stdout, run.stderr, report.stdout, report.stderr):
            assert not any(n in text for n in needles)
        if backend == "s3":
            from dragsaw.platform.store import filesystem

            fs, root = filesystem(store_url)
            objects = [p for p in fs.find(root)]
            assert objects and not [p for p in objects if any(n.encode() in fs.cat_file(p) for n in needles)]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
