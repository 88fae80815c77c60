"""Checkpoints keep what resumption and the report need, no more: a finished grid keeps its
models' weights only (sizes in the store against parameter bytes), a running trial its latest
resume checkpoint (uploaded by the spec's rule), and a resumed trial still resumes exactly."""

import json
from pathlib import Path

import pytest
import torch

from dragsaw.platform.launch.checkpoints import Uploads
from dragsaw.platform.launch.trainable import run_one
from dragsaw.platform.store import ResultStore
from dragsaw.platform.store.checkpoints import CheckpointStore
from dragsaw.workloads.data.synthetic import write_isic2016

from .test_cli import dragsaw
from .test_launch import spec_file


def _state_bytes(config: dict) -> int:
    """Bytes of the model's parameters and buffers, from a trial rebuilt from its stored config."""
    from dragsaw.workloads.recipe import Trial

    trial = Trial(config)
    try:
        return sum(t.numel() * t.element_size() for t in trial.model.state_dict().values())
    finally:
        trial.close()


@pytest.mark.integration
@pytest.mark.slow
def test_a_finished_grid_keeps_only_its_models_weights(tmp_path):
    store_url = str(tmp_path / "results")
    spec = spec_file(tmp_path, store_url, epochs=3, name="kept")
    out = dragsaw("run", spec)
    assert out.returncode == 0, out.stderr[-3000:]
    sizes = CheckpointStore(store_url, "kept").sizes()
    trials = ResultStore(store_url).trial_attempts("kept").to_pylist()
    assert {r["status"] for r in trials} == {"completed"} and len(trials) == 2
    assert sorted(sizes) == sorted(f"{r['trial_id']}/weights.pt" for r in trials)  # no trial.pt, no meta.json
    for row in trials:
        weights = _state_bytes(json.loads(row["config_json"]))
        stored = sizes[f"{row['trial_id']}/weights.pt"]
        # the weights and torch's framing (a few KB); an optimizer state would double it
        assert weights <= stored <= weights + 64 * 1024, (row["variant"], stored, weights)
        metrics = json.loads(row["metrics_json"])
        assert metrics["checkpoint_uploads"] >= 1 and metrics["upload_share"] < 1
    tune = tmp_path / "results" / "_tune"  # Tune's own copies: none (no tune.Checkpoint is reported)
    assert not [p for p in tune.rglob("checkpoint_*")] if tune.exists() else True
    # the report rebuilds its pictures from the weights-only files
    from dragsaw.platform.report import write_report

    ids = [r["trial_id"] for r in trials]
    html = write_report(store_url, "kept", tmp_path / "report", trials_for_pictures=ids,
                        max_picture_cases=1).read_text()
    uafr = next(r["trial_id"] for r in trials if r["variant"] == "uafr")
    assert f'id="uncertainty-{uafr}"' in html and 'id="tsne"' in html and "no stored checkpoint" not in html


@pytest.fixture(scope="module")
def isic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("isic")
    write_isic2016(root, n_train=8, n_test=3, size=(72, 96), seed=1)
    return root


def _trial(root: Path, cache: Path, trial_id: str, epochs: int) -> dict:
    config = {"data": {"name": "isic2016", "root": str(root)}, "model": {"name": "unet", "width": 0.125},
              "train": {"epochs": epochs, "batch_size": 4, "image_size": [64, 64]}, "device": "cpu",
              "cache_dir": str(cache)}
    return {"experiment": "ck", "trial_id": trial_id, "variant": "baseline", "dataset": "isic2016", "fold": "test",
            "seed": 0, "params": {}, "config": config, "resources": {"cpu": 1}}


def _context(store_url: str, **checkpoints) -> dict:
    return {"store_url": store_url, "spec_hash": "h", "git_commit": "g", "versions": {}, "synthetic": {},
            "checkpoints": checkpoints}


class Crash(RuntimeError):
    pass


