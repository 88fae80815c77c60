"""Warm start (issue 10): the best configurations of earlier experiments in the same store
are enqueued as the first samples of a new study, expressed in the new space; those the
space cannot express are skipped with a note; a password in ``search.storage`` is refused
at validation, before anything is written."""

from __future__ import annotations

import optuna
import pytest

from dragsaw.platform.search.schema import SearchSpec
from dragsaw.platform.search.space import SearchSpace
from dragsaw.platform.search.warm_start import (
    DONE_ATTR,
    SOURCE_ATTR,
    best_configurations,
    warm_start,
)
from dragsaw.platform.store import ResultStore

from .test_store import make_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "placement.pdcr": {"type": "subset", "choices": ["encoder.2", "encoder.3"], "min_size": 0},
    "pdcr.n.{layer}": {"type": "categorical", "choices": [8, 16, 32], "when": "layer in placement.pdcr"},
    "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
}


def config(sites=None, lr=1e-3):
    plugins = {"pdcr": {"sites": sites, "tau": 0.5}} if sites else None
    return {"model": {"name": "unet", "width": 0.125}, "plugins": plugins, "train": {"epochs": 2, "lr": lr}}


def row(experiment, variant, dice, seed=0, status="completed", params=None, **cfg):
    return make_trial(trial_id=f"{variant}-s{seed}", experiment=experiment, variant=variant, seed=seed,
                      status=status, params=params or {}, config=config(**cfg),
                      metrics={"dice": dice, "jaccard": dice - 0.1, "accuracy": 0.9})


@pytest.fixture()
def store(tmp_path):
    s = ResultStore(str(tmp_path / "results"))
    rows = [
        # a grid: baseline, PDCR on encoder.2 (two seeds), a cross-layer site, N outside the choices
        row("paper_grid", "baseline", 0.70), row("paper_grid", "baseline", 0.72, seed=1),
        row("paper_grid", "pdcr_e2", 0.80, sites=[{"layers": ["encoder.2"], "n": 16}], lr=2e-3),
        row("paper_grid", "pdcr_e2", 0.82, seed=1, sites=[{"layers": ["encoder.2"], "n": 16}], lr=2e-3),
        row("paper_grid", "pdcr_cross", 0.90, sites=[{"layers": ["encoder.2", "encoder.3"], "n": 16}]),
        row("paper_grid", "pdcr_n64", 0.85, sites=[{"layers": ["encoder.3"], "n": 64}]),
        # a search: a completed sample, a better pruned one (never taken), one with a parameter
        # the new space lacks
        row("old_search", "old_search.isic2016-0", 0.75, sites=[{"layers": ["encoder.3"], "n": 8}], lr=5e-4,
            params={"placement.pdcr": ["encoder.3"], "pdcr.n.encoder.3": 8, "train.lr": 5e-4}),
        row("old_search", "old_search.isic2016-1", 0.95, status="pruned", params={"placement.pdcr": []}),
        row("old_search", "old_search.isic2016-2", 0.78,
            params={"placement.pdcr": [], "train.lr": 1e-3, "uafr.kernel_size": 3}),
    ]
    for r in rows:
        s.write_trial(r, [], [])
    return s


def test_best_configurations_rank_variants_by_their_mean_over_completed_trials(store):
    best = best_configurations(store, "paper_grid", "dice", "max", 3)
    assert [(c.variant, round(c.value, 3), c.rows) for c in best] == [
        ("pdcr_cross", 0.9, 1), ("pdcr_n64", 0.85, 1), ("pdcr_e2", 0.81, 2)]
    assert [c.variant for c in best_configurations(store, "old_search", "dice", "max", 5)] == [
        "old_search.isic2016-2", "old_search.isic2016-0"]  # the pruned sample is not a candidate
    assert [c.variant for c in best_configurations(store, "paper_grid", "dice", "min", 1)] == ["baseline"]


def test_warm_start_enqueues_what_the_space_expresses_first_and_notes_the_rest(store):
    space = SearchSpace(SPACE)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    lines: list[str] = []
    n = warm_start(study, space, store, ["paper_grid", "old_search", "missing_one", "new_search"], 3, "dice", "max",
                   lines.append, self_name="new_search")
    assert n == 2, lines
    text = "\n".join(lines)
    assert "paper_grid/pdcr_cross (dice 0.9) skipped: placement.pdcr: cross-layer PDCR sites" in text
    assert "paper_grid/pdcr_n64 (dice 0.85) skipped: pdcr.n.encoder.3=64: not one of the space's choices" in text
    assert "paper_grid/pdcr_e2 (dice 0.81 over 2 trials) enqueued" in text
    assert "old_search/old_search.isic2016-2 (dice 0.78) skipped: parameters ['uafr.kernel_size'] are outside" in text
    assert "old_search/old_search.isic2016-0 (dice 0.75 over 1 trials) enqueued" in text
    assert "missing_one skipped: no such experiment in the store" in text
    assert "new_search skipped: it is this experiment" in text
    drawn = []
    for _ in range(3):
        trial = study.ask()
        drawn.append((trial.user_attrs.get(SOURCE_ATTR), space.suggest(trial)))
        study.tell(trial, 0.5)
    assert drawn[0] == ("paper_grid/pdcr_e2", {"placement.pdcr": ["encoder.2"], "pdcr.n.encoder.2": 16,
                                               "train.lr": 2e-3})
    assert drawn[1] == ("old_search/old_search.isic2016-0", {"placement.pdcr": ["encoder.3"], "pdcr.n.encoder.3": 8,
                                                              "train.lr": 5e-4})
    assert drawn[2][0] is None  # then the sampler's own
    assert study.user_attrs[DONE_ATTR] == 2
    assert warm_start(study, space, store, ["paper_grid"], 3, "dice", "max", lines.append) == 0  # once only


