"""``dragsaw datasets fetch`` against a real HTTP server on 127.0.0.1 (with Range support)
serving archives built from the synthetic writers' official layouts: full fetch, resume
after a dropped connection (in the same run and from a later run), a corrupted byte,
registration-only datasets from ``--from`` (zip and RAR), trust on first use, and a second
fetch that does nothing. Proxies point at a closed port so that no request leaves the host."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dragsaw.platform.datasets.catalog import CATALOG_ENV, DATASETS
from dragsaw.platform.datasets.fetch import (
    MANIFEST,
    FetchError,
    FetchInputError,
    plan,
    recorded_digest,
    run,
)
from dragsaw.workloads.data import load_dataset
from dragsaw.workloads.data.synthetic import write_isic2016, write_mc
from dragsaw.workloads.data.synthetic3d import write_msd_brain

from .fetch_server import ArchiveServer, md5, rar_stored, sha256, tar_folder, zip_folders

ISIC16 = [a.filename for a in DATASETS["isic2016"].archives]


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """Own cache, working directory (default roots data/...) and proxies to nowhere."""
    monkeypatch.setenv("DRAGSAW_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


def _jpeg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=90)


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> Path:
    """The archives as their publishers ship them, built from the official layouts."""
    src, out = tmp_path_factory.mktemp("layouts"), tmp_path_factory.mktemp("archives")
    write_isic2016(src / "isic", n_train=4, n_test=2, size=(40, 48), seed=3)
    for name in ISIC16:
        zip_folders(src / "isic", [name[:-4]], out / name)
    write_mc(src / "mc", n=6, size=(48, 48))
    zip_folders(src / "mc", ["MontgomerySet"], out / "NLM-MontgomeryCXRSet.zip")
    write_msd_brain(src / "msd", n=5, shape=(8, 8, 8), n_test=1)
    tar_folder(src / "msd", "Task01_BrainTumour", out / "Task01_BrainTumour.tar")

    rng = np.random.default_rng(0)
    top = src / "dp" / "Colonoscopy_tissue_segment_dataset"
    for i in range(5):
        name = f"case {i} 2019-05-08 00_06_27-lv1"
        _jpeg(top / "tissue-train-pos-v1" / f"{name}.jpg", rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
        mask = np.zeros((32, 40), np.uint8)
        mask[8:20, 10:30] = 255
        _jpeg(top / "tissue-train-pos-v1" / f"{name}_mask.jpg", mask)
        _jpeg(top / "tissue-train-neg" / f"neg {i}.jpg", rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
    zip_folders(src / "dp", ["Colonoscopy_tissue_segment_dataset"], out / "Colonoscopy_tissue_segment_dataset.zip")

    images = src / "ph2" / "PH2Dataset" / "PH2 Dataset images"
    for cid in ("IMD002", "IMD003"):
        (images / cid / f"{cid}_Dermoscopic_Image").mkdir(parents=True)
        (images / cid / f"{cid}_lesion").mkdir()
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
            images / cid / f"{cid}_Dermoscopic_Image" / f"{cid}.bmp")
        mask = np.zeros((30, 40), np.uint8)
        mask[5:20, 5:25] = 255
        Image.fromarray(mask).save(images / cid / f"{cid}_lesion" / f"{cid}_lesion.bmp")
    (src / "ph2" / "PH2Dataset" / "PH2_dataset.txt").write_text("metadata")
    rar_stored(src / "ph2", "PH2Dataset", out / "PH2Dataset.rar")
    return out


def _catalog(tmp_path: Path, monkeypatch, server: ArchiveServer, names, digests: str = "sha256") -> Path:
    """Point the catalog's archives ``names`` at the test server, with their real digests."""
    files = {}
    for name in names:
        path = server.folder / name
        entry = {"url": server.url + name}
        if digests == "sha256":
            entry["sha256"] = sha256(path)
        elif digests == "md5":
            entry["md5"] = md5(path)
        elif digests == "none":
            entry["sha256"] = None
        files[name] = entry
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"files": files}))
    monkeypatch.setenv(CATALOG_ENV, str(path))
    return path


