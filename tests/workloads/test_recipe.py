"""One trial end to end on synthetic data written in the official layouts: training
with the plug-ins, per-epoch reports with checkpoints, exact resume, 2D and 3D."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from dragsaw.workloads.data import DatasetError
from dragsaw.workloads.recipe import run_trial

PLUGINS_2D = {
    "uafr": {"layers": ["encoder.1", "encoder.2", "decoder.1"]},
    "pdcr": {"sites": [{"layers": ["encoder.2"], "n": 16}, {"layers": ["encoder.3"], "n": 8},
                       {"layers": ["encoder.2", "encoder.3"], "n": 8}]},
}


@pytest.fixture(scope="module")
def isic_root(tmp_path_factory):
    from dragsaw.workloads.data.synthetic import write_isic2016

    root = tmp_path_factory.mktemp("isic")
    write_isic2016(root, n_train=8, n_test=4, size=(72, 96), seed=0)
    return root


def config_2d(root, cache, epochs=2, **train):
    return {
        "data": {"name": "isic2016", "root": str(root)},
        "model": {"name": "unet", "width": 0.125},
        "plugins": PLUGINS_2D,
        "train": {"epochs": epochs, "batch_size": 4, "image_size": (64, 64), **train},
        "seed": 3,
        "cache_dir": str(cache),
    }


def test_trial_reports_every_epoch_and_returns_cases(isic_root, tmp_path):
    reports = []

    def report(metrics, directory):
        reports.append((metrics, sorted(p.name for p in Path(directory).iterdir())))

    result = run_trial(config_2d(isic_root, tmp_path / "cache"), report)
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    assert all(files == ["meta.json", "trial.pt"] for _, files in reports)
    first = reports[0][0]
    for key in ("train_loss", "train_seg_loss", "train_pdcr_loss", "lr", "dice", "jaccard", "accuracy",
                "dice_paper2d", "dice_foreground", "dice_lesion", "epoch_seconds"):
        assert key in first, key
    assert first["train_pdcr_loss"] > 0 and first["convention"] == "paper2d"
    assert len(result["epochs"]) == 2 and result["metrics"]["epoch"] == 2
    rows = result["cases"]
    assert len(rows) == 4 * 2  # 4 test cases x 2 classes
    for row in rows:
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == 72 * 96  # scored at the mask's own size
    assert 0 <= result["metrics"]["dice"] <= 1


def _weights(directory):
    return torch.load(directory / "trial.pt", weights_only=True)["model"]


@pytest.mark.parametrize("selection", [{}, {"selection": "best_val", "val_fraction": 0.25}],
                         ids=["last", "best_val"])
def test_resumed_trial_ends_exactly_like_an_uninterrupted_one(isic_root, tmp_path, selection):
    cfg = config_2d(isic_root, tmp_path / "cache", epochs=3, num_workers=0)
    cfg["eval"] = selection  # best_val: the best epoch so far and its weights travel in the checkpoint
    kept = {}

    def keep(tag):
        def report(metrics, directory):
            target = tmp_path / f"{tag}-{metrics['epoch']}"
            shutil.copytree(directory, target)
            kept[(tag, metrics["epoch"])] = target
        return report

    full = run_trial(cfg, keep("full"))

    class Interrupted(Exception):
        pass

    def interrupt(metrics, directory):
        keep("part")(metrics, directory)
        if metrics["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_trial(cfg, interrupt)
    resumed = run_trial(cfg, keep("resumed"), resume_from=str(kept[("part", 1)]))
    assert [m["epoch"] for m in resumed["epochs"]] == [1, 2, 3]
    a, b = _weights(kept[("full", 3)]), _weights(kept[("resumed", 3)])
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for key in ("dice", "jaccard", "accuracy", "train_loss"):
        assert resumed["metrics"][key] == full["metrics"][key], key
    assert resumed["cases"] == full["cases"]
    if selection:
        for key in ("selected_epoch", "val_dice"):
            assert resumed["metrics"][key] == full["metrics"][key], key
        assert [m["val_dice"] for m in resumed["epochs"]] == [m["val_dice"] for m in full["epochs"]]
        a = torch.load(kept[("full", 3)] / "trial.pt", weights_only=True)["best"]
        b = torch.load(kept[("resumed", 3)] / "trial.pt", weights_only=True)["best"]
        assert a["epoch"] == b["epoch"] and all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])


def test_resume_refuses_a_checkpoint_of_another_config(isic_root, tmp_path):
    kept = {}
    run_trial(config_2d(isic_root, tmp_path / "cache", epochs=1),
              lambda m, d: kept.setdefault("dir", shutil.copytree(d, tmp_path / "ckpt")))
    other = config_2d(isic_root, tmp_path / "cache", epochs=1)
    other["seed"] = 4
    with pytest.raises(ValueError, match="another trial config"):
        run_trial(other, resume_from=str(kept["dir"]))


@pytest.mark.parametrize("change,error,match", [
    (lambda c: c["model"].update(name="unet9"), ValueError, "unknown model 'unet9'.*did you mean 'unet'"),
    (lambda c: c["data"].update(root="/nonexistent/isic"), DatasetError, "root folder /nonexistent/isic does not exist"),
    (lambda c: c["plugins"]["uafr"].update(layers=["encoder.9"]), ValueError, "'encoder.9': no such module or stage"),
    (lambda c: c["train"].update(image_size=(60, 64)), ValidationError, "multiples of 32"),
    (lambda c: c.update(optimiser="sgd"), ValidationError, r"optimiser\n  Extra inputs are not permitted"),
])
def test_bad_configs_fail_before_training(isic_root, tmp_path, change, error, match):
    cfg = config_2d(isic_root, tmp_path / "cache")
    cfg["plugins"] = {k: dict(v) for k, v in cfg["plugins"].items()}
    change(cfg)
    with pytest.raises(error, match=match) as raised:
        run_trial(cfg, lambda m, d: pytest.fail("trained despite a bad config"))
    assert raised.type is error  # not a subclass standing in for it (DatasetError is a ValueError)


def test_3d_trial_with_sliding_windows(tmp_path):
    from dragsaw.workloads.data.synthetic3d import write_msd_brain

    write_msd_brain(tmp_path / "msd", n=5, shape=(32, 32, 32), channels=2, seed=0)
    cfg = {
        "data": {"name": "msd_brain", "root": str(tmp_path / "msd"), "fold": 0},
        "model": {"name": "unet3d", "width": 0.125, "options": {"strides": [1, 2, 2, 2]}},
        "plugins": {"uafr": {"layers": ["encoder.2"]}, "pdcr": {"patch_sizes": [3, 5],
                                                                  "sites": [{"layers": ["encoder.2"], "n": 8}]}},
        "train": {"epochs": 1, "batch_size": 2, "iterations_per_epoch": 2, "patch_size": (16, 16, 16),
                  "loss": "ce_dice"},
        "cache_dir": str(tmp_path / "cache"),
    }
    result = run_trial(cfg)
    assert result["metrics"]["convention"] == "foreground"
    classes = {row["class_index"] for row in result["cases"]}
    assert classes == {0, 1, 2, 3}
    assert {row["case_id"] for row in result["cases"]}  # held-out fold 0 cases were scored
    assert np.isfinite(result["metrics"]["train_loss"])