def test_a_resumed_trial_resumes_exactly_from_its_last_upload_and_keeps_weights_only(tmp_path, isic):
    """Uploads every 2 epochs; the trial dies after epoch 3 (its epoch-2 checkpoint is the
    stored one), the next attempt resumes from epoch 2 and ends with the very weights of an
    uninterrupted run; the completed trial keeps weights.pt and no resume checkpoint."""
    store_url = str(tmp_path / "store")
    cache = tmp_path / "cache"
    run_one(_trial(isic, cache, "straight", 4), _context(store_url, every_epochs=2, upload_share=0))
    seen = []

    def crash_after_3(metrics):
        seen.append(metrics["epoch"])
        if metrics["epoch"] == 3:
            raise Crash("killed")

    context = _context(store_url, every_epochs=2, upload_share=0)
    with pytest.raises(Crash, match="killed"):
        run_one(_trial(isic, cache, "resumed", 4), context, on_epoch=crash_after_3)
    store = CheckpointStore(store_url, "ck")
    assert sorted(store.sizes()) == ["resumed/meta.json", "resumed/trial.pt", "straight/weights.pt"]
    final = run_one(_trial(isic, cache, "resumed", 4), context)
    assert final["resumed_from_epoch"] == 2 and final["checkpoint_uploads"] == 0  # epoch 4 is the last
    assert sorted(store.sizes()) == ["resumed/weights.pt", "straight/weights.pt"]
    load = {t: torch.load(Path(store.weights(t) or ""), weights_only=True) for t in ("straight", "resumed")}
    assert load["resumed"]["epoch"] == load["straight"]["epoch"] == 4
    for name, tensor in load["straight"]["model"].items():
        assert torch.equal(tensor, load["resumed"]["model"][name]), name


def test_keep_none_leaves_nothing_and_final_weights_match_the_trained_model(tmp_path, isic):
    store_url = str(tmp_path / "store")
    run_one(_trial(isic, tmp_path / "cache", "gone", 2), _context(store_url, keep="none"))
    assert CheckpointStore(store_url, "ck").sizes() == {}


def test_upload_rule_every_k_epochs_t_minutes_or_within_its_share_of_training_time(tmp_path):
    """The share rule uploads the first epoch and then as often as the uploads' time allows;
    every_epochs and every_minutes force an upload however slow it is."""
    share = Uploads({"upload_share": 0.1, "every_minutes": 1e9})
    assert share.due(1, 10.0)  # nothing uploaded yet
    share.upload_seconds, share.last_duration, share.last_epoch, share.since_last = 5.0, 5.0, 1, 0.0
    assert not share.due(2, 10.0)  # 5 + 5 > 0.1 x 20
    assert [share.due(e, 10.0) for e in range(3, 12)] == [False] * 7 + [True, True]  # 10 <= 0.1 x 100
    epochs = Uploads({"upload_share": 0, "every_epochs": 3, "every_minutes": 1e9})
    assert [epochs.due(e, 1.0) for e in (1, 2, 3)] == [False, False, True]
    minutes = Uploads({"upload_share": 0, "every_minutes": 1})
    assert [minutes.due(e, 25.0) for e in (1, 2, 3)] == [False, False, True]
    store = CheckpointStore(str(tmp_path / "s"), "x")
    src = tmp_path / "ck"
    src.mkdir()
    (src / "trial.pt").write_bytes(b"0" * 1000)
    (src / "meta.json").write_text("{}")
    minutes.upload(store, "t", str(src), 3)
    assert minutes.uploaded_bytes == 1002 and minutes.uploads == 1 and minutes.since_last == 0.0
    assert not minutes.due(4, 25.0)


def test_dry_run_prints_the_checkpoints_storage_and_upload_volume(tmp_path):
    """Two trials of a width-0.125 U-Net: the store keeps 2 x its weights after the run
    (sized on the meta device); `checkpoints: none` keeps nothing; every_epochs 1 uploads
    every epoch but the last."""
    from dragsaw.platform.launch.checkpoints import RESUME_FACTOR, model_bytes

    weights = model_bytes({"name": "unet", "width": 0.125}, 3, 2)
    assert weights and 100_000 < weights < 2_000_000
    spec = spec_file(tmp_path, str(tmp_path / "results"), epochs=5, name="vol")
    text = spec.read_text()
    spec.write_text(text + "checkpoints: {every_epochs: 1, upload_share: 0}\n")
    out = dragsaw("run", "--dry-run", spec)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("checkpoints (keep final)"))
    mb = lambda n: f"{n / 1e6:,.1f} MB"  # noqa: E731
    assert f"{mb(2 * weights)} kept after the run" in line, line
    assert f"{mb(2 * (4 * RESUME_FACTOR * weights + weights))} uploaded in all" in line, line
    spec.write_text(text + "checkpoints: none\n")
    out = dragsaw("run", "--dry-run", spec)
    assert "checkpoints (keep none): 0.0 MB kept after the run" in out.stdout, out.stdout
    spec.write_text(text + "checkpoints: all\n")
    out = dragsaw("run", "--dry-run", spec)
    assert out.returncode == 2 and "checkpoints" in out.stderr and "'final'" in out.stderr, out.stderr[-2000:]