def _fetch(names, to=None, sources=(), progress=False, **kw) -> tuple[int, str]:
    lines: list[str] = []
    code = run(plan(names, to, sources), progress=progress, retry_wait=0, out=lines.append, **kw)
    return code, "\n".join(lines)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_full_fetch_places_the_official_layout_and_a_second_fetch_does_nothing(archives, tmp_path, monkeypatch):
    with ArchiveServer(archives) as server:
        _catalog(tmp_path, monkeypatch, server, ISIC16)
        code, out = _fetch(["isic2016"])
        root = Path("data/ISIC2016")
        assert code == 0, out
        assert sorted(p.name for p in root.iterdir()) == sorted([MANIFEST] + [n[:-4] for n in ISIC16])
        ds = load_dataset("isic2016", root)  # exactly what the loader reads
        assert len(ds.splits["train"]) == 4 and len(ds.splits["test"]) == 2
        assert "found 4 of the official 900 training images" in out and "official: 900 train / 379 test" in out
        assert f"sha256 {sha256(archives / ISIC16[0])} (sha256 matches, the catalog overrides" in out
        manifest = json.loads((root / MANIFEST).read_text())
        assert manifest["archives"][ISIC16[0]]["placed"] == [ISIC16[0][:-4]]
        assert manifest["archives"][ISIC16[0]]["from"] == server.url + ISIC16[0]
        assert not list((tmp_path / "cache" / "downloads").iterdir())  # archives deleted once placed
        assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left

        before, asked = _tree(root), len(server.requests)
        code, out = _fetch(["isic2016"])
        assert code == 0 and "already fetched" in out and "nothing to do" in out
        assert len(server.requests) == asked and _tree(root) == before


def test_a_dropped_connection_is_resumed_with_range(archives, tmp_path, monkeypatch, capsys):
    name = "NLM-MontgomeryCXRSet.zip"
    size = (archives / name).stat().st_size
    with ArchiveServer(archives) as server:
        _catalog(tmp_path, monkeypatch, server, [name])
        server.drop_once[name] = size // 2
        code, out = _fetch(["mc"], progress=True)
        assert code == 0, out
        assert server.gets(name) == [None, f"bytes={size // 2}-"]  # the second request resumes, not restarts
        err = capsys.readouterr().err
        assert f"{name}: transfer interrupted" in err and f"resuming from byte {size // 2}" in err
        assert f"{name}: 100%" in err  # the progress bar, finished
        assert (Path("data/MC") / "MontgomerySet" / "CXR_png").is_dir()
        assert "found 6 of the official 138 X-ray images" in out


def test_a_part_file_from_an_interrupted_run_is_resumed(archives, tmp_path, monkeypatch):
    name = "NLM-MontgomeryCXRSet.zip"
    data = (archives / name).read_bytes()
    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / f"{name}.part").write_bytes(data[:1000])  # what a killed run leaves
    with ArchiveServer(archives) as server:
        _catalog(tmp_path, monkeypatch, server, [name])
        code, out = _fetch(["mc"])
        assert code == 0, out
        assert server.gets(name) == ["bytes=1000-"]
        assert not list(downloads.iterdir())