def test_a_cut_choice_is_not_expressible(store):
    """A choice the probe cut (here by hand) is no longer in the space: such a configuration is skipped."""
    space = SearchSpace(SPACE)
    cut = space.with_dists({"pdcr.n.encoder.2": space.dist("pdcr.n.encoder.2").model_copy(update={"choices": [8]})})
    study = optuna.create_study(direction="maximize")
    lines: list[str] = []
    assert warm_start(study, cut, store, ["paper_grid"], 3, "dice", "max", lines.append) == 0
    assert "pdcr_e2 (dice 0.81) skipped: pdcr.n.encoder.2=16: not one of the space's choices [8]" in "\n".join(lines)


def test_warm_start_schema():
    spec = SearchSpec.model_validate({"num_samples": 2, "space": SPACE,
                                      "warm_start": {"experiments": ["paper_grid"], "top": 2}})
    assert spec.warm_start is not None and spec.warm_start.top == 2
    with pytest.raises(ValueError, match=r"experiment names match"):
        SearchSpec.model_validate({"num_samples": 2, "space": SPACE, "warm_start": {"experiments": ["Bad Name"]}})
    with pytest.raises(ValueError, match="at least 1"):
        SearchSpec.model_validate({"num_samples": 2, "space": SPACE, "warm_start": {"experiments": []}})


def test_a_storage_url_with_a_password_is_refused_without_repeating_it(tmp_path, capsys):
    from dragsaw.platform.cli import main

    from .test_cli import write_spec

    spec = write_spec(tmp_path, text=(
        f"name: s\nstore: {tmp_path / 'results'}\n"
        f"datasets: [{{name: isic2016, root: {tmp_path / 'isic'}, synthetic: {{n_train: 8, n_test: 4, size: [72, 96]}}}}]\n"
        "model: {name: unet, width: 0.125}\ntrain: {epochs: 1, batch_size: 4, image_size: [64, 64]}\n"
        "search:\n  num_samples: 2\n  storage: postgresql://alice:hunter2secret@127.0.0.1:5432/optuna\n"
        "  space: {train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}\n"))
    for command in (["validate"], ["run", "--dry-run"], ["run"]):
        assert main([*command, str(spec)]) == 2
        captured = capsys.readouterr()
        assert "hunter2secret" not in captured.err + captured.out
        assert "holds a password" in captured.err and "PGPASSWORD" in captured.err, captured.err
    assert not (tmp_path / "results").exists()


SEARCH = """\
name: warm
store: {store}
datasets:
  - name: isic2016
    root: {root}
    synthetic: {{n_train: 8, n_test: 4, size: [72, 96], seed: 0}}
model: {{name: unet, width: 0.125}}
train: {{epochs: 1, batch_size: 4, image_size: [64, 64]}}
seeds: [0]
resources: {{cpus: 1}}
concurrency: 2
search:
  num_samples: 3
  sampler: random
  warm_start: {{experiments: [tiny], top: 2}}
  space:
    placement.uafr: {{type: subset, choices: [encoder.2, encoder.3], min_size: 0}}
    placement.pdcr: {{type: subset, choices: [encoder.2, encoder.5], min_size: 0}}
    pdcr.n.{{layer}}: {{type: categorical, choices: [8, 32], when: "layer in placement.pdcr"}}
    train.lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
"""


@pytest.mark.integration
@pytest.mark.slow
def test_a_search_warm_started_from_a_grid_in_the_same_store_runs_its_variants_first(tmp_path):
    """End to end: the quick grid (baseline, UAFR on encoder.2) runs, then a search whose space
    has a choice that cannot run (N=32 on unet's 4x4 encoder.5 at 64 px: cut, with a note) is
    warm-started from it: its first two samples are the grid's two variants."""
    from optuna.storages.journal import JournalFileBackend

    from .test_cli import dragsaw, write_spec

    store = tmp_path / "results"
    grid = write_spec(tmp_path, store=store)
    out = dragsaw("run", grid, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    spec = tmp_path / "warm.yaml"
    spec.write_text(SEARCH.format(store=store, root=tmp_path / "isic"))
    out = dragsaw("run", spec, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert 'note: search.space["pdcr.n.encoder.5"]: choice 32 cut' in out.stdout, out.stdout
    assert "warm start: tiny/uafr" in out.stdout and "warm start: tiny/baseline" in out.stdout, out.stdout
    journal = store / "_experiments" / "warm" / "study.journal"
    study = optuna.load_study(study_name="warm.isic2016",
                              storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), trials
    sources = {t.user_attrs.get(SOURCE_ATTR): t.params for t in trials[:2]}
    lr = trials[0].params["train.lr"]
    assert sources == {"tiny/baseline": {"placement.uafr": "", "placement.pdcr": "", "train.lr": lr},
                       "tiny/uafr": {"placement.uafr": "encoder.2", "placement.pdcr": "", "train.lr": lr}}
    assert all(t.params.get("pdcr.n.encoder.5", 8) == 8 for t in trials)
