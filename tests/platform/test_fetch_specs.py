"""The paper specs and ``dragsaw datasets fetch`` agree: each spec's dataset roots are the
folders fetch places the datasets in, its opening command fetches every dataset it uses,
and ``dragsaw datasets fetch isic2016 && dragsaw run configs/experiments/paper/table4.yaml``
is the whole recipe (checked here with a dry run, on a look-alike served from 127.0.0.1)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dragsaw.platform.cli import main
from dragsaw.platform.datasets.catalog import CATALOG_ENV, DATASETS
from dragsaw.platform.experiment.checks import check_paths
from dragsaw.platform.experiment.loading import load_spec
from dragsaw.workloads.data.synthetic import write_isic2016

from .fetch_server import ArchiveServer, sha256, zip_folders

ROOT = Path(__file__).resolve().parents[2]
PAPER = sorted((ROOT / "configs" / "experiments" / "paper").glob("*.yaml"))


def _opening(path: Path) -> str:
    lines = path.read_text().splitlines()
    return " ".join(line.lstrip("# ").rstrip("\\ ") for line in lines[:lines.index("#")])


@pytest.mark.parametrize("path", PAPER, ids=[p.name for p in PAPER])
def test_roots_are_the_fetched_folders_and_the_opening_fetches_them(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(path)
    opening = _opening(path)
    fetched = set()
    for command in re.findall(r"dragsaw datasets fetch ([^&]*)", opening):
        words = command.split()
        fetched.update(w for w in words if not w.startswith("--") and not w.endswith((".rar", ".zip", ".tar")))
        if any(DATASETS[w].needs_registration for w in words if w in DATASETS):
            assert "--from" in words, command
    for dataset in spec.datasets:
        assert dataset.name in fetched, f"{path.name}: the opening command does not fetch {dataset.name}"
        assert Path(dataset.root) == DATASETS[dataset.name].default_root(), (dataset.name, dataset.root)
    assert opening.index("dragsaw datasets fetch") < opening.index("dragsaw run")


def test_fetch_then_run_table4_is_the_whole_recipe(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DRAGSAW_CACHE", str(tmp_path / "cache"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    write_isic2016(tmp_path / "layout", n_train=4, n_test=2, size=(40, 48))
    served = tmp_path / "served"
    served.mkdir()
    names = [a.filename for a in DATASETS["isic2016"].archives]
    for name in names:
        zip_folders(tmp_path / "layout", [name[:-4]], served / name)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    table4 = ROOT / "configs" / "experiments" / "paper" / "table4.yaml"
    assert check_paths(load_spec(table4))  # before: the root is missing
    with ArchiveServer(served) as server:
        (tmp_path / "catalog.json").write_text(json.dumps({"files": {
            n: {"url": server.url + n, "sha256": sha256(served / n)} for n in names}}))
        monkeypatch.setenv(CATALOG_ENV, str(tmp_path / "catalog.json"))
        assert main(["datasets", "fetch", "isic2016", "--no-progress"]) == 0
    assert check_paths(load_spec(table4)) == []
    capsys.readouterr()
    assert main(["run", str(table4), "--dry-run", "--store", str(tmp_path / "results")]) == 0
    assert ": 45 trials" in capsys.readouterr().out