def test_a_corrupted_byte_is_a_checksum_error_that_leaves_nothing(archives, tmp_path, monkeypatch):
    served = tmp_path / "served"
    shutil.copytree(archives, served)
    name = ISIC16[1]
    good = sha256(served / name)
    data = bytearray((served / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (served / name).write_bytes(bytes(data))
    with ArchiveServer(served) as server:
        _catalog(tmp_path, monkeypatch, server, ISIC16)
        (tmp_path / "catalog.json").write_text(json.dumps({"files": {
            n: {"url": server.url + n, "sha256": good if n == name else sha256(served / n)} for n in ISIC16}}))
        with pytest.raises(FetchError) as err:
            _fetch(["isic2016"])
    message = str(err.value)
    assert name in message and f"expected sha256 {good}" in message and f"got sha256 {sha256(served / name)}" in message
    assert not Path("data").exists()  # nothing in the target, not even its parent
    downloads = tmp_path / "cache" / "downloads"
    assert sorted(p.name for p in downloads.iterdir()) == [ISIC16[0]]  # the one verified before it, kept for next time


def test_registration_only_dataset_from_the_users_archive(archives, tmp_path):
    with pytest.raises(FetchInputError, match="digestpath2019.grand-challenge.org") as err:
        plan(["digestpath"])
    assert "--from" in str(err.value)
    user_file = tmp_path / "downloaded as dp.zip"
    shutil.copy(archives / "Colonoscopy_tissue_segment_dataset.zip", user_file)
    code, out = _fetch(["digestpath"], sources=[user_file])
    root = Path("data/DigestPath")
    assert code == 0, out
    assert (root / "Colonoscopy_tissue_segment_dataset" / "tissue-train-pos-v1").is_dir()
    assert "found one level down, inside Colonoscopy_tissue_segment_dataset/" in out
    assert "found 5 of the official 250 images with masks" in out
    assert user_file.exists()  # the user's file is never deleted
    record = recorded_digest("Colonoscopy_tissue_segment_dataset.zip")
    assert record and record["sha256"] == sha256(user_file) and "recorded on this first fetch" in out
    assert len(load_dataset("digestpath", root, include_negatives=True)) == 10
    before = _tree(root)
    code, out = _fetch(["digestpath"], sources=[user_file])  # again, same command: nothing to do
    assert code == 0 and "already fetched" in out and _tree(root) == before


def test_ph2_rar_is_placed_beside_the_isic_training_folders(archives, tmp_path, monkeypatch):
    pytest.importorskip("rarfile")
    with ArchiveServer(archives) as server:
        _catalog(tmp_path, monkeypatch, server, ISIC16)
        code, out = _fetch(["isic2016_ph2"], sources=[archives / "PH2Dataset.rar"])
        assert code == 0, out
        assert sorted(n for n, _ in server.requests) == sorted(ISIC16[:2])  # training archives only
        ds = load_dataset("isic2016_ph2", "data/ISIC2016")
        assert sorted(ds.splits["test"]) == ["IMD002", "IMD003"] and len(ds.splits["train"]) == 4
        assert "found 2 of the official 200 PH2 images" in out
        code, out = _fetch(["isic2016"])  # the training archives are already there: only the test ones come
        assert code == 0 and sorted(n for n, _ in server.requests) == sorted(ISIC16)
    assert "isic2016_ph2: already fetched" in _fetch(["isic2016_ph2"])[1]


def test_first_fetch_records_the_digest_and_later_fetches_must_match_it(archives, tmp_path, monkeypatch):
    name = "NLM-MontgomeryCXRSet.zip"
    served = tmp_path / "served"
    shutil.copytree(archives, served)
    with ArchiveServer(served) as server:
        _catalog(tmp_path, monkeypatch, server, [name], digests="none")
        code, out = _fetch(["mc"])
        assert code == 0 and "no published checksum" in out and "recorded on this first fetch" in out
        assert recorded_digest(name)["sha256"] == sha256(archives / name)
        data = bytearray((served / name).read_bytes())
        data[100] ^= 1
        (served / name).write_bytes(bytes(data))
        with pytest.raises(FetchError, match=f"expected sha256 {sha256(archives / name)} \\(recorded on its first"):
            _fetch(["mc"], to=tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_msd_tar_with_published_md5_and_official_counts(archives, tmp_path, monkeypatch):
    with ArchiveServer(archives) as server:
        _catalog(tmp_path, monkeypatch, server, ["Task01_BrainTumour.tar"], digests="md5")
        code, out = _fetch(["msd_brain"])
    assert code == 0, out
    assert "md5 matches, the catalog overrides" in out
    assert "labelled cases: 5 of the official 484 (DIFFERS" in out and "test cases: 1 of the official 266" in out
    assert (Path("data/MSD") / "Task01_BrainTumour" / "imagesTr" / "._BRATS_001.nii.gz").exists()  # as shipped
    assert load_dataset("msd_brain", "data/MSD").splits


def test_inputs_are_checked_before_any_work(archives, tmp_path):
    with pytest.raises(FetchInputError, match="unknown dataset 'isic2061'"):
        plan(["isic2061"])
    with pytest.raises(FetchInputError, match="--to names one dataset's root"):
        plan(["mc", "isic2016"], to=tmp_path / "x")
    with pytest.raises(FetchInputError, match="no such file"):
        plan(["digestpath"], sources=[tmp_path / "missing.zip"])
    with pytest.raises(FetchInputError, match="none of the archives"):
        plan(["mc"], sources=[archives / "Task01_BrainTumour.tar"])
    (tmp_path / "a file").write_text("x")
    with pytest.raises(FetchInputError, match="is a file"):
        plan(["mc"], to=tmp_path / "a file")
    (Path("data/MC") / "MontgomerySet").mkdir(parents=True)  # extracted by hand, not by fetch
    with pytest.raises(FetchInputError, match="already exists but was not placed"):
        plan(["mc"])
