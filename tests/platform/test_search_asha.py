"""A search with ASHA through the ``dragsaw`` command: the study holds PRUNED samples (with
the step they were stopped on) and COMPLETE ones, the store records the pruned ones as
``pruned``, ``dragsaw status`` counts them so, one id links the progress lines, the store,
the leaderboard and the study, and ``dragsaw best --export`` writes a grid that validates
and runs."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from dragsaw.platform.store import ResultStore

from .test_cli import dragsaw

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = """\
name: asha
store: {store}
datasets:
  - name: isic2016
    root: {root}
    synthetic: {{n_train: 8, n_test: 4, size: [72, 96], seed: 0}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 6, batch_size: 4, image_size: [64, 64]}}
plugins: {{pdcr: {{sites: [{{layers: [encoder.2], n: 16}}]}}}}
seeds: [0]
resources: {{cpus: 1}}
concurrency: 2
search:
  num_samples: 8
  sampler: tpe
  seed: 0
  scheduler: {{type: asha, grace_period: 3, reduction_factor: 2}}
  metric: dice
  mode: max
  space:
    train.lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true}}
    train.pdcr_weight: {{type: float, low: 0.001, high: 0.1, log: true}}
"""


def test_asha_prunes_into_the_study_the_store_and_status_and_best_exports_a_runnable_grid(tmp_path):
    from optuna.storages.journal import JournalFileBackend

    store_url = str(tmp_path / "results")
    spec = tmp_path / "asha.yaml"
    spec.write_text(SPEC.format(store=store_url, root=tmp_path / "isic"))
    out = dragsaw("run", spec, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    journal = tmp_path / "results" / "_experiments" / "asha" / "study.journal"
    study = optuna.load_study(study_name="asha.isic2016",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert len(trials) == 8 and TrialState.PRUNED in states and TrialState.COMPLETE in states, states
    assert set(states) <= {TrialState.PRUNED, TrialState.COMPLETE}
    for t in trials:
        steps = sorted(t.intermediate_values)
        # every reported step, the one ASHA stopped a sample on (its rung, epoch 3) included
        assert steps == (list(range(1, 7)) if t.state == TrialState.COMPLETE else [1, 2, 3]), (t.number, steps)
    ids = {t.user_attrs["dragsaw_sample"]: t for t in trials}
    assert sorted(ids) == sorted(f"asha.isic2016-{t.number}" for t in trials)

    rows = ResultStore(store_url).trial_attempts("asha").to_pylist()
    assert len(rows) == 8 and {r["trial_id"] for r in rows} == set(ids)
    for r in rows:
        trial = ids[r["trial_id"]]
        assert r["variant"] == r["trial_id"]
        if trial.state == TrialState.PRUNED:
            assert r["status"] == "pruned" and r["error"] is None
            assert json.loads(r["metrics_json"]) == {"pruned_at_epoch": 3}
        else:
            assert r["status"] == "completed"
    pruned = sum(s == TrialState.PRUNED for s in states)
    for sid, t in ids.items():  # the progress lines and the leaderboard name samples by the same id
        assert (f"pruned {sid} at epoch 3" if t.state == TrialState.PRUNED else f"finished {sid}") in out.stdout
        assert (f" {sid} " in out.stdout.split("experiment ")[-1]) == (t.state == TrialState.COMPLETE)
    assert f"samples this run: {8 - pruned} COMPLETE, {pruned} PRUNED" in out.stdout
    status = dragsaw("status", "--store", store_url)
    assert f"asha: {8 - pruned} completed, 0 failed, 0 interrupted, {pruned} pruned" in status.stdout

    best = dragsaw("best", "asha", "--store", store_url, "--top", "2", "-f", "json",
                   "--export", tmp_path / "confirm.yaml")
    assert best.returncode == 0, best.stderr
    top = json.loads(best.stdout)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -(t.value or 0.0))
    assert [s["trial_id"] for s in top] == [complete[0].user_attrs["dragsaw_sample"],
                                            complete[1].user_attrs["dragsaw_sample"]]
    assert {k: top[0][k] for k in ("number", "state", "value")} == {
        "number": complete[0].number, "state": "COMPLETE", "value": complete[0].value}
    assert top[0]["params"] == complete[0].params
    grid = yaml.safe_load((tmp_path / "confirm.yaml").read_text())
    assert list(grid["variants"]) == ["baseline"] + [s["trial_id"] for s in top]
    assert grid["seeds"] == [0, 1, 2] and grid["datasets"][0]["folds"] == ["test"] and grid["search"] is None
    assert grid["variants"][top[0]["trial_id"]]["train"] == {k.split(".")[1]: v for k, v in top[0]["params"].items()}
    valid = dragsaw("validate", tmp_path / "confirm.yaml")
    assert valid.returncode == 0 and "9 trials" in valid.stdout, valid.stdout + valid.stderr
    confirm = dragsaw("run", tmp_path / "confirm.yaml", "--set", "seeds=[0]", "--set", "train.epochs=1",
                      timeout=900)
    assert confirm.returncode == 0, confirm.stdout[-3000:] + confirm.stderr[-3000:]
    assert "3 trials finished, 0 failed" in confirm.stdout


MO_SPEC = """\
name: mo-folds
store: {store}
datasets:
  - name: mc
    root: {root}
    synthetic: {{n: 10, size: [64, 64], seed: 0}}
    folds: [test, train]
