"""Preprocessing, the case cache, augmentation and training samples."""

import multiprocessing as mp
import os

import numpy as np
import pytest
import torch

from dragsaw.workloads.data.base import Case, SegmentationDataset
from dragsaw.workloads.data.cache import CaseCache
from dragsaw.workloads.data.loading import TrainingSamples
from dragsaw.workloads.data.preprocess import Preprocessing, preprocess_2d, preprocess_3d
from dragsaw.workloads.data.transforms import Augment2D, Augment3D, sample_seed


class NpyDataset(SegmentationDataset):
    """A minimal loader over .npy files, to test the pipeline without a real layout."""

    name = "npy"

    def __init__(self, root, dims=2):
        super().__init__(root, ["background", "a", "b"])
        self.spatial_dims = dims
        for image in sorted(self.root.glob("*_image.npy")):
            case = image.name[: -len("_image.npy")]
            self.files[case] = [image, image.with_name(f"{case}_label.npy")]
        self.splits = {"train": list(self.files)[:-1], "test": list(self.files)[-1:]}

    def _read(self, case_id):
        image, label = (np.load(p) for p in self.files[case_id])
        return Case(image, label, (2.0, 1.0, 1.0) if self.spatial_dims == 3 else None, case_id)


def write_cases(root, dims, n=4, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        if dims == 2:
            label = np.zeros((90, 120), np.int64)
            label[20 + i:60, 30:80 + i] = 1
            label[30:40, 40:50] = 2
            image = (rng.random((90, 120, 3)) * 80 + label[..., None] * 60).astype(np.uint8)
        else:
            label = np.zeros((10, 24, 20), np.int64)
            label[3:7, 8:16, 5:12] = 1
            label[4:6, 10:12, 7:9] = 2
            image = np.zeros((2, 10, 24, 20), np.float32)
            image[:, 1:9, 2:22, 2:18] = rng.random((2, 8, 20, 16)) + 1 + label[1:9, 2:22, 2:18]
        np.save(root / f"case{i}_image.npy", image)
        np.save(root / f"case{i}_label.npy", label)
    return NpyDataset(root, dims)


def test_preprocess_2d_resizes_and_keeps_the_full_label():
    label = np.zeros((90, 120), np.int64)
    label[10:50, 20:70] = 2
    image = np.full((90, 120, 3), 50, np.uint8)
    out = preprocess_2d(image, label, (64, 96))
    assert out["image"].shape == (64, 96, 3) and out["image"].dtype == np.uint8
    assert out["label"].shape == (64, 96) and set(np.unique(out["label"])) == {0, 2}
    np.testing.assert_array_equal(out["label_full"], label)


def test_preprocess_3d_resamples_crops_and_normalises():
    image = np.zeros((2, 10, 24, 20), np.float32)
    image[:, 2:8, 4:20, 3:15] = np.random.default_rng(0).random((2, 6, 16, 12)) * 5 + 3
    label = np.zeros((10, 24, 20), np.int64)
    label[3:6, 6:12, 5:9] = 1
    out = preprocess_3d(image, label, (2.0, 1.0, 1.0), Preprocessing(spacing=(1.0, 1.0, 1.0)))
    # D doubled to 20 slices (6 non-zero -> 12, +1 at each end from trilinear blending), H/W cropped.
    assert out["image"].shape[0] == 2 and out["image"].shape[2:] == (16, 12) and 12 <= out["image"].shape[1] <= 14
    assert out["label"].shape == out["image"].shape[1:] and set(np.unique(out["label"])) == {0, 1}
    assert int(out["label"].sum()) == 2 * 3 * 6 * 4  # nearest resampling of a 3 x 6 x 4 block, D doubled
    nonzero = (out["image"] != 0).any(0)
    for axis in range(3):  # cropped to the non-zero box: every face touches it
        assert nonzero.take(0, axis).any() and nonzero.take(-1, axis).any()
    np.testing.assert_allclose(out["spacing"], [1.0, 1.0, 1.0])
    for c in range(2):
        values = out["image"][c]
        assert abs(values.mean()) < 1e-4 and abs(values.std() - 1) < 1e-3


def test_cache_hits_misses_and_keys(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ds = write_cases(data, 2)
    cache = CaseCache(ds, Preprocessing(image_size=(64, 96)), root=tmp_path / "cache")
    first = cache.get("case0")
    path = cache.path("case0")
    assert path.exists() and path.with_suffix(".full.npz").exists()
    again = cache.get("case0")
    np.testing.assert_array_equal(first["image"], again["image"])
    assert cache.get_full_label("case0").shape == (90, 120)
    # A changed source file or other settings make another entry; nothing half-written is left.
    other = CaseCache(ds, Preprocessing(image_size=(32, 32)), root=tmp_path / "cache")
    assert other.path("case0") != path
    os.utime(ds.files["case0"][0], ns=(1, 1))
    assert CaseCache(ds, Preprocessing(image_size=(64, 96)), root=tmp_path / "cache").path("case0") != path
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def _warm(args):
    data, cache_root = args
    ds = NpyDataset(data, 2)
    CaseCache(ds, Preprocessing(image_size=(64, 96)), root=cache_root).warm(ds.case_ids())
    return True


def test_two_processes_warming_one_cache_never_leave_half_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ds = write_cases(data, 2, n=6)
    with mp.get_context("fork").Pool(2) as pool:
        assert all(pool.map(_warm, [(data, tmp_path / "cache")] * 4))
    cache = CaseCache(ds, Preprocessing(image_size=(64, 96)), root=tmp_path / "cache")
    for case_id in ds.case_ids():
        assert cache.get(case_id)["image"].shape == (64, 96, 3)
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_augment_2d_is_seeded_and_keeps_label_values():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    label = np.zeros((64, 64), np.uint8)
    label[16:48, 16:48] = 1
    label[20:30, 20:30] = 2
    aug = Augment2D()
    a = aug(image, label, seed=3)
    b = aug(image, label, seed=3)
    c = aug(image, label, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert set(np.unique(a[1])) <= {0, 1, 2} and a[0].shape == image.shape


def test_augment_3d_patches_are_seeded():
    rng = np.random.default_rng(0)
    image = rng.random((2, 20, 30, 24)).astype(np.float32)
    label = np.zeros((20, 30, 24), np.uint8)
    label[5:10, 5:15, 5:12] = 1
    aug = Augment3D((16, 16, 16), foreground_ratio=1.0)
    p1, l1 = aug(image, label, seed=7)
    p2, l2 = aug(image, label, seed=7)
    assert p1.shape == (2, 16, 16, 16) and l1.shape == (16, 16, 16)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(l1, l2)
    assert l1.any()  # foreground_ratio 1: every patch is centred on foreground


def test_training_samples_order_is_fixed_per_epoch_and_workers_do_not_matter(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ds = write_cases(data, 2, n=5)
    cache = CaseCache(ds, Preprocessing(image_size=(64, 96)), root=tmp_path / "cache")
    samples = TrainingSamples(cache, ds.case_ids(), seed=1, length=7)
    samples.set_epoch(0)
    first = samples.order
    samples.set_epoch(1)
    assert samples.order != first and len(samples.order) == 7
    samples.set_epoch(0)
    assert samples.order == first
    x0, y0 = samples[3]
    assert x0.shape == (3, 64, 96) and x0.dtype == torch.float32 and y0.dtype == torch.int64
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(samples, batch_size=7, num_workers=workers)
        batches.append(next(iter(loader)))
    torch.testing.assert_close(batches[0][0], batches[1][0])
    torch.testing.assert_close(batches[0][1], batches[1][1])
    assert sample_seed(1, 0, 3) != sample_seed(1, 1, 3)


def test_training_samples_3d(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ds = write_cases(data, 3, n=3)
    cache = CaseCache(ds, Preprocessing(spacing=(1.0, 1.0, 1.0)), root=tmp_path / "cache")
    samples = TrainingSamples(cache, ds.case_ids(), seed=0, length=4, patch_size=(16, 16, 16))
    x, y = samples[0]
    assert x.shape == (2, 16, 16, 16) and y.shape == (16, 16, 16)
    with pytest.raises(ValueError, match="patch_size"):
        TrainingSamples(cache, ds.case_ids(), seed=0)


def test_limited_data_subsets_are_seeded_and_nested():
    from dragsaw.workloads.data import nested_subsets

    ids = [f"ISIC_{i:07d}" for i in range(900)]
    fractions = [0.01] + [round(0.05 * k, 2) for k in range(1, 11)] + [1.0]
    subsets = nested_subsets(ids, fractions, seed=3)
    assert len(subsets[0.01]) == 9 and len(subsets[0.05]) == 45 and subsets[1.0] == sorted(ids)
    for small, large in zip(fractions, fractions[1:]):
        assert set(subsets[small]) < set(subsets[large])
    assert nested_subsets(ids, fractions, seed=3) == subsets
    assert nested_subsets(ids, fractions, seed=4)[0.1] != subsets[0.1]
    assert nested_subsets(ids[:10], [0.01])[0.01]  # never empty
    with pytest.raises(ValueError, match=r"fractions must be in \(0, 1\]"):
        nested_subsets(ids, [0.0])
