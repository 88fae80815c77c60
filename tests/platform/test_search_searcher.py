"""The ask/tell searcher and where studies live, without Ray running: Tune's calls to a
searcher (suggest, on_trial_result, on_trial_complete) are made here in the order Tune makes
them, on real Optuna studies; the S3 journal runs against a real S3 endpoint (moto_server)."""

from __future__ import annotations

import threading

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

import dragsaw.platform.experiment  # noqa: F401 - before search.schema: the two import each other
from dragsaw.platform.search.schema import SearchSpec
from dragsaw.platform.search.storage import journal_location, study_storage
from dragsaw.platform.search.study import StudySpec
from dragsaw.platform.search.tune_searcher import (
    SAMPLE_ATTR,
    StudySearcher,
    finished_samples,
    sample_id,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"train.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
         "placement.uafr": {"type": "subset", "choices": ["encoder.1", "decoder.2"], "min_size": 0}}
BASE = {"data": {"name": "isic2016", "root": "/x", "fold": "test"},
        "model": {"name": "unet", "width": 0.125, "options": {}}, "plugins": None,
        "train": {"epochs": 4, "lr": 1e-3}, "eval": {}}


def study_spec(**search) -> StudySpec:
    spec = SearchSpec.model_validate({"num_samples": 4, "space": SPACE, **search})
    return StudySpec(study_name="exp.isic2016", experiment="exp", dataset="isic2016", folds=("test",), seed=0,
                     fraction=1.0, num_classes=2, base_config=BASE, search=spec, resources={"cpu": 1.0})


def new_study(spec: StudySpec, storage=None) -> optuna.Study:
    return optuna.create_study(storage=storage, study_name=spec.study_name, directions=spec.directions,
                               load_if_exists=True)


def ask(searcher: StudySearcher, tid: str) -> dict:
    config = searcher.suggest(tid)
    assert isinstance(config, dict), config
    return config


def run_to(searcher: StudySearcher, tid: str, epochs: list[int], final: dict | None) -> dict:
    """Tune's calls for one trial: results at ``epochs``, then complete with ``final`` (which
    Tune does not pass to on_trial_result when the scheduler stopped the trial on it)."""
    config = ask(searcher, tid)
    for e in epochs:
        searcher.on_trial_result(tid, {"epoch": e, "dice": 0.1 * e})
    searcher.on_trial_complete(tid, result=final)
    return config


def test_pruned_complete_and_failed_samples_get_optuna_states_and_every_step():
    spec = study_spec()
    study = new_study(spec)
    searcher = StudySearcher(spec, study, budget=3)
    done = run_to(searcher, "a", [1, 2, 3], {"epoch": 4, "dice": 0.7, "done_trial": 1})
    pruned = run_to(searcher, "b", [1], {"epoch": 2, "dice": 0.25})  # ASHA stopped it on epoch 2
    failed = run_to(searcher, "c", [], {"epoch": 0, "trial_failed": 1, "done_trial": 1})
    assert searcher.suggest("d") == Searcher.FINISHED
    by_number = {t.number: t for t in study.trials}
    a, b, c = (by_number[x["number"]] for x in (done, pruned, failed))
    assert a.state == TrialState.COMPLETE and a.value == 0.7
    assert a.intermediate_values == {1: 0.1, 2: 0.2, 3: pytest.approx(0.3), 4: 0.7}
    assert b.state == TrialState.PRUNED and b.intermediate_values == {1: 0.1, 2: 0.25}  # the stop step too
    assert c.state == TrialState.FAIL and "cannot run" in c.user_attrs["fail_reason"]
    assert [t.user_attrs[SAMPLE_ATTR] for t in (a, b, c)] == [done["sample"], pruned["sample"], failed["sample"]]
    assert done["sample"] == "exp.isic2016-0" and searcher.outcomes[pruned["sample"]] == ("PRUNED", 2)
    assert finished_samples(study) == 3