model: {{name: unet, width: 0.125}}
train: {{epochs: 2, batch_size: 4, image_size: [64, 64]}}
seeds: [0]
resources: {{cpus: 1}}
concurrency: 2
search:
  num_samples: 3
  objective: mean_over_folds
  objectives: [{{metric: dice, mode: max}}, {{metric: train_seconds, mode: min}}]
  sampler: nsgaii
  space:
    train.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
"""


def test_a_multi_objective_search_scored_over_folds_keeps_one_id_per_sample(tmp_path):
    store_url = str(tmp_path / "results")
    spec = tmp_path / "mo.yaml"
    spec.write_text(MO_SPEC.format(store=store_url, root=tmp_path / "mc"))
    out = dragsaw("run", spec, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "samples this run: 3 COMPLETE" in out.stdout
    rows = ResultStore(store_url).trial_attempts("mo-folds").to_pylist()
    samples = [f"mo-folds.mc-{n}" for n in range(3)]
    assert sorted(r["trial_id"] for r in rows) == sorted(f"{s}-f{f}" for s in samples for f in ("test", "train"))
    assert all(r["variant"] == r["trial_id"].rsplit("-f", 1)[0] and r["status"] == "completed" for r in rows)
    best = dragsaw("best", "mo-folds", "--store", store_url, "-f", "json")
    ranked = json.loads(best.stdout)
    assert sorted(r["trial_id"] for r in ranked) == samples
    by_id = {r["trial_id"]: r for r in ranked}
    for sample in samples:  # the study's values: the mean over the two folds of each objective
        dice = [json.loads(r["metrics_json"])["dice"] for r in rows if r["variant"] == sample]
        assert by_id[sample]["values"][0] == pytest.approx(sum(dice) / 2)
        assert by_id[sample]["state"] == "COMPLETE" and len(by_id[sample]["values"]) == 2
    front = [r["pareto"] for r in ranked]
    assert front == sorted(front, reverse=True) and front[0]  # the Pareto front first


def test_a_sample_that_cannot_run_is_fail_in_the_study_and_never_retried(tmp_path):
    """A sample whose configuration the model refuses at run time (here enqueued by hand with
    PDCR n = 2048 on a layer of at most 32 x 32 positions, as a warm start could) ends FAIL in the
    study after one attempt, recorded ``failed`` with the reason; the search goes on."""
    from optuna.storages.journal import JournalFileBackend

    from dragsaw.platform.search.storage import journal_location

    store_url = str(tmp_path / "results")
    spec = tmp_path / "fail.yaml"
    text = SPEC.format(store=store_url, root=tmp_path / "isic").replace("name: asha", "name: cannot-run")
    text = text.replace("num_samples: 8", "num_samples: 2").replace("epochs: 6", "epochs: 1")
    text = text.split("  space:")[0] + "  space:\n    pdcr.n: {type: int, low: 8, high: 16}\n"
    spec.write_text(text.replace("  scheduler: {type: asha, grace_period: 3, reduction_factor: 2}\n", ""))
    journal = journal_location(store_url, "cannot-run")
    Path(journal).parent.mkdir(parents=True)
    storage = optuna.storages.JournalStorage(JournalFileBackend(journal))
    study = optuna.create_study(storage=storage, study_name="cannot-run.isic2016", direction="maximize")
    study.enqueue_trial({"pdcr.n": 2048}, skip_if_exists=False)
    out = dragsaw("run", spec, timeout=900)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]  # a failed sample: exit 1
    trials = optuna.load_study(study_name="cannot-run.isic2016", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].params == {"pdcr.n": 2048}
    rows = ResultStore(store_url).trial_attempts("cannot-run").to_pylist()
    failed = [r for r in rows if r["trial_id"] == "cannot-run.isic2016-0"]
    assert len(failed) == 1 and failed[0]["status"] == "failed" and "2048" in failed[0]["error"], failed
    assert "FAILED cannot-run.isic2016-0" in out.stdout and "samples this run: 1 COMPLETE, 1 FAIL" in out.stdout
