"""The trial runner's node-side preparation: synthetic data written where a node lacks it."""

import threading

from dragsaw.platform.launch.trainable import ensure_data
from dragsaw.workloads.data import load_dataset


def test_missing_synthetic_data_is_written_once_even_by_two_trials_at_once(tmp_path, monkeypatch):
    """Two trials on one node find the data missing at the same moment: the file lock lets
    one write it while the other waits and then finds it written (without the lock both
    write, into the same folder, at once)."""
    import time

    from dragsaw.workloads.data import synthetic

    root = str(tmp_path / "node" / "isic")
    trial = {"config": {"data": {"root": root}}}
    context = {"synthetic": {root: {"kind": "isic2016", "n_train": 4, "n_test": 2, "size": [48, 64], "seed": 0}}}
    real_write, writes, errors = synthetic.write_synthetic, [], []

    def slow_write(*args, **kwargs):  # the real writer, counted, after a pause that widens the race
        writes.append(threading.get_ident())
        time.sleep(0.5)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(synthetic, "write_synthetic", slow_write)
    together = threading.Barrier(2)

    def run():
        together.wait()
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
    assert len(writes) == 1, f"the data was written {len(writes)} times"
    dataset = load_dataset("isic2016", root)
    assert len(dataset.splits["train"]) == 4 and len(dataset.splits["test"]) == 2


def test_real_datasets_are_never_written(tmp_path):
    root = str(tmp_path / "absent")
    ensure_data({"config": {"data": {"root": root}}}, {"synthetic": {}})
    assert not (tmp_path / "absent").exists()