def test_tpe_sees_pruned_samples_as_pruned_not_as_final_values():
    """What TPE learns from: the pruned sample's value is its last intermediate one, and its
    state tells TPE it was cut short (TPE ranks pruned trials below complete ones)."""
    spec = study_spec()
    study = new_study(spec)
    searcher = StudySearcher(spec, study, budget=2)
    run_to(searcher, "a", [1, 2, 3], {"epoch": 4, "dice": 0.4, "done_trial": 1})
    run_to(searcher, "b", [1, 2, 3], {"epoch": 3, "dice": 0.9})
    states = {t.state for t in study.trials}
    assert states == {TrialState.COMPLETE, TrialState.PRUNED}
    assert study.best_value == 0.4  # a cut-short 0.9 is never the best


def test_an_interrupted_sample_stays_running_and_a_new_searcher_resumes_it_under_its_number():
    spec = study_spec()
    study = new_study(spec)
    stopping = {"now": False}
    first = StudySearcher(spec, study, budget=2, stopping=lambda: stopping["now"])
    run_to(first, "a", [1, 2, 3], {"epoch": 4, "dice": 0.5, "done_trial": 1})
    config = ask(first, "b")
    first.on_trial_result("b", {"epoch": 1, "dice": 0.3})
    stopping["now"] = True  # the driver is being stopped: Tune completes the trial without done_trial
    first.on_trial_complete("b", result={"epoch": 2, "dice": 0.35})
    assert study.trials[config["number"]].state == TrialState.RUNNING
    # A new driver: budget = num_samples - finished samples; the RUNNING one comes first.
    again = StudySearcher(spec, study, budget=spec.search.num_samples - finished_samples(study))
    assert [t.number for t in again.resumable] == [config["number"]]
    resumed = again.suggest("b2")
    assert resumed == config  # same number, sample id and parameters: its checkpoints are found
    again.on_trial_result("b2", {"epoch": 1, "dice": 0.3})  # a step it reported before: kept once
    again.on_trial_complete("b2", result={"epoch": 4, "dice": 0.6, "done_trial": 1})
    trial = study.trials[config["number"]]
    assert trial.state == TrialState.COMPLETE and trial.intermediate_values == {1: 0.3, 4: 0.6}
    assert len(study.trials) == 2  # nothing was asked twice


def test_an_invalid_sample_fails_at_once_and_uses_its_budget():
    spec = study_spec()
    study = new_study(spec)
    calls = []

    def validate(params, sample):
        calls.append(sample)
        if len(calls) == 1:
            raise ValueError("pdcr.n.encoder.5: n=128 > 16 positions at 128 px")

    searcher = StudySearcher(spec, study, budget=2, validate=validate)
    config = ask(searcher, "a")
    assert config["number"] == 1 and calls == ["exp.isic2016-0", "exp.isic2016-1"]
    assert study.trials[0].state == TrialState.FAIL and "n=128" in study.trials[0].user_attrs["fail_reason"]
    assert searcher.suggest("b") == Searcher.FINISHED


def test_multi_objective_samples_complete_and_prune():
    spec = study_spec(objectives=[{"metric": "dice", "mode": "max"}, {"metric": "train_seconds", "mode": "min"}],
                      sampler="nsgaii")
    study = new_study(spec)
    searcher = StudySearcher(spec, study, budget=2)
    searcher.suggest("a")
    searcher.on_trial_complete("a", result={"epoch": 4, "dice": 0.8, "train_seconds": 12.0, "done_trial": 1})
    run_to(searcher, "b", [1], {"epoch": 2, "dice": 0.2, "train_seconds": 3.0})
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert study.trials[0].values == [0.8, 12.0] and len(study.best_trials) == 1


def test_sample_ids_are_store_names():
    assert sample_id("exp.isic2016", 7) == "exp.isic2016-7"
    assert sample_id("my study/v2", 0) == "my-study-v2-0"


