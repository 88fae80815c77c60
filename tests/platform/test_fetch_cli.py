"""``dragsaw datasets list | fetch | check --read`` through the command line: what a user
sees, exit statuses (2: bad input, before any work; 1: a failed fetch or unreadable
files), against a real HTTP server on 127.0.0.1 (no request leaves the host)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dragsaw.platform.cli import main
from dragsaw.platform.datasets.catalog import CATALOG_ENV, DATASETS
from dragsaw.workloads.data.synthetic import write_isic2016, write_mc
from dragsaw.workloads.data.synthetic3d import write_msd_brain

from .fetch_server import ArchiveServer, sha256, zip_folders

MC = "NLM-MontgomeryCXRSet.zip"


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGSAW_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")


@pytest.fixture
def served(tmp_path) -> Path:
    write_mc(tmp_path / "layout", n=6, size=(48, 48))
    folder = tmp_path / "served"
    folder.mkdir()
    zip_folders(tmp_path / "layout", ["MontgomerySet"], folder / MC)
    return folder


def _dragsaw(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _override(tmp_path, monkeypatch, files: dict) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"files": files}))
    monkeypatch.setenv(CATALOG_ENV, str(path))


def test_list_shows_source_size_licence_checksums_and_status(capsys):
    code, out, _ = _dragsaw(capsys, "datasets", "list")
    assert code == 0
    for name, dataset in DATASETS.items():
        assert f"\n{name:<14} {dataset.title}" in f"\n{out}"
        assert dataset.homepage in out and dataset.licence in out and dataset.size in out
    assert "Task01_BrainTumour.tar: https://msd-for-monai.s3-us-west-2.amazonaws.com/Task01_BrainTumour.tar; " \
           "checksum: md5 published by MONAI" in out
    assert "ISBI2016_ISIC_Part1_Training_Data.zip: https://isic-challenge-data.s3.amazonaws.com/2016/" in out
    assert "none published: sha256 and size recorded on first fetch (trust on first use)" in out
    assert "PH2Dataset.rar: after registration" in out and "registration, then --from" in out
    assert out.count("status:    not fetched (data/") == len(DATASETS)


def test_fetch_then_list_says_fetched_and_a_bad_checksum_exits_1(served, tmp_path, monkeypatch, capsys):
    with ArchiveServer(served) as server:
        _override(tmp_path, monkeypatch, {MC: {"url": server.url + MC, "sha256": sha256(served / MC)}})
        code, out, err = _dragsaw(capsys, "datasets", "fetch", "mc", "--no-progress")
        assert code == 0, err
        assert "found 6 of the official 138 X-ray images" in out
        assert "status:    fetched (data/MC; archives 0.00 GB)" in _dragsaw(capsys, "datasets", "list")[1]

        _override(tmp_path, monkeypatch, {MC: {"url": server.url + MC, "sha256": "0" * 64}})
        code, out, err = _dragsaw(capsys, "datasets", "fetch", "mc", "--to", tmp_path / "other", "--no-progress")
    assert code == 1 and f"checksum mismatch for {MC}: expected sha256 {'0' * 64}" in err
    assert f"got sha256 {sha256(served / MC)}" in err and not (tmp_path / "other").exists()


@pytest.mark.parametrize("args, message", [
    (["digestpath"], "digestpath2019.grand-challenge.org"),
    (["isic2016_ph2"], "PH2Dataset.rar"),
    (["isic2061"], "unknown dataset 'isic2061'"),
    (["mc", "isic2016", "--to", "x"], "--to names one dataset's root"),
    (["digestpath", "--from", "nowhere.zip"], "--from nowhere.zip: no such file"),
])
def test_fetch_input_errors_exit_2_before_any_work(args, message, capsys):
    code, out, err = _dragsaw(capsys, "datasets", "fetch", *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not Path("data").exists() and not Path("x").exists()


def test_a_malformed_catalog_override_exits_2(tmp_path, monkeypatch, capsys):
    _override(tmp_path, monkeypatch, {"nosuch.zip": {"url": "http://127.0.0.1:9/"}})
    code, _, err = _dragsaw(capsys, "datasets", "fetch", "mc")
    assert code == 2 and "unknown archive names ['nosuch.zip']" in err


def test_check_read_finds_broken_2d_files(tmp_path, capsys):
    root = write_isic2016(tmp_path / "isic", n_train=3, n_test=2, size=(40, 48))
    code, out, _ = _dragsaw(capsys, "datasets", "check", "isic2016", root, "--read")
    assert code == 0 and "read 5 of 5 cases without error" in out
    broken = sorted((root / "ISBI2016_ISIC_Part1_Training_Data").glob("*.jpg"))[1]
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated download
    code, out, _ = _dragsaw(capsys, "datasets", "check", "isic2016", root)
    assert code == 0 and "unreadable" not in out  # listing alone cannot see it
    code, out, err = _dragsaw(capsys, "datasets", "check", "isic2016", root, "--read")
    assert code == 1 and "read 4 of 5 cases without error" in out and f"unreadable: cannot read image {broken}" in out
    assert "1 case(s) could not be read" in err


def test_check_read_finds_broken_nifti_files(tmp_path, capsys):
    task = write_msd_brain(tmp_path / "msd", n=5, shape=(8, 8, 8), n_test=1)
    code, out, _ = _dragsaw(capsys, "datasets", "check", "msd_brain", tmp_path / "msd", "--read")
    assert code == 0 and "read 6 of 6 cases without error (5 training, 1 imagesTs)" in out
    label = task / "labelsTr" / "BRATS_002.nii.gz"
    label.write_bytes(label.read_bytes()[:-40])  # truncated gzip stream
    code, out, _ = _dragsaw(capsys, "datasets", "check", "msd_brain", tmp_path / "msd", "--read")
    assert code == 1 and "read 5 of 6 cases without error" in out and f"{label}" in out


def test_check_finds_msd_one_level_down(tmp_path, capsys):
    write_msd_brain(tmp_path / "dl" / "wrapper", n=5, shape=(8, 8, 8), n_test=0)  # dl/wrapper/Task01_BrainTumour
    code, out, _ = _dragsaw(capsys, "datasets", "check", "msd_brain", tmp_path / "dl")
    assert code == 0 and "training cases listed and found: 5" in out
