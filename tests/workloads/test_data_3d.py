"""MSD loaders (Task01/02/05 layouts and quirks) and the synthetic brain-tumour writer,
on tiny hand-made NIfTI files and small synthetic sets in tmp folders."""

import gzip
import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from dragsaw.workloads.data import DatasetError, dataset_class, load_dataset
from dragsaw.workloads.data.msd import MSDBrain, MSDDataset, MSDHeart, MSDProstate
from dragsaw.workloads.data.synthetic3d import write_msd_brain

SHAPE = (10, 12, 14)  # (D, H, W) of the synthetic cases


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGSAW_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def brain_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("brain")
    write_msd_brain(root, n=6, shape=SHAPE, channels=2, seed=3)
    return root


def _save(array, path, zooms=(1.0, 1.0, 1.0)):
    img = nib.Nifti1Image(array, np.diag([*zooms, 1.0]))
    nib.save(img, str(path))


def make_task(root, task, n=5, xyz=(3, 4, 5), channels=1, labels=("background", "fg"), zooms=(1.0, 1.0, 1.0),
              prefix="case", extra=None):
    """A hand-made MSD task folder: image[x, y, z, c] = 1000 c + 100 x + 10 y + z, label = x % n_labels."""
    folder = root / task
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub).mkdir(parents=True)
    x, y, z = np.meshgrid(*[np.arange(s) for s in xyz], indexing="ij")
    ids = [f"{prefix}_{i:02d}" for i in range(n)]
    for cid in ids + [f"{prefix}_test"]:
        image = np.stack([1000 * c + 100 * x + 10 * y + z for c in range(channels)], -1).astype(np.float32)
        sub = "imagesTs" if cid.endswith("test") else "imagesTr"
        _save(image if channels > 1 else image[..., 0], folder / sub / f"{cid}.nii.gz", zooms)
        if sub == "imagesTr":
            _save((x % len(labels)).astype(np.uint8), folder / "labelsTr" / f"{cid}.nii.gz", zooms)
    meta = {"name": task, "modality": {str(c): f"m{c}" for c in range(channels)},
            "labels": {str(i): name for i, name in enumerate(labels)}, "numTraining": n, "numTest": 1,
            "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ids],
            "test": [f"./imagesTs/{prefix}_test.nii.gz"], **(extra or {})}
    (folder / "dataset.json").write_text(json.dumps(meta))
    return folder


# ---------------------------------------------------------------- synthetic brain through the registry

def test_registry_loads_from_parent_and_task_folder(brain_root):
    assert dataset_class("msd_brain") is MSDBrain
    a = load_dataset("msd_brain", brain_root)
    b = load_dataset("msd_brain", brain_root / "Task01_BrainTumour")
    assert a.root == b.root == brain_root / "Task01_BrainTumour"
    assert a.case_ids() == b.case_ids() == [f"BRATS_{i:03d}" for i in range(1, 7)]
    assert a.spatial_dims == 3 and a.name == "msd_brain"
    assert a.classes == ["background", "edema", "non-enhancing tumour", "enhancing tumour"]
    assert a.modalities == ["FLAIR", "T1w"]
    assert a.unlabeled == ["BRATS_007", "BRATS_008"]
    assert not set(a.unlabeled) & {c for ids in a.splits.values() for c in ids}


def test_synthetic_case_shapes_dtypes_spacing(brain_root):
    ds = load_dataset("msd_brain", brain_root)
    case = ds.read("BRATS_001")
    image, label = case  # unpacks as a pair
    assert image.shape == (2, *SHAPE) and image.dtype == np.float32 and image.flags.c_contiguous
    assert label.shape == SHAPE and label.dtype == np.int64
    assert case.spacing == (1.5, 1.0, 1.0) and case.case_id == "BRATS_001"
    # the file itself is (X, Y, Z, C) with zooms (1, 1, 1.5): D is its z axis
    raw = nib.load(str(ds.files["BRATS_001"][0]))
    assert raw.shape == (*SHAPE[::-1], 2) and raw.header.get_zooms()[:3] == (1.0, 1.0, 1.5)
    assert np.array_equal(image, np.asarray(raw.dataobj).transpose(3, 2, 1, 0))
    unl, spacing = ds.read_image("BRATS_008")
    assert unl.shape == (2, *SHAPE) and spacing == (1.5, 1.0, 1.0)
    assert set(np.unique(label)) <= {0, 1, 2, 3}


