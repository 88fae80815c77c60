"""A search steered by the validation cases (``metric: val_dice`` with ``eval.selection:
best_val``), never by the evaluation fold: refused at the spec boundary without best_val; run
with ASHA, every reported step of the study is a validation Dice, and a sample's value is the
selected epoch's (the best validated one)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from dragsaw.platform.cli import main

from .test_cli import dragsaw

SPEC = """\
name: valsearch
store: {store}
datasets:
  - name: isic2016
    root: {root}
    synthetic: {{n_train: 10, n_test: 4, size: [72, 96], seed: 0}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 3, batch_size: 4, image_size: [64, 64]}}
eval: {eval}
seeds: [0]
resources: {{cpus: 1}}
concurrency: 2
search:
  num_samples: 3
  sampler: random
  seed: 0
  scheduler: {{type: asha, grace_period: 1, reduction_factor: 2}}
  metric: val_dice
  space:
    train.lr: {{type: float, low: 1.0e-3, high: 1.0e-1, log: true}}
"""


def test_val_dice_without_best_val_is_refused_naming_the_field(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(store=tmp_path / "r", root=tmp_path / "isic", eval="{selection: last}"))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "search.metric" in err and "val_dice is measured only with eval.selection: best_val" in err, err
    spec.write_text(SPEC.format(store=tmp_path / "r", root=tmp_path / "isic",
                                eval="{selection: best_val, val_fraction: 0.3}"))
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.slow
def test_asha_steered_by_validation_dice(tmp_path):
    from optuna.storages.journal import JournalFileBackend

    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(store=tmp_path / "results", root=tmp_path / "isic",
                                eval="{selection: best_val, val_fraction: 0.3}"))
    out = dragsaw("run", spec, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    journal = tmp_path / "results" / "_experiments" / "valsearch" / "study.journal"
    study = optuna.load_study(study_name="valsearch.isic2016",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(study.get_trials()) == 3 and done
    for t in done:
        steps = t.intermediate_values
        assert sorted(steps) == [1, 2, 3] and all(0 <= v <= 1 for v in steps.values())
        assert t.value == max(steps.values())  # the selected epoch is the best validated one
