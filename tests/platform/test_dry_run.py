"""``validate`` and ``run --dry-run`` preview an experiment without its data (issue 12,
point 4): the whole grid, its resources, an estimate of its cost and the dataset roots
missing here; nothing is written. Grids expand from the datasets' outlines (official
splits), to exactly the trials the data gives once it is there."""

from pathlib import Path

import pytest

from dragsaw.platform.cli import main
from dragsaw.platform.experiment.datasets import outline, prepare_datasets, preview_datasets
from dragsaw.platform.experiment.grid import expand
from dragsaw.platform.experiment.loading import load_spec
from dragsaw.platform.launch.preview import preview
from dragsaw.platform.store import ResultStore

from .test_cli import write_spec
from .test_store import make_cases, make_trial

PAPER = Path(__file__).resolve().parents[2] / "configs" / "experiments" / "paper"


def test_the_dry_run_of_table4_lists_its_45_trials_without_the_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # its relative roots and store resolve here: nothing is there
    assert main(["run", str(PAPER / "table4.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("paper_table4: 45 trials, 8 CPU / 1 GPU each"), out
    assert out.count(" seed ") == 45 and out.count("epochs 300 ") == 45
    assert "estimated cost: " in out and "GPU-hours" in out and "13,500 trial-epochs" in out
    assert "dataset roots missing here (1):" in out and f"isic2016: {tmp_path}/data/ISIC2016" in out
    assert list(tmp_path.iterdir()) == []  # no store, no data, no Tune folder


def test_validate_of_a_smoke_spec_counts_its_trials_before_the_look_alike_is_written(tmp_path, monkeypatch,
                                                                                    capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(PAPER / "table4.yaml"), "--smoke"]) == 0
    out = capsys.readouterr().out
    assert "paper_table4: 15 trials, 1 CPU / 0 GPU each" in out and "CPU-hours" in out
    assert "(the synthetic look-alike is written there when the experiment runs)" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("synthetic", ["{n_train: 6, n_test: 3, size: [72, 96], seed: 0}", None])
def test_outlines_expand_to_the_trials_the_data_gives(tmp_path, synthetic, monkeypatch):
    """Same trial ids, folds and configs from the outline (no data) as from the written data."""
    monkeypatch.setenv("DRAGSAW_CACHE", str(tmp_path / "cache"))
    spec = load_spec(write_spec(tmp_path), ["seeds=[0, 1]"] + ([f"datasets[0].synthetic={synthetic}"]
                                                               if synthetic else []))
    if synthetic is None:  # a registered dataset's official splits: isic2016 is train/test
        assert set(outline(spec.datasets[0]).splits) == {"train", "test"}
        return
    without, missing = preview_datasets(spec)
    assert len(missing) == 1 and not (tmp_path / "isic").exists()
    before = expand(spec, without)
    after = expand(spec, prepare_datasets(spec))  # writes the look-alike
    assert [(t.trial_id, t.fold, t.config) for t in before] == [(t.trial_id, t.fold, t.config) for t in after]
    assert len(before) == 4


def test_the_cost_is_measured_from_stored_epochs_when_there_are_some(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    store = ResultStore(str(tmp_path / "results"))
    epochs = [{"epoch": e, "epoch_seconds": s} for e, s in ((1, 10.0), (2, 30.0))]
    store.write_trial(make_trial(experiment="tiny"), epochs, make_cases())
    result = preview(spec, str(tmp_path / "results"))
    assert result.basis == "measured: 20.0 s per epoch, the mean of 2 stored epochs"
    assert result.seconds == pytest.approx(2 * 1 * 20.0)  # 2 trials x 1 epoch x 20 s
    fresh = preview(spec, str(tmp_path / "elsewhere"))
    assert fresh.basis.startswith("estimated from the models' FLOPs") and fresh.seconds and fresh.seconds > 0
    assert not (tmp_path / "elsewhere").exists()


def test_status_expects_the_grid_of_a_stored_spec_without_its_data(tmp_path):
    from dragsaw.platform.experiment.grid import spec_hash
    from dragsaw.platform.launch.run import save_record
    from dragsaw.platform.launch.status import status

    url = str(tmp_path / "results")
    spec = load_spec(PAPER / "table4.yaml", [f"store={url}", f"datasets[0].root={tmp_path / 'absent'}"])
    save_record(url, spec, spec_hash(spec))
    ResultStore(url).write_trial(make_trial(experiment="paper_table4"), [], make_cases())
    assert status(url).startswith("paper_table4: 1 completed, 0 failed, 0 interrupted; 45 expected; ")