def test_synthetic_classes_nested_separable_and_one_case_without_label_2(brain_root):
    ds = load_dataset("msd_brain", brain_root)
    seen, means = set(), {k: [] for k in range(4)}
    for cid in ds.case_ids():
        image, label = ds.read(cid)
        present = set(np.unique(label).tolist())
        assert {0, 1, 3} <= present, cid
        assert (2 in present) == (cid != "BRATS_002"), cid
        seen |= present
        brain = image[0] > 0
        norm = (image - image[:, brain].mean(1)[:, None, None, None]) / image[:, brain].std(1)[:, None, None, None]
        for k in present:
            means[k].append(norm[:, (label == k) & brain].mean(1))
        # nesting: enhancing core inside non-enhancing inside edema, by distance from the tumour centre
        centre = np.argwhere(label > 0).mean(0)
        dist = {k: np.linalg.norm(np.argwhere(label == k) - centre, axis=1).mean() for k in present - {0}}
        assert dist[3] < dist.get(2, dist[1]) <= dist[1], (cid, dist)
    centres = {k: np.mean(v, 0) for k, v in means.items()}
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(4) for b in range(a + 1, 4)]
    assert min(gaps) > 0.5, centres  # class means differ by > half a standard deviation


def test_writer_is_deterministic_and_seeded(tmp_path):
    kw = {"n": 2, "shape": (8, 8, 9), "channels": 1, "n_test": 0}
    a = write_msd_brain(tmp_path / "a", seed=1, **kw)
    b = write_msd_brain(tmp_path / "b", seed=1, **kw)
    c = write_msd_brain(tmp_path / "c", seed=2, **kw)

    def digest(folder):
        return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*.nii.gz")))).hexdigest()
    assert digest(a) == digest(b) != digest(c)
    assert write_msd_brain(tmp_path / "a", seed=1, **kw) == a  # same arguments: reused
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_msd_brain(tmp_path / "a", seed=2, **kw)
    write_msd_brain(tmp_path / "a", seed=2, overwrite=True, **kw)
    assert digest(a) == digest(c)
    with pytest.raises(ValueError, match="`channels` must be in"):
        write_msd_brain(tmp_path / "d", channels=5)