def test_local_store_keeps_a_journal_and_an_existing_sqlite_study(tmp_path):
    storage, where = study_storage(None, str(tmp_path / "results"), "exp")
    assert where == journal_location(str(tmp_path / "results"), "exp")
    assert where.endswith("/_experiments/exp/study.journal")
    spec = study_spec()
    study = new_study(spec, storage)
    study.tell(study.ask(), 0.5)
    fresh, _ = study_storage(None, str(tmp_path / "results"), "exp")
    assert [t.value for t in new_study(spec, fresh).trials] == [0.5]
    legacy = tmp_path / "old"
    legacy.mkdir()
    optuna.create_study(storage=f"sqlite:///{legacy / 'optuna.db'}", study_name="x")
    assert study_storage(None, str(legacy), "exp")[1] == str(legacy / "optuna.db")


def test_a_database_url_must_not_carry_a_password_and_other_stores_are_refused():
    with pytest.raises(ValueError, match="PGPASSWORD") as err:
        study_storage("postgresql://me:hunter22@127.0.0.1:1/optuna", "./results", "exp")
    assert "hunter22" not in str(err.value)
    with pytest.raises(ValueError, match="database URL"):
        study_storage(None, "gs://bucket/results", "exp")


@pytest.mark.integration
def test_s3_journal_rebuilds_the_study_on_a_fresh_machine_and_orders_racing_writers(s3_store_url):
    spec = study_spec()
    storage, where = study_storage(None, s3_store_url, "exp")
    assert where == f"{s3_store_url}/_experiments/exp/study-journal"
    study = new_study(spec, storage)
    searcher = StudySearcher(spec, study, budget=2)
    run_to(searcher, "a", [1, 2], {"epoch": 4, "dice": 0.6, "done_trial": 1})
    run_to(searcher, "b", [1], {"epoch": 2, "dice": 0.3})
    fresh, _ = study_storage(None, s3_store_url, "exp")  # nothing cached: read from the store alone
    again = new_study(spec, fresh)
    assert [(t.state, t.intermediate_values) for t in again.trials] == [
        (TrialState.COMPLETE, {1: 0.1, 2: 0.2, 4: 0.6}), (TrialState.PRUNED, {1: 0.1, 2: 0.3})]
    race(f"{s3_store_url}/race")


@pytest.mark.integration
def test_s3_journal_orders_racing_writers_on_seaweedfs(monkeypatch):
    """SeaweedFS answers a create-only conflict without moto's Condition field (s3fs then
    raises OSError, not FileExistsError): the journal still takes the next number."""
    import boto3

    from .seaweed_server import ACCESS_KEY, SECRET_KEY, start_seaweed, stop_seaweed

    proc, endpoint, folder = start_seaweed()
    try:
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                     region_name="us-east-1").create_bucket(Bucket="journal")
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DRAGSAW_S3_ENDPOINT", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        race("s3://journal/results/race")
    finally:
        stop_seaweed(proc, folder)


def race(url: str) -> None:
    """Eight writers (each its own backend, as separate drivers would be) race for the next
    objects: every record lands once, each writer's in its order, readable from any offset."""
    from dragsaw.platform.search.journal import ObjectJournalBackend

    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            backend = ObjectJournalBackend(url)
            for i in range(5):
                backend.append_logs([{"writer": k, "i": i}])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    logs = list(ObjectJournalBackend(url).read_logs(0))
    assert sorted((r["writer"], r["i"]) for r in logs) == [(k, i) for k in range(8) for i in range(5)]
    for k in range(8):  # each writer's records in its own order
        assert [r["i"] for r in logs if r["writer"] == k] == list(range(5))
    assert list(ObjectJournalBackend(url).read_logs(38)) == logs[38:]


