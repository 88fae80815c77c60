"""The trial runner's node-side preparation: synthetic data written where a node lacks it."""

import threading

from dragsaw.platform.launch.trainable import ensure_data
from dragsaw.workloads.data import load_dataset


def test_missing_synthetic_data_is_written_once_even_by_two_trials_at_once(tmp_path):
    root = str(tmp_path / "node" / "isic")
    trial = {"config": {"data": {"root": root}}}
    context = {"synthetic": {root: {"kind": "isic2016", "n_train": 4, "n_test": 2, "size": [48, 64], "seed": 0}}}
    errors = []

    def run():
        try:
            ensure_data(trial, context)
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    dataset = load_dataset("isic2016", root)
    assert len(dataset.splits["train"]) == 4 and len(dataset.splits["test"]) == 2


def test_real_datasets_are_never_written(tmp_path):
    root = str(tmp_path / "absent")
    ensure_data({"config": {"data": {"root": root}}}, {"synthetic": {}})
    assert not (tmp_path / "absent").exists()