def test_splits_five_folds_deterministic_and_saved(brain_root, tmp_path):
    ds = load_dataset("msd_brain", brain_root)
    assert sorted(ds.splits) == [f"fold{i}" for i in range(5)]
    held = [c for ids in ds.splits.values() for c in ids]
    assert sorted(held) == ds.case_ids()  # disjoint and complete
    saved = list((tmp_path / "cache" / "splits").glob("msd_brain-*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text()) == ds.splits
    assert load_dataset("msd_brain", brain_root).splits == ds.splits
    edited = dict(ds.splits, fold0=ds.splits["fold1"], fold1=ds.splits["fold0"])
    saved[0].write_text(json.dumps(edited))
    assert load_dataset("msd_brain", brain_root).splits == edited  # read back, not recomputed


def test_check_reports_counts_junk_and_modalities(brain_root):
    lines = "\n".join(load_dataset("msd_brain", brain_root).check())
    assert "training cases listed and found: 6, as promised (6)" in lines
    assert "unlabeled imagesTs cases listed and found: 2, as promised (2)" in lines
    assert "resource-fork files: 2 on disk" in lines
    assert "modalities (2): FLAIR, T1w" in lines
    assert (brain_root / "Task01_BrainTumour" / "imagesTr" / "._BRATS_001.nii.gz").exists()


# ---------------------------------------------------------------- hand-made files: axes, quirks, subclasses

def test_axis_order_and_spacing_from_header(tmp_path):
    folder = make_task(tmp_path, "Task09_Spleen", xyz=(2, 3, 4), channels=2, zooms=(0.5, 0.7, 2.0))
    ds = MSDDataset(folder)
    assert ds.name == "msd_task09_spleen" and ds.classes == ["background", "fg"]
    case = ds.read("case_00")
    assert case.image.shape == (2, 4, 3, 2) and case.label.shape == (4, 3, 2)
    assert case.spacing == pytest.approx((2.0, 0.7, 0.5))
    for c, z, y, x in np.ndindex(*case.image.shape):  # (C, D, H, W) = (C, Z, Y, X)
        assert case.image[c, z, y, x] == 1000 * c + 100 * x + 10 * y + z
        assert case.label[z, y, x] == x % 2


def test_heart_single_channel(tmp_path):
    make_task(tmp_path, "Task02_Heart", labels=("background", "left atrium"), zooms=(1.25, 1.25, 1.37),
              prefix="la")
    ds = load_dataset("msd_heart", tmp_path)
    assert isinstance(ds, MSDHeart) and ds.classes == ["background", "left atrium"]
    case = ds.read("la_00")
    assert case.image.shape == (1, 5, 4, 3) and case.image.dtype == np.float32
    assert case.spacing == pytest.approx((1.37, 1.25, 1.25))
    assert ds.unlabeled == ["la_test"]


def test_prostate_relase_typo_junk_and_classes(tmp_path):
    folder = make_task(tmp_path, "Task05_Prostate", channels=2, labels=("background", "PZ", "TZ"),
                       prefix="prostate", extra={"relase": "1.0 04/05/2018", "tensorImageSize": "4D"})
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (folder / sub / "._prostate_00.nii.gz").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    meta = json.loads((folder / "dataset.json").read_text())
    meta["training"].append({"image": "./imagesTr/._prostate_00.nii.gz", "label": "./labelsTr/._prostate_00.nii.gz"})
    (folder / "dataset.json").write_text(json.dumps(meta))
    ds = load_dataset("msd_prostate", folder)
    assert isinstance(ds, MSDProstate) and ds.classes == ["background", "PZ", "TZ"]
    assert ds.release == "1.0 04/05/2018"
    assert "._prostate_00" not in ds.case_ids() and len(ds) == 5
    assert "resource-fork files: 3 on disk, 1 listed in dataset.json" in "\n".join(ds.check())
    assert ds.read("prostate_01").image.shape == (2, 5, 4, 3)


def test_classes_option_and_count_mismatch(tmp_path):
    folder = make_task(tmp_path, "Task09_Spleen")
    assert MSDDataset(folder, classes=["bg", "spleen"]).classes == ["bg", "spleen"]
    with pytest.raises(DatasetError, match="defines 2 labels"):
        MSDDataset(folder, classes=["bg", "a", "b"])
    with pytest.raises(DatasetError, match="defines 2 labels"):  # brain needs 4
        MSDBrain(folder.rename(tmp_path / "Task01_BrainTumour"))


def test_check_reports_promise_mismatch_and_unlisted_files(tmp_path):
    folder = make_task(tmp_path, "Task09_Spleen", n=6)
    meta = json.loads((folder / "dataset.json").read_text())
    meta["numTraining"], meta["training"] = 7, meta["training"][:5]
    (folder / "dataset.json").write_text(json.dumps(meta))
    lines = "\n".join(MSDDataset(folder).check())
    assert "5, MISMATCH: dataset.json promises 7" in lines
    assert "NOT USED: 2 NIfTI files" in lines and "imagesTr/case_05.nii.gz" in lines


# ---------------------------------------------------------------- errors name the file

def test_missing_task_folder(tmp_path):
    with pytest.raises(DatasetError, match=f"expected Task01_BrainTumour/dataset.json under {tmp_path}"):
        load_dataset("msd_brain", tmp_path)
    make_task(tmp_path, "Task02_Heart")
    with pytest.raises(DatasetError, match=r"found \['Task02_Heart'\]"):
        load_dataset("msd_brain", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("msd_heart", tmp_path / "nowhere")


def test_missing_listed_file(tmp_path):
    folder = make_task(tmp_path, "Task02_Heart")
    (folder / "labelsTr" / "case_03.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"do not exist: .*labelsTr/case_03\.nii\.gz"):
        load_dataset("msd_heart", tmp_path)


def test_malformed_dataset_json(tmp_path):
    folder = make_task(tmp_path, "Task02_Heart")
    (folder / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot parse .*dataset.json"):
        MSDHeart(tmp_path)
    (folder / "dataset.json").write_text(json.dumps({"labels": {"0": "bg", "2": "x"}, "training": "no"}))
    with pytest.raises(DatasetError) as err:  # every problem at once
        MSDHeart(tmp_path)
    assert "`labels` keys must be 0..1" in str(err.value) and "`modality`" in str(err.value)
    assert "`training` must be a list" in str(err.value)


def test_too_few_cases_for_five_folds(tmp_path):
    make_task(tmp_path, "Task02_Heart", n=3)
    with pytest.raises(DatasetError, match="needs at least 5 training cases"):
        MSDHeart(tmp_path)


def test_label_shape_mismatch_names_both_files(tmp_path):
    folder = make_task(tmp_path, "Task02_Heart")
    _save(np.zeros((3, 4, 6), np.uint8), folder / "labelsTr" / "case_01.nii.gz")
    ds = MSDHeart(tmp_path)
    with pytest.raises(DatasetError, match=r"labelsTr/case_01\.nii\.gz has shape \(3, 4, 6\).*imagesTr/case_01"):
        ds.read("case_01")


def test_label_value_out_of_range(tmp_path):
    folder = make_task(tmp_path, "Task02_Heart")
    _save(np.full((3, 4, 5), 7, np.uint8), folder / "labelsTr" / "case_02.nii.gz")
    _save(np.full((3, 4, 5), 0.5, np.float32), folder / "labelsTr" / "case_04.nii.gz")
    ds = MSDHeart(tmp_path)
    with pytest.raises(DatasetError, match=r"labelsTr/case_02\.nii\.gz holds values \[7\] outside"):
        ds.read("case_02")
    with pytest.raises(DatasetError, match=r"labelsTr/case_04\.nii\.gz holds non-integer"):
        ds.read("case_04")


def test_channel_count_must_match_modalities(tmp_path):
    folder = make_task(tmp_path, "Task05_Prostate", channels=2, labels=("background", "PZ", "TZ"))
    _save(np.zeros((3, 4, 5, 3), np.float32), folder / "imagesTr" / "case_00.nii.gz")
    with pytest.raises(DatasetError, match=r"imagesTr/case_00\.nii\.gz has shape \(3, 4, 5, 3\).*2 modalities"):
        MSDProstate(tmp_path).read("case_00")


@pytest.mark.parametrize("damage", ["not_gzip", "truncated"])
def test_corrupt_nifti_names_the_file(tmp_path, damage):
    folder = make_task(tmp_path, "Task02_Heart", xyz=(20, 20, 20))
    path = folder / "imagesTr" / "case_01.nii.gz"
    if damage == "not_gzip":
        path.write_bytes(b"\x00\x05\x16\x07Mac OS X" + bytes(100))
    else:
        data = path.read_bytes()
        assert gzip.decompress(data)  # a valid file before the damage
        path.write_bytes(data[: len(data) // 2])
    ds = MSDHeart(tmp_path)
    with pytest.raises(DatasetError, match=r"cannot read NIfTI file .*imagesTr/case_01\.nii\.gz"):
        ds.read("case_01")


def test_task_folder_one_level_down_and_ambiguous(tmp_path):
    make_task(tmp_path / "download", "Task05_Prostate", channels=2, labels=("background", "PZ", "TZ"))
    ds = load_dataset("msd_prostate", tmp_path)
    assert ds.root == tmp_path / "download" / "Task05_Prostate" and len(ds) == 5
    make_task(tmp_path / "copy", "Task05_Prostate", channels=2, labels=("background", "PZ", "TZ"))
    with pytest.raises(DatasetError, match="Task05_Prostate is in several folders"):
        load_dataset("msd_prostate", tmp_path)


def test_check_read_lists_unreadable_files(tmp_path):
    folder = make_task(tmp_path, "Task02_Heart", xyz=(20, 20, 20))
    assert "read 6 of 6 cases without error (5 training, 1 imagesTs)" in MSDHeart(tmp_path).check(read=True)
    assert not any(line.startswith("read ") for line in MSDHeart(tmp_path).check())  # only when asked
    broken = folder / "imagesTs" / "case_test.nii.gz"
    broken.write_bytes(broken.read_bytes()[:60])
    lines = MSDHeart(tmp_path).check(read=True)
    assert "read 5 of 6 cases without error (5 training, 1 imagesTs)" in lines
    assert any(line.startswith("unreadable: cannot read NIfTI file") and str(broken) in line for line in lines)
