"""The 2D loaders (ISIC 2016/2017, ISIC 2016 -> PH2, Montgomery, DigestPath, user folders)
and the synthetic writers, on small files written in the official layouts."""

import hashlib
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dragsaw.workloads.data import DatasetError, fold_split, load_dataset
from dragsaw.workloads.data.synthetic import write_isic2016, write_mc, write_synthetic

ISIC16_TRAIN, ISIC16_TRAIN_GT = "ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"
PH2 = Path("PH2Dataset") / "PH2 Dataset images"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGSAW_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def isic16(tmp_path_factory):
    """A small synthetic ISIC 2016 set, written once; tests that change it use a copy."""
    return write_isic2016(tmp_path_factory.mktemp("isic16"), n_train=6, n_test=3, size=(48, 64), seed=1)


@pytest.fixture
def isic16_copy(isic16, tmp_path):
    return Path(shutil.copytree(isic16, tmp_path / "copy"))


def _save(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def _disk(h: int, w: int, r: float, value: int = 255) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    return np.where((y - h / 2) ** 2 + (x - w / 2) ** 2 < r**2, value, 0).astype(np.uint8)


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _ids(folder: Path, pattern: str = "ISIC_*.jpg") -> list[str]:
    return sorted(p.name.split(".")[0] for p in folder.glob(pattern))


def _lines(ds) -> str:
    return "\n".join(ds.check())


# -- ISIC 2016 --------------------------------------------------------------------------------
def test_isic2016_official_splits_read_and_check(isic16):
    ds = load_dataset("isic2016", isic16)
    train, test = _ids(isic16 / ISIC16_TRAIN), _ids(isic16 / "ISBI2016_ISIC_Part1_Test_Data")
    assert ds.splits == {"train": train, "test": test} and len(train) == 6 and len(test) == 3
    numbers = sorted(int(c[5:]) for c in train + test)
    assert numbers != list(range(numbers[0], numbers[0] + 9))  # non-contiguous ids
    assert ds.classes == ["background", "lesion"] and ds.spatial_dims == 2 and ds.name == "isic2016"
    assert fold_split(ds, "test") == (train, test)
    image, label = case = ds.read(train[0])
    assert case.case_id == train[0] and case.spacing is None
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert label.shape == (48, 64) and label.dtype == np.int64
    mask = np.asarray(Image.open(isic16 / ISIC16_TRAIN_GT / f"{train[0]}_Segmentation.png"))
    assert set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(label, (mask > 127).astype(np.int64))  # thresholded, not compared to 1
    lines = _lines(ds)
    assert "found 6 of the official 900 training images" in lines
    assert "found 3 of the official 379 test images" in lines


def test_isic2016_nested_folder_and_macos_junk(isic16, isic16_copy):
    root = isic16_copy
    (root / ISIC16_TRAIN).rename(root / "tmp")
    (root / ISIC16_TRAIN).mkdir()
    (root / "tmp").rename(root / ISIC16_TRAIN / ISIC16_TRAIN)  # X/X/... from a Windows unzip
    (root / ISIC16_TRAIN / ".DS_Store").write_bytes(b"\0")
    first = _ids(isic16 / ISIC16_TRAIN)[0]
    (root / ISIC16_TRAIN / ISIC16_TRAIN / f"._{first}.jpg").write_bytes(b"\x00\x05\x16\x07 not a jpeg")
    (root / ISIC16_TRAIN_GT / f"._{first}_Segmentation.png").write_bytes(b"junk")
    ds = load_dataset("isic2016", root)
    assert ds.splits == load_dataset("isic2016", isic16).splits
    assert ds.files[first][0].parent == root / ISIC16_TRAIN / ISIC16_TRAIN
    assert ds.read(first).image.shape == (48, 64, 3)
    lines = _lines(ds)
    assert "nested twice" in lines and "hidden/macOS '._' file(s)" in lines


def test_isic2016_missing_folders_and_root(isic16_copy, tmp_path):
    shutil.rmtree(isic16_copy / "ISBI2016_ISIC_Part1_Test_GroundTruth")
    shutil.rmtree(isic16_copy / ISIC16_TRAIN)
    with pytest.raises(DatasetError) as err:
        load_dataset("isic2016", isic16_copy)
    assert "ISBI2016_ISIC_Part1_Test_GroundTruth" in str(err.value) and ISIC16_TRAIN in str(err.value)
    assert "900 official training images" in str(err.value)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("isic2016", tmp_path / "nowhere")


def test_isic2016_unpaired_files_are_errors_naming_them(isic16_copy):
    train = _ids(isic16_copy / ISIC16_TRAIN)
    (isic16_copy / ISIC16_TRAIN_GT / f"{train[1]}_Segmentation.png").unlink()
    with pytest.raises(DatasetError) as err:
        load_dataset("isic2016", isic16_copy)
    assert f"{train[1]}.jpg has no mask" in str(err.value) and f"{train[1]}_Segmentation.png" in str(err.value)
    (isic16_copy / ISIC16_TRAIN / f"{train[1]}.jpg").unlink()
    (isic16_copy / ISIC16_TRAIN / f"{train[2]}.jpg").unlink()
    with pytest.raises(DatasetError, match=f"{train[2]}_Segmentation.png has no image"):
        load_dataset("isic2016", isic16_copy)


def test_isic2016_corrupt_image_and_bad_masks_name_the_file(isic16_copy):
    ds = load_dataset("isic2016", isic16_copy)
    a, b, c, d = ds.splits["train"][:4]
    ds.files[a][0].write_bytes(b"definitely not a jpeg")
    jpeg = ds.files[b][0].read_bytes()
    ds.files[b][0].write_bytes(jpeg[: len(jpeg) // 2])  # truncated download
    _save(ds.files[c][1], _disk(48, 64, 10, value=1))  # 0/1 instead of 0/255
    _save(ds.files[d][1], _disk(40, 64, 10))  # wrong size
    for cid, path, message in ((a, ds.files[a][0], "cannot read image"), (b, ds.files[b][0], "cannot read image"),
                               (c, ds.files[c][1], "must hold only 0 and 255"), (d, ds.files[d][1], "is 64x40")):
        with pytest.raises(DatasetError, match=message) as err:
            ds.read(cid)
        assert str(path) in str(err.value)
    lines = ds.check(read=True)
    assert f"read {len(ds) - 4} of {len(ds)} cases without error" in lines


# -- ISIC 2016 -> PH2 -------------------------------------------------------------------------
def _ph2(root: Path, ids=("IMD002", "IMD003", "IMD010")) -> Path:
    top = root / PH2
    for i, cid in enumerate(ids):
        h, w = 40 + i, 52 + 2 * i  # PH2 sizes vary slightly
        _save(top / cid / f"{cid}_Dermoscopic_Image" / f"{cid}.bmp", _rgb(h, w, i))
        _save(top / cid / f"{cid}_lesion" / f"{cid}_lesion.bmp", _disk(h, w, 12))
        _save(top / cid / f"{cid}_roi" / f"{cid}_R1_Label4.bmp", _disk(h, w, 4))  # to ignore
    (root / "PH2Dataset" / "PH2_dataset.txt").write_text("|| Name || Histological Diagnosis ||\n")
    (root / "PH2Dataset" / "PH2_dataset.xlsx").write_bytes(b"PK\x03\x04")
    return top


def test_isic2016_ph2_trains_on_isic_tests_on_ph2(isic16, isic16_copy):
    top = _ph2(isic16_copy)
    ds = load_dataset("isic2016_ph2", isic16_copy)
    assert ds.splits == {"train": _ids(isic16 / ISIC16_TRAIN), "test": ["IMD002", "IMD003", "IMD010"]}
    image, label = ds.read("IMD010")
    assert image.shape == (42, 56, 3) and label.shape == (42, 56) and image.dtype == np.uint8
    np.testing.assert_array_equal(label, _disk(42, 56, 12) // 255)
    lines = _lines(ds)
    assert "found 3 of the official 200 PH2 images" in lines and "IMD002_roi" in lines
    assert "found 6 of the official 900 training images" in lines
    (top / "IMD003" / "IMD003_lesion" / "IMD003_lesion.bmp").unlink()
    with pytest.raises(DatasetError, match="IMD003_lesion.bmp") as err:
        load_dataset("isic2016_ph2", isic16_copy)
    assert str(top / "IMD003" / "IMD003_Dermoscopic_Image" / "IMD003.bmp") in str(err.value)
    shutil.rmtree(top / "IMD010" / "IMD010_Dermoscopic_Image")
    with pytest.raises(DatasetError, match="IMD010 has no image"):
        load_dataset("isic2016_ph2", isic16_copy)


# -- ISIC 2017 --------------------------------------------------------------------------------
def _isic2017(root: Path) -> dict[str, list[str]]:
    splits = {"train": [0, 2, 7], "val": [11], "test": [13, 20]}
    folders = {"train": "ISIC-2017_Training", "val": "ISIC-2017_Validation", "test": "ISIC-2017_Test_v2"}
    for split, numbers in splits.items():
        data, truth = root / f"{folders[split]}_Data", root / f"{folders[split]}_Part1_GroundTruth"
        for n in numbers:
            _save(data / f"ISIC_{n:07d}.jpg", _rgb(30, 40, n), quality=90)
            _save(data / f"ISIC_{n:07d}_superpixels.png", _rgb(30, 40, n + 100))
            _save(truth / f"ISIC_{n:07d}_segmentation.png", _disk(30, 40, 8))
        (data / f"{folders[split]}_Data_metadata.csv").write_text("image_id,age_approximate,sex\n")
        (data / f"._ISIC_{numbers[0]:07d}.jpg").write_bytes(b"\x00\x05\x16\x07")
    return {k: [f"ISIC_{n:07d}" for n in v] for k, v in splits.items()}


def test_isic2017_official_splits_skip_superpixels_and_metadata(tmp_path):
    expected = _isic2017(tmp_path)
    ds = load_dataset("isic2017", tmp_path)
    assert ds.splits == expected and ds.classes == ["background", "lesion"]
    assert all(len(files) == 2 and files[0].suffix == ".jpg" for files in ds.files.values())
    image, label = ds.read("ISIC_0000011")
    assert image.shape == (30, 40, 3) and set(np.unique(label)) == {0, 1}
    lines = _lines(ds)
    for needed in ("found 3 of the official 2000 training images", "found 1 of the official 150 validation images",
                   "found 2 of the official 600 test images", "_superpixels.png", "_metadata.csv"):
        assert needed in lines
    # ISIC 2016 spelling of the mask name is not the 2017 one: the image has no mask
    truth = tmp_path / "ISIC-2017_Validation_Part1_GroundTruth"
    (truth / "ISIC_0000011_segmentation.png").rename(truth / "ISIC_0000011_Segmentation.png")
    with pytest.raises(DatasetError, match="ISIC_0000011_segmentation.png"):
        load_dataset("isic2017", tmp_path)


# -- Montgomery -------------------------------------------------------------------------------
def test_mc_union_of_lungs_grayscale_and_saved_seeded_split(tmp_path):
    root = write_mc(tmp_path / "mc", n=8, size=(48, 40), seed=2)
    ds = load_dataset("mc", root)
    cxr = root / "MontgomerySet" / "CXR_png"
    ids = _ids(cxr, "MCUCXR_*.png")
    assert list(ds.files) == ids and {c[-1] for c in ids} == {"0", "1"}
    assert ds.classes == ["background", "lung"]
    assert sorted(ds.splits["train"] + ds.splits["test"]) == ids and len(ds.splits["test"]) == 3  # round(8*58/138)
    assert {c[-1] for c in ds.splits["test"]} == {"0", "1"}  # stratified, never "normal = train, TB = test"
    saved = list((tmp_path / "cache" / "splits").glob("mc-*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text()) == ds.splits
    saved[0].unlink()
    assert load_dataset("mc", root).splits == ds.splits  # regenerated identically

    cid = ids[0]
    left = root / "MontgomerySet" / "ManualMask" / "leftMask" / f"{cid}.png"
    blob = np.asarray(Image.open(left)).copy()
    blob[2:5, 2:5] = 255  # a stray blob, kept as annotated
    _save(left, blob)
    right = np.asarray(Image.open(root / "MontgomerySet" / "ManualMask" / "rightMask" / f"{cid}.png"))
    image, label = ds.read(cid)
    assert image.shape == (48, 40, 1) and image.dtype == np.uint8 and label.dtype == np.int64
    np.testing.assert_array_equal(label, ((blob > 127) | (right > 127)).astype(np.int64))
    assert label[:, :20].any() and label[:, 20:].any()  # both lungs
    assert "found 8 of the official 138 X-ray images" in _lines(ds)


def test_mc_official_count_gives_80_58_stratified(tmp_path):
    rng = np.random.default_rng(0)
    numbers = sorted(rng.choice(np.arange(1, 400), 138, replace=False))
    top = tmp_path / "MontgomerySet"
    tiny = np.zeros((4, 4), np.uint8)
    for i, n in enumerate(numbers):
        name = f"MCUCXR_{n:04d}_{int(i >= 80)}.png"
        for folder in ("CXR_png", "ManualMask/leftMask", "ManualMask/rightMask"):
            _save(top / folder / name, tiny)
    ds = load_dataset("mc", tmp_path)
    train, test = ds.splits["train"], ds.splits["test"]
    assert (len(train), len(test)) == (80, 58)
    assert sum(c.endswith("_1") for c in test) == 24 and sum(c.endswith("_1") for c in train) == 34
    assert "(complete)" in _lines(ds)
    (top / "ManualMask" / "rightMask" / f"MCUCXR_{numbers[5]:04d}_0.png").unlink()
    with pytest.raises(DatasetError, match=rf"rightMask.MCUCXR_{numbers[5]:04d}_0.png"):
        load_dataset("mc", tmp_path)


# -- DigestPath -------------------------------------------------------------------------------
POS = ["18-09926A_2019-05-08 00_06_27-lv1-34986-14172-4025-4230", "D201707473 (2)_2019-05-07 12_43_27-lv1-1024",
       "2018_68000_1-2_2019-02-25 21_57_36-lv0-33516-59515-2003-1950", "a b", "c d"]
NEG = [f"neg {i} slide (x).2019-05" for i in range(6)]


def _digestpath(root: Path, size=(60, 90)) -> dict[str, np.ndarray]:
    masks = {}
    for i, name in enumerate(POS):
        _save(root / "tissue-train-pos-v1" / f"{name}.jpg", _rgb(*size, i), quality=90)
        mask = _disk(*size, 10 + 3 * i)
        noisy = np.clip(mask.astype(int) + np.random.default_rng(i).integers(-6, 7, size), 0, 255).astype(np.uint8)
        _save(root / "tissue-train-pos-v1" / f"{name}_mask.jpg", noisy, quality=80)
        masks[name] = mask
    for i, name in enumerate(NEG):
        _save(root / "tissue-train-neg" / f"{name}.jpg", _rgb(*size, 50 + i), quality=90)
    return masks


def test_digestpath_spaces_jpeg_masks_and_folds(tmp_path):
    masks = _digestpath(tmp_path)
    ds = load_dataset("digestpath", tmp_path)
    assert sorted(ds.files) == sorted(POS) and sorted(ds.splits) == [f"fold{i}" for i in range(5)]
    assert sorted(c for f in ds.splits.values() for c in f) == sorted(POS)
    image, label = ds.read(POS[1])
    assert image.shape == (60, 90, 3) and set(np.unique(label)) == {0, 1}
    assert np.mean(label != masks[POS[1]] // 255) < 0.01  # JPEG noise thresholded away
    lines = _lines(ds)
    assert "found 5 of the official 250 images with masks" in lines and "952" in lines
    assert "6 negative images present, not used" in lines

    both = load_dataset("digestpath", tmp_path, include_negatives=True)
    assert sorted(both.files) == sorted(POS + NEG)
    assert all(any(c in NEG for c in fold) and any(c in POS for c in fold) for fold in both.splits.values())
    image, label = both.read(NEG[0])
    assert image.shape == (60, 90, 3) and label.shape == (60, 90) and not label.any()
    assert "found 6 of the official 410 images without masks" in _lines(both)
    assert load_dataset("digestpath", tmp_path, include_negatives=True).splits == both.splits  # saved
    (tmp_path / "cache" / "splits").rename(tmp_path / "old")
    assert load_dataset("digestpath", tmp_path, include_negatives=True).splits == both.splits  # seeded


def test_digestpath_downscale_bomb_limit_and_errors(tmp_path, monkeypatch):
    masks = _digestpath(tmp_path, size=(150, 240))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # every file here is a "bomb" for PIL now
    ds = load_dataset("digestpath", tmp_path, max_side=100)
    image, label = ds.read(POS[4])
    assert image.shape == (62, 100, 3) and label.shape == (62, 100) and set(np.unique(label)) == {0, 1}
    assert Image.MAX_IMAGE_PIXELS == 1000  # raised only while reading DigestPath files
    near = np.asarray(Image.fromarray(masks[POS[4]]).resize((100, 62), Image.Resampling.NEAREST)) // 255
    assert np.mean(label != near) < 0.02
    assert load_dataset("digestpath", tmp_path, max_side=None).read(POS[4]).image.shape == (150, 240, 3)
    with pytest.raises(ValueError, match="max_side"):
        load_dataset("digestpath", tmp_path, max_side=0)

    bad = tmp_path / "tissue-train-pos-v1" / f"{POS[0]}_mask.jpg"
    _save(bad, np.random.default_rng(0).integers(0, 256, (150, 240), dtype=np.uint8), quality=90)
    with pytest.raises(DatasetError, match="0/255 mask") as err:
        ds.read(POS[0])
    assert str(bad) in str(err.value)
    (tmp_path / "tissue-train-pos-v1" / f"{POS[2]}_mask.jpg").unlink()
    with pytest.raises(DatasetError, match=f"{POS[2]}.jpg has no mask"):
        load_dataset("digestpath", tmp_path)
    shutil.rmtree(tmp_path / "tissue-train-neg")
    with pytest.raises(DatasetError, match="missing folder 'tissue-train-neg'"):
        load_dataset("digestpath", tmp_path, include_negatives=True)


# -- user folders -----------------------------------------------------------------------------
def _folder(root: Path, n: int = 6, values=(0, 1, 2), suffix: str = "") -> None:
    for i in range(n):
        _save(root / "images" / f"case {i}.png", _rgb(20, 24, i))
        mask = np.zeros((20, 24), np.uint8)
        for k, v in enumerate(values):
            mask[:, k * 24 // len(values):] = v
        _save(root / "masks" / f"case {i}{suffix}.png", mask)


def test_folder_class_indices_binary_0_255_and_cv(tmp_path):
    _folder(tmp_path / "a")
    ds = load_dataset("folder", tmp_path / "a", classes=["background", "liver", "tumour"])
    assert ds.classes == ["background", "liver", "tumour"] and len(ds) == 6
    assert sorted(ds.splits) == [f"fold{i}" for i in range(5)]
    image, label = ds.read("case 3")
    assert image.shape == (20, 24, 3) and label.dtype == np.int64 and set(np.unique(label)) == {0, 1, 2}
    assert "found 6 images, each with its mask" in _lines(ds)

    _folder(tmp_path / "b", values=(0, 255), suffix="_mask")
    binary = load_dataset("folder", tmp_path / "b", classes=["background", "lesion"], mask_suffix="_mask",
                          test_fraction=0.34, folds=2, channels=1)
    assert sorted(binary.splits) == ["fold0", "fold1", "test", "train"] and len(binary.splits["test"]) == 2
    assert sorted(binary.splits["train"]) == sorted(
        c for k, v in binary.splits.items() if k.startswith("fold") for c in v)
    image, label = binary.read("case 0")
    assert image.shape == (20, 24, 1) and set(np.unique(label)) == {0, 1}

    with pytest.raises(DatasetError, match="class indices 0..1") as err:
        load_dataset("folder", tmp_path / "a", classes=["background", "lesion"]).read("case 1")
    assert "case 1.png" in str(err.value)
    with pytest.raises(ValueError, match="classes"):
        load_dataset("folder", tmp_path / "a")
    with pytest.raises(DatasetError, match="need 5 cases outside the test set"):
        load_dataset("folder", tmp_path / "b", classes=["bg", "x"], mask_suffix="_mask", test_fraction=0.34)


def test_folder_unpaired_files_are_errors_naming_them(tmp_path):
    _folder(tmp_path)
    (tmp_path / "masks" / "case 2.png").unlink()
    with pytest.raises(DatasetError, match="case 2.png has no mask"):
        load_dataset("folder", tmp_path, classes=["bg", "a", "b"])
    (tmp_path / "images" / "case 2.png").unlink()
    _save(tmp_path / "masks" / "stray.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetError, match="stray.png has no image"):
        load_dataset("folder", tmp_path, classes=["bg", "a", "b"])


def test_folder_with_dataset_json_goes_to_the_msd_loader(tmp_path, monkeypatch):
    calls = []

    class FakeMSD:
        def __init__(self, root, classes=None):
            calls.append((Path(root), classes))

    fake = types.ModuleType("dragsaw.workloads.data.msd")
    fake.MSDDataset = FakeMSD
    monkeypatch.setitem(sys.modules, "dragsaw.workloads.data.msd", fake)
    (tmp_path / "dataset.json").write_text("{}")
    assert isinstance(load_dataset("folder", tmp_path, classes=["bg", "x"]), FakeMSD)
    assert calls == [(tmp_path, ["bg", "x"])]
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("folder", tmp_path, test_fraction=0.2)


def test_folder_with_dataset_json_reads_3d(tmp_path):
    pytest.importorskip("dragsaw.workloads.data.msd", reason="msd.py (the MSD loader) is not written yet")
    synthetic3d = pytest.importorskip("dragsaw.workloads.data.synthetic3d", reason="synthetic3d.py not written yet")
    task = synthetic3d.write_msd_brain(tmp_path, n=5, shape=(8, 8, 8), channels=1, n_test=0)
    ds = load_dataset("folder", task)
    assert ds.spatial_dims == 3 and len(ds) == 5


# -- synthetic writers ------------------------------------------------------------------------
def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_writers_are_deterministic_and_reusable(tmp_path):
    a = write_synthetic("isic2016", tmp_path / "a", n_train=3, n_test=2, size=(40, 48), seed=5)
    b = write_synthetic("isic2016", tmp_path / "b", n_train=3, n_test=2, size=(40, 48), seed=5)
    c = write_synthetic("isic2016", tmp_path / "c", n_train=3, n_test=2, size=(40, 48), seed=6)
    assert _digest(a) == _digest(b) != _digest(c)
    m1, m2 = (write_synthetic("mc", tmp_path / k, n=4, size=(40, 40), seed=1) for k in ("m1", "m2"))
    assert _digest(m1) == _digest(m2)
    assert write_synthetic("isic2016", a, n_train=3, n_test=2, size=(40, 48), seed=5) == a  # reused as is
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_synthetic("isic2016", a, n_train=4, n_test=2, size=(40, 48), seed=5)
    write_synthetic("isic2016", a, n_train=4, n_test=2, size=(40, 48), seed=5, overwrite=True)
    assert len(load_dataset("isic2016", a).splits["train"]) == 4
    assert not list(a.glob(".tmp-synthetic-*"))
    with pytest.raises(ValueError, match=r"did you mean 'isic2016'") as err:
        write_synthetic("isic2017x", tmp_path)
    assert "msd_brain" in str(err.value)


def test_synthetic_msd_brain_dispatch(tmp_path):
    pytest.importorskip("dragsaw.workloads.data.synthetic3d", reason="synthetic3d.py not written yet")
    task = write_synthetic("msd_brain", tmp_path, n=2, shape=(8, 8, 8), channels=1, n_test=0)
    assert (task / "dataset.json").is_file()


def test_synthetic_lesions_are_darker_than_skin(isic16):
    ds = load_dataset("isic2016", isic16)
    for cid in ds.case_ids():
        image, label = ds.read(cid)
        grey = image.mean(axis=2)
        assert 0.02 < label.mean() < 0.6
        assert grey[label == 1].mean() < grey[label == 0].mean() - 40


# -- one level down: the archive's own top folder inside the root ------------------------------
def test_digestpath_inside_its_archives_top_folder(tmp_path):
    _digestpath(tmp_path / "Colonoscopy_tissue_segment_dataset")  # as the official archive extracts
    ds = load_dataset("digestpath", tmp_path, include_negatives=True)
    assert sorted(ds.files) == sorted(POS + NEG)
    assert ds.files[POS[0]][0].parent == tmp_path / "Colonoscopy_tissue_segment_dataset" / "tissue-train-pos-v1"
    assert "found one level down, inside Colonoscopy_tissue_segment_dataset/" in _lines(ds)
    assert sorted(load_dataset("digestpath", tmp_path / "Colonoscopy_tissue_segment_dataset").files) == sorted(POS)
    _digestpath(tmp_path / "another copy")
    with pytest.raises(DatasetError, match="in several folders") as err:
        load_dataset("digestpath", tmp_path)
    assert "another copy/" in str(err.value) and "Colonoscopy_tissue_segment_dataset/" in str(err.value)


def test_mc_from_its_top_folder_or_one_level_down(tmp_path):
    write_mc(tmp_path / "NLM-MontgomeryCXRSet", n=6, size=(40, 40))  # a zip that wraps MontgomerySet/
    ids = sorted(load_dataset("mc", tmp_path / "NLM-MontgomeryCXRSet").files)
    assert sorted(load_dataset("mc", tmp_path).files) == ids
    ds = load_dataset("mc", tmp_path / "NLM-MontgomeryCXRSet" / "MontgomerySet")  # the top folder as the root
    assert sorted(ds.files) == ids and "the root is the folder MontgomerySet/ itself" in _lines(ds)


def test_ph2_and_isic_one_level_down(isic16, isic16_copy):
    wrapper = isic16_copy / "PH2 download"
    _ph2(wrapper)  # PH2Dataset/ inside a folder of its own, beside the ISIC 2016 folders
    ds = load_dataset("isic2016_ph2", isic16_copy)
    assert ds.splits["test"] == ["IMD002", "IMD003", "IMD010"]
    assert ds.files["IMD002"][0].is_relative_to(wrapper) and "inside PH2 download/" in _lines(ds)
    shutil.rmtree(wrapper)
    holder = isic16_copy.parent / "holder"
    holder.mkdir()
    shutil.move(isic16_copy, holder / "ISIC2016")  # every ISIC folder one level down
    assert load_dataset("isic2016", holder).splits == load_dataset("isic2016", isic16).splits
