"""A search keeps the final weights of its best ``checkpoints.top_k`` samples only, and a
pruned sample keeps nothing (``search_run``'s hooks, on a real Optuna study and store)."""

import optuna
from optuna.trial import TrialState, create_trial

from dragsaw.platform.launch.checkpoints import keep_top_samples
from dragsaw.platform.store.checkpoints import CheckpointStore


def _stored(store: CheckpointStore, tmp_path, trial_id: str) -> None:
    file = tmp_path / f"{trial_id}.pt"
    file.write_bytes(b"w" * 10)
    store.save_weights(trial_id, file)


def test_a_study_keeps_the_weights_of_its_best_top_k_samples(tmp_path):
    url = str(tmp_path / "store")
    store = CheckpointStore(url, "srch")
    study = optuna.create_study(direction="maximize")
    scores = {"s-0": 0.5, "s-1": 0.9, "s-2": 0.1, "s-3": 0.7}
    for sample, value in scores.items():
        study.add_trial(create_trial(value=value, user_attrs={"dragsaw_sample": sample}))
        for fold in (0, 1):
            _stored(store, tmp_path, f"{sample}-f{fold}")
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"dragsaw_sample": "s-4"}))
    trials = {s: [f"{s}-f0", f"{s}-f1"] for s in scores}
    kept = keep_top_samples(study, url, "srch", trials, top_k=2, minimize=False)
    assert kept == ["s-1", "s-3"]
    assert sorted(store.sizes()) == ["s-1-f0/weights.pt", "s-1-f1/weights.pt", "s-3-f0/weights.pt",
                                     "s-3-f1/weights.pt"]
    assert keep_top_samples(study, url, "srch", trials, top_k=1, minimize=True) == ["s-2"]  # s-2 is gone
    assert store.sizes() == {}


def test_a_pruned_sample_keeps_no_checkpoint(tmp_path):
    import datetime as dt
    import json

    from dragsaw.platform.launch.search_run import mark_pruned
    from dragsaw.platform.store import ResultStore

    url = str(tmp_path / "store")
    store = CheckpointStore(url, "srch")
    src = tmp_path / "ck"
    src.mkdir()
    (src / "trial.pt").write_bytes(b"0" * 100)
    store.save("s-7", src)
    now = dt.datetime.now(dt.timezone.utc)
    row = {"experiment": "srch", "trial_id": "s-7", "attempt": 1, "variant": "s-7", "dataset": "isic2016",
           "fold": "test", "seed": 0, "spec_hash": "h", "git_commit": "g", "hardware": "cpu", "node": "n",
           "started_at": now, "ended_at": now, "status": "stopped", "params_json": "{}",
           "config_json": json.dumps({"data": {"name": "isic2016"}}), "versions_json": "{}"}
    assert mark_pruned(ResultStore(url), row, 2) == 1
    assert store.sizes() == {}
    (stored,) = ResultStore(url).trial_attempts("srch").to_pylist()
    assert stored["status"] == "pruned"
