"""Model selection (``eval.selection``): the validation cases of ``best_val`` come from the
training cases only, deterministically per seed; the selected epoch is the argmax of the
validation curve and the final metrics are those of its weights; ``last`` is unchanged."""

import shutil

import numpy as np
import pytest
import torch

from dragsaw.workloads.canonical import config_hash
from dragsaw.workloads.data import fold_split, load_dataset
from dragsaw.workloads.recipe import Trial, TrialConfig, run_trial
from dragsaw.workloads.recipe.checkpoint import save_weights
from dragsaw.workloads.recipe.config import ConfigError
from dragsaw.workloads.recipe.results import epoch_scores, result_rows
from dragsaw.workloads.recipe.selection import carve_validation, split_cases


@pytest.fixture(scope="module")
def isic_root(tmp_path_factory):
    from dragsaw.workloads.data.synthetic import write_isic2016

    root = tmp_path_factory.mktemp("isic")
    write_isic2016(root, n_train=10, n_test=4, size=(72, 96), seed=0)
    return root


def config(root, cache, epochs=4, lr=0.01, **ev):
    """A small 2D trial; with lr 0.01 over 4 epochs its validation Dice peaks at epoch 3,
    before the last (the cosine schedule's end moves the weights away again)."""
    return {
        "data": {"name": "isic2016", "root": str(root)},
        "model": {"name": "unet", "width": 0.125},
        "train": {"epochs": epochs, "batch_size": 4, "image_size": (64, 64), "lr": lr, "num_workers": 0},
        "eval": ev,
        "seed": 3,
        "cache_dir": str(cache),
    }


def test_validation_cases_come_from_training_cases_only_and_are_deterministic(isic_root, tmp_path):
    dataset = load_dataset("isic2016", str(isic_root))
    all_train, all_eval = fold_split(dataset, "test")
    for fraction in (1.0, 0.6):
        cfg = TrialConfig.model_validate(config(isic_root, tmp_path, selection="best_val", val_fraction=0.3))
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"fraction": fraction})})
        train, val, held = split_cases(dataset, cfg)
        assert held == all_eval
        assert len(val) == max(1, round(0.3 * round(fraction * len(all_train))))
        assert not set(val) & set(held) and not set(train) & set(held)
        assert not set(val) & set(train)
        assert set(val) <= set(all_train) and set(train) <= set(all_train)
        assert split_cases(dataset, cfg) == (train, val, held)  # the same every time
    ids = [f"case{i:02d}" for i in range(40)]
    draws = {seed: carve_validation(ids, 0.1, seed) for seed in range(4)}
    assert all(sorted(t + v) == ids and len(v) == 4 for t, v in draws.values())
    assert carve_validation(list(reversed(ids)), 0.1, 2)[1] == draws[2][1]  # the ids' order does not matter
    assert len({tuple(v) for _, v in draws.values()}) == 4  # another seed, another draw
    assert carve_validation(ids, 0.001, 0)[1] and len(carve_validation(ids, 0.001, 0)[1]) == 1  # at least 1


def test_last_carves_nothing_and_keeps_its_config_hash(isic_root, tmp_path):
    dataset = load_dataset("isic2016", str(isic_root))
    base = config(isic_root, tmp_path)
    last = TrialConfig.model_validate(base)
    train, val, _ = split_cases(dataset, last)
    assert train == fold_split(dataset, "test")[0] and val == []
    assert "selection" not in last.model_dump()["eval"]  # so configs from before it keep their hash
    explicit = TrialConfig.model_validate({**base, "eval": {"selection": "last", "val_fraction": 0.5}})
    assert config_hash(explicit) == config_hash(last)
    best = TrialConfig.model_validate({**base, "eval": {"selection": "best_val"}})
    assert config_hash(best) != config_hash(last)
    assert TrialConfig.model_validate(best.model_dump()) == best


def test_a_training_split_too_small_to_carve_from_is_a_config_error(isic_root, tmp_path):
    with pytest.raises(ConfigError, match=r"training split has 1 case\(s\).*at least 2 training cases"):
        carve_validation(["only"], 0.1, 0)
    cfg = config(isic_root, tmp_path, selection="best_val")
    cfg["data"]["fraction"] = 0.1  # 1 of 10 training cases
    with pytest.raises(ConfigError, match="eval.selection best_val"):
        run_trial(cfg, lambda m, d: pytest.fail("trained despite a training split too small"))


def test_best_val_selects_the_argmax_epoch_and_evaluates_its_weights(isic_root, tmp_path):
    cfg = config(isic_root, tmp_path / "cache", selection="best_val", val_fraction=0.2)
    kept = {}

    def keep(metrics, directory):
        kept[metrics["epoch"]] = shutil.copytree(directory, tmp_path / f"epoch{metrics['epoch']}")

    result = run_trial(cfg, keep)
    curve = [e["val_dice"] for e in result["epochs"]]
    metrics = result["metrics"]
    assert len(curve) == 4 and all(0 <= v <= 1 for v in curve)
    assert metrics["selected_epoch"] == int(np.argmax(curve)) + 1
    assert metrics["selected_epoch"] < 4, f"the construction should peak before the last epoch: {curve}"
    assert metrics["val_dice"] == max(curve)
    assert metrics["selection"] == "best_val" and metrics["n_val_cases"] == 2 and metrics["val_fraction"] == 0.2

    # the final metrics are an evaluation of the selected epoch's weights, not the last epoch's
    trial = Trial(cfg)
    selected = torch.load(kept[metrics["selected_epoch"]] / "trial.pt", weights_only=True)["model"]
    trial.model.load_state_dict(selected)
    counts = trial.evaluate()
    expected = epoch_scores(counts, trial.dataset.classes, trial.dims, "nan")
    for key in ("dice", "jaccard", "accuracy", "dice_foreground"):
        assert metrics[key] == expected[key], key
    assert metrics["dice"] != result["epochs"][-1]["dice"]  # the last epoch scored otherwise
    assert result["cases"] == result_rows(counts, trial.dataset.classes, "nan")
    # and the weights a finished trial keeps for its report are the selected ones
    weights = save_weights(kept[4], tmp_path / "weights.pt")
    payload = torch.load(weights, weights_only=True)
    assert payload["epoch"] == metrics["selected_epoch"]
    assert all(torch.equal(payload["model"][k], selected[k]) for k in selected)


def test_val_every_validates_every_kth_epoch_and_the_last(isic_root, tmp_path):
    cfg = config(isic_root, tmp_path / "cache", epochs=3, selection="best_val", val_every=2)
    result = run_trial(cfg)
    assert [("val_dice" in e) for e in result["epochs"]] == [False, True, True]
    assert result["metrics"]["selected_epoch"] in (2, 3)


def test_last_is_the_last_epochs_weights(isic_root, tmp_path):
    result = run_trial(config(isic_root, tmp_path / "cache", epochs=2))
    assert not any("val_dice" in e for e in result["epochs"])
    assert not {"selection", "selected_epoch", "val_dice"} & set(result["metrics"])
    for key in ("dice", "jaccard", "accuracy"):
        assert result["metrics"][key] == result["epochs"][-1][key]