BEST_SPEC = """\
name: ranked
store: {store}
datasets:
  - name: isic2016
    root: {root}
    synthetic: {{n_train: 8, n_test: 4, size: [72, 96], seed: 0}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 4, batch_size: 4, image_size: [64, 64]}}
search:
  num_samples: 4
  space:
    train.lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
    placement.uafr: {{type: subset, choices: [encoder.1, decoder.2], min_size: 0}}
"""


def test_best_ranks_complete_then_pruned_then_failed_and_exports_a_valid_grid(tmp_path, capsys):
    """``dragsaw best`` on a study filled through the searcher (no Ray): ranks, JSON keys,
    the exported grid passes ``dragsaw validate``; bad input exits 2."""
    import json

    import yaml

    from dragsaw.platform.cli import main
    from dragsaw.platform.experiment.grid import spec_hash
    from dragsaw.platform.experiment.loading import load_spec
    from dragsaw.platform.launch.run import save_record
    from dragsaw.platform.search.study import studies

    store = str(tmp_path / "results")
    path = tmp_path / "ranked.yaml"
    path.write_text(BEST_SPEC.format(store=store, root=tmp_path / "isic"))
    spec = load_spec(str(path))
    save_record(store, spec, spec_hash(spec))
    from dragsaw.platform.experiment.datasets import preview_datasets

    (study_spec_,) = studies(spec, preview_datasets(spec)[0])
    storage, _ = study_storage(None, store, "ranked")
    study = new_study(study_spec_, storage)
    searcher = StudySearcher(study_spec_, study, budget=4)
    run_to(searcher, "a", [1, 2, 3], {"epoch": 4, "dice": 0.6, "done_trial": 1})
    run_to(searcher, "b", [1], {"epoch": 2, "dice": 0.9})  # pruned: its 0.9 is cut short
    run_to(searcher, "c", [], {"epoch": 0, "trial_failed": 1, "done_trial": 1})
    run_to(searcher, "d", [1, 2, 3], {"epoch": 4, "dice": 0.7, "done_trial": 1})
    capsys.readouterr()
    assert main(["best", "ranked", "--store", store, "-f", "json", "--top", "4",
                 "--export", str(tmp_path / "confirm.yaml")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["trial_id"], r["state"], r["value"]) for r in rows] == [
        ("ranked.isic2016-3", "COMPLETE", 0.7), ("ranked.isic2016-0", "COMPLETE", 0.6),
        ("ranked.isic2016-1", "PRUNED", 0.9), ("ranked.isic2016-2", "FAIL", None)]
    assert set(rows[0]) >= {"trial_id", "number", "state", "value", "params"}
    assert isinstance(rows[0]["params"]["placement.uafr"], list)  # as the space names and decodes them
    grid = yaml.safe_load((tmp_path / "confirm.yaml").read_text())
    assert list(grid["variants"]) == ["baseline", "ranked.isic2016-3", "ranked.isic2016-0"]  # finished only
    assert main(["validate", str(tmp_path / "confirm.yaml")]) == 0
    assert "ranked-confirm: 9 trials" in capsys.readouterr().out
    assert main(["best", "nope", "--store", store]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["best", "ranked", "--store", store, "--top", "0"])
    assert exit_.value.code == 2


def test_a_sample_whose_config_is_invalid_is_refused_by_the_launcher_check():
    """The check ``run_searches`` gives the searcher builds the sample's trials as the workers
    would: a configuration the models refuse raises ValueError (then FAIL, never run)."""
    from dragsaw.platform.launch.search_run import _validator, sample_trials

    spec = study_spec()
    (trial,) = sample_trials(spec, "exp.isic2016-4", {"train.lr": 1e-3, "placement.uafr": ["decoder.2"]})
    assert trial["trial_id"] == trial["variant"] == "exp.isic2016-4"
    with pytest.raises(ValueError, match="lr"):
        _validator(spec)({"train.lr": -1.0, "placement.uafr": []}, "exp.isic2016-5")
