"""Search spaces: the YAML language, define-by-run suggestion with real Optuna trials,
conditional parameters, params -> trial config, and the Optuna plumbing (samplers,
persisted SQLite studies, opened without Optuna notices)."""

from __future__ import annotations

import optuna
import pytest

from dragsaw.platform.search.conditions import parse_condition
from dragsaw.platform.search.samplers import make_sampler
from dragsaw.platform.search.schema import SearchSpec
from dragsaw.platform.search.space import SearchSpace, SpaceError
from dragsaw.platform.search.storage import default_storage_url, make_storage
from dragsaw.platform.search.study import StudySpec, open_study
from dragsaw.workloads.recipe import TrialConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "train.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "train.pdcr_weight": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
    "placement.pdcr": {"type": "subset", "choices": ["encoder.2", "encoder.3", "encoder.4", "decoder.1"],
                       "min_size": 0},
    "pdcr.n.{layer}": {"type": "int", "low": 8, "high": 128, "log": True, "when": "layer in placement.pdcr"},
    "pdcr.tau": {"type": "float", "low": 0.05, "high": 1.0, "when": "len(placement.pdcr) > 0"},
    "pdcr.patch_sizes": {"type": "categorical", "choices": [[5, 7, 9, 11], [3, 5, 7]],
                         "when": "len(placement.pdcr) > 0"},
    "pdcr.p": {"type": "int", "low": 1, "high": 3, "when": "len(placement.pdcr) > 0"},
    "placement.uafr": {"type": "subset", "choices": ["encoder.1", "decoder.2"], "min_size": 0},
    "uafr.kernel_size": {"type": "categorical", "choices": [1, 3, 5, 7], "when": "len(placement.uafr) > 0"},
}
BASE = {"model": {"name": "deeplabv3plus", "width": 0.25, "options": {}},
        "plugins": {"pdcr": {"sites": [{"layers": ["encoder.2"], "n": 128, "projection": 16}], "tau": 0.5}},
        "train": {"epochs": 2, "lr": 1e-3}, "eval": {}}


class Recorder:
    """A trial that answers every suggestion with the low end and records the calls."""

    def __init__(self):
        self.calls = []

    def suggest_float(self, name, low, high, *, step=None, log=False):
        self.calls.append(name)
        return low

    def suggest_int(self, name, low, high, *, step=1, log=False):
        self.calls.append(name)
        return low

    def suggest_categorical(self, name, choices):
        self.calls.append(name)
        return choices[-1]


def valid_config(config: dict) -> TrialConfig:
    data = {"name": "isic2016", "root": "/x"}
    return TrialConfig.model_validate({**config, "data": data}).for_classes(2)


# -- suggest ------------------------------------------------------------------------------
def test_fixed_trial_suggests_conditionals_only_where_their_condition_holds():
    space = SearchSpace(SPACE)
    fixed = space.to_optuna({"train.lr": 0.001, "train.pdcr_weight": 0.01, "placement.pdcr": ["encoder.4", "encoder.2"],
                             "pdcr.n.encoder.2": 64, "pdcr.n.encoder.4": 16, "pdcr.tau": 0.2,
                             "pdcr.patch_sizes": [3, 5, 7], "pdcr.p": 2, "placement.uafr": []})
    assert fixed["placement.pdcr"] == "encoder.2,encoder.4" and fixed["pdcr.patch_sizes"] == "[3, 5, 7]"
    params = space.suggest(optuna.trial.FixedTrial(fixed))
    assert params["placement.pdcr"] == ["encoder.2", "encoder.4"] and params["placement.uafr"] == []
    assert params["pdcr.patch_sizes"] == [3, 5, 7]
    assert "pdcr.n.encoder.3" not in params and "pdcr.n.decoder.1" not in params  # not placed
    assert "uafr.kernel_size" not in params  # no UAFR placed
    assert list(params) == ["train.lr", "train.pdcr_weight", "placement.pdcr", "pdcr.n.encoder.2", "pdcr.n.encoder.4",
                            "pdcr.tau", "pdcr.patch_sizes", "pdcr.p", "placement.uafr"]


def test_suggestion_order_is_declaration_order_with_templates_in_choice_order():
    trial = Recorder()
    params = SearchSpace(SPACE).suggest(trial)  # categorical -> last choice: every layer placed
    assert trial.calls == ["train.lr", "train.pdcr_weight", "placement.pdcr", "pdcr.n.encoder.2", "pdcr.n.encoder.3",
                           "pdcr.n.encoder.4", "pdcr.n.decoder.1", "pdcr.tau", "pdcr.patch_sizes", "pdcr.p",
                           "placement.uafr", "uafr.kernel_size"]
    assert params["placement.uafr"] == ["encoder.1", "decoder.2"]


def test_real_study_records_conditional_params_only_when_present():
    space = SearchSpace(SPACE)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3))
    seen_absent = seen_present = False
    for _ in range(25):
        trial = study.ask()
        params = space.suggest(trial)
        placed = params["placement.pdcr"]
        assert set(trial.params) == set(params)  # Optuna recorded exactly what was suggested
        for layer in ["encoder.2", "encoder.3", "encoder.4", "decoder.1"]:
            assert (f"pdcr.n.{layer}" in params) == (layer in placed)
        assert ("pdcr.tau" in params) == bool(placed)
        seen_absent |= not placed
        seen_present |= bool(placed)
        assert 8 <= min([v for k, v in params.items() if k.startswith("pdcr.n.")] or [8])
        valid_config(space.apply(BASE, params))
        study.tell(trial, 0.5)
    assert seen_absent and seen_present
    assert len(study.trials) == 25


def test_subset_respects_sizes_and_random_sampling_covers_them():
    space = SearchSpace({"placement.uafr": {"type": "subset", "choices": ["a", "b", "c"], "min_size": 1,
                                            "max_size": 2}})
    assert space.param("placement.uafr").dist.encoded_choices() == ["a", "b", "c", "a,b", "a,c", "b,c"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {tuple(space.suggest(study.ask())["placement.uafr"]) for _ in range(60)}
    assert drawn == {("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")}


# -- apply --------------------------------------------------------------------------------
def test_apply_turns_params_into_a_trial_config():
    space = SearchSpace(SPACE)
    params = {"train.lr": 0.004, "train.pdcr_weight": 0.02, "placement.pdcr": ["encoder.2", "encoder.3"],
              "pdcr.n.encoder.3": 32, "pdcr.tau": 0.3, "pdcr.patch_sizes": [5, 7, 9, 11], "pdcr.p": 2,
              "placement.uafr": ["decoder.2"], "uafr.kernel_size": 5}
    config = space.apply(BASE, params)
    pdcr = config["plugins"]["pdcr"]
    # the base site on encoder.2 lends N and projection; encoder.3 is new with its searched N
    assert pdcr["sites"] == [{"layers": ["encoder.2"], "n": 128, "projection": 16}, {"layers": ["encoder.3"], "n": 32}]
    assert pdcr["tau"] == 0.3 and pdcr["patch_sizes"] == [5, 7]  # P = 2 of the chosen series
    assert config["plugins"]["uafr"] == {"layers": ["decoder.2"], "kernel_size": 5}
    assert config["train"] == {"epochs": 2, "lr": 0.004, "pdcr_weight": 0.02}
    assert BASE["plugins"]["pdcr"]["tau"] == 0.5  # the base is not modified
    cfg = valid_config(config)
    assert cfg.plugins is not None and cfg.plugins.uafr is not None and cfg.plugins.uafr.num_maps == 2
    # nothing placed: the plug-ins go away
    assert space.apply(BASE, {"placement.pdcr": [], "placement.uafr": []})["plugins"] is None


def test_apply_global_n_and_model_options():
    space = SearchSpace({"placement.pdcr": {"type": "subset", "choices": ["encoder.2", "encoder.3"]},
                         "pdcr.n": {"type": "int", "low": 8, "high": 64},
                         "model.options.output_stride": {"type": "categorical", "choices": [8, 16]}})
    config = space.apply(BASE, {"placement.pdcr": ["encoder.2", "encoder.3"], "pdcr.n": 24,
                                "model.options.output_stride": 8})
    assert [s["n"] for s in config["plugins"]["pdcr"]["sites"]] == [24, 24]
    assert config["model"]["options"] == {"output_stride": 8}


def test_apply_refuses_params_that_make_no_config():
    space = SearchSpace({"placement.uafr": {"type": "subset", "choices": ["encoder.1"], "min_size": 0},
                         "uafr.kernel_size": {"type": "int", "low": 1, "high": 7, "step": 2},
                         "pdcr.p": {"type": "int", "low": 1, "high": 5}})
    with pytest.raises(SpaceError) as err:
        space.apply(BASE, {"placement.uafr": [], "uafr.kernel_size": 3, "pdcr.p": 5})
    text = str(err.value)
    assert "no uafr is placed" in text and "len(placement.uafr) > 0" in text
    assert "`1 <= pdcr.p <= len(patch_sizes)` must hold" in text
    with pytest.raises(SpaceError, match="did you mean 'pdcr.p'"):
        space.apply(BASE, {"pdcr.pp": 2})
    no_n = SearchSpace({"placement.pdcr": {"type": "subset", "choices": ["encoder.3"]}})
    with pytest.raises(SpaceError, match="have no N"):
        no_n.apply({"plugins": None}, {"placement.pdcr": ["encoder.3"]})


# -- the language's errors ----------------------------------------------------------------
@pytest.mark.parametrize("name, dist, expected", [
    ("train.lr", {"type": "float", "low": 0.1, "high": 0.01}, "`low <= high` must hold"),
    ("train.lr", {"type": "float", "low": 0.0, "high": 0.01, "log": True}, "`low > 0` must hold for log=true"),
    ("train.lr", {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}, "cannot be used together"),
    ("train.batch_size", {"type": "int", "low": 2, "high": 16, "log": True, "step": 2}, "`step` must be 1"),
    ("train.lr", {"type": "flaot", "low": 0, "high": 1}, "did you mean 'float'"),
    ("train.lr", {"type": "float", "low": 0, "hihg": 1}, "did you mean 'high'"),
    ("pdcr.patch_sizes", {"type": "categorical", "choices": [[5], [5]]}, "must be distinct"),
    ("placement.pdcr", {"type": "subset", "choices": ["a", "b"], "min_size": 3}, "min_size <= max_size"),
    ("placement.pdcr", {"type": "categorical", "choices": ["a"]}, "needs `type: subset`"),
    ("train.lr", {"type": "subset", "choices": ["a"]}, "for placement.<plug-in> parameters only"),
    ("plugins.pdcr.tau", {"type": "float", "low": 0.1, "high": 1}, "write plug-in options without `plugins.`"),
    ("pdcr.tauu", {"type": "float", "low": 0.1, "high": 1}, "did you mean 'tau'"),
    ("train.lrr", {"type": "float", "low": 0.1, "high": 1}, "did you mean 'lr'"),
    ("uafr.n.{layer}", {"type": "int", "low": 1, "high": 2, "when": "layer in placement.uafr"}, "pdcr.<field>.{layer}"),
    ("train.lr", {"type": "float", "low": 0.1, "high": 1, "when": "__import__('os')"}, "Call is not allowed"),
    ("train.lr", {"type": "float", "low": 0.1, "high": 1, "when": "pdcr.tau > 0.5"}, "declared before"),
    ("train.lr", {"type": "float", "low": 0.1, "high": 1, "when": "x ="}, "cannot parse"),
    ("optimizer.lr", {"type": "float", "low": 0.1, "high": 1}, "names start with one of"),
])
def test_space_language_errors_say_what_is_valid(name, dist, expected):
    with pytest.raises(SpaceError) as err:
        SearchSpace({name: dist})
    assert expected in str(err.value)


def test_space_reports_every_problem_at_once():
    with pytest.raises(SpaceError) as err:
        SearchSpace({"train.lr": {"type": "float", "low": 1, "high": 0},
                     "pdcr.n.{layer}": {"type": "int", "low": 8, "high": 16},
                     "model.depth": {"type": "int", "low": 1, "high": 2}})
    locs = [loc for loc, _ in err.value.problems]
    assert ("train.lr",) in locs and ("pdcr.n.{layer}",) in locs and ("model.depth",) in locs
    assert () in locs  # a template without placements to draw layers from


def test_conditions_treat_absent_params_as_none():
    cond = parse_condition("layer in placement.pdcr and not (model.name == 'fcn' or train.lr >= 0.01)")
    assert cond.names == ("placement.pdcr", "model.name", "train.lr") and cond.uses_layer
    assert cond({"placement.pdcr": ["a"], "model.name": "unet", "train.lr": 0.001}, layer="a")
    assert not cond({"placement.pdcr": ["a"], "model.name": "unet", "train.lr": 0.1}, layer="a")
    assert not cond({}, layer="a")  # `in None` is false; `None >= 0.01` is false
    assert parse_condition("len(placement.uafr) == 0")({})
    assert parse_condition("train.batch_size in [4, 8] and -1 < 0")({"train.batch_size": 8})


# -- Optuna plumbing ----------------------------------------------------------------------
def _study(space=SPACE, **search) -> StudySpec:
    spec = SearchSpec.model_validate({"num_samples": 4, "space": space, **search})
    base = {"data": {"name": "isic2016", "root": "/x", "fold": "test"}, **BASE}
    return StudySpec(study_name="exp.isic2016", experiment="exp", dataset="isic2016", folds=("test",), seed=0,
                     fraction=1.0, num_classes=2, base_config=base, search=spec, resources={"cpu": 1.0, "gpu": 0.0})


def test_make_sampler_names():
    assert isinstance(make_sampler("tpe", 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("nsgaii", 0), optuna.samplers.NSGAIISampler)
    with pytest.raises(ValueError, match="grids are written as `variants`/`axes`"):
        make_sampler("grid", 0)
    with pytest.raises(ValueError, match="did you mean 'random'"):
        make_sampler("randm", 0)


def test_sqlite_study_persists_and_reloads_with_the_same_trials(tmp_path):
    study_spec = _study()
    storage = make_storage(None, str(tmp_path / "results"))
    assert storage.url == f"sqlite:///{tmp_path / 'results' / 'optuna.db'}"
    study = open_study(storage, study_spec)
    sample = study_spec.space.suggest
    asked = []
    for value in (0.3, 0.6, 0.5):
        trial = study.ask()
        params = sample(trial)
        study_spec.trial(params)  # every sample makes a valid trial
        asked.append(trial.params)
        study.tell(trial, value)
    del study, storage
    again = open_study(make_storage(None, str(tmp_path / "results")), study_spec)
    assert [t.params for t in again.trials] == asked
    assert [t.value for t in again.trials] == [0.3, 0.6, 0.5]
    assert again.best_value == 0.6 and again.direction == optuna.study.StudyDirection.MAXIMIZE


def test_multi_objective_study(tmp_path):
    study_spec = _study(objectives=[{"metric": "dice", "mode": "max"}, {"metric": "train_seconds"}],
                        sampler="nsgaii")
    assert study_spec.directions == ["maximize", "minimize"]
    storage = make_storage(f"sqlite:///{tmp_path / 'mo.db'}", "./unused")
    study = open_study(storage, study_spec)
    trial = study.ask()
    study_spec.space.suggest(trial)
    study.tell(trial, [0.8, 12.0])
    assert len(study.best_trials) == 1


def test_opening_a_study_prints_one_dragsaw_line_and_no_optuna_notice(tmp_path):
    """Optuna logs "A new study created" and "Using an existing study" at INFO; a search
    prints neither, but one line of its own, and leaves Optuna's verbosity as it was."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    optuna_logger = logging.getLogger("optuna")
    optuna_logger.addHandler(handler)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    lines: list[str] = []
    try:
        storage = make_storage(None, str(tmp_path / "results"))
        first = open_study(storage, _study(), echo=lines.append)
        first.tell(first.ask(), 0.5)
        open_study(storage, _study(), echo=lines.append)
        assert optuna.logging.get_verbosity() == optuna.logging.INFO  # restored
    finally:
        optuna_logger.removeHandler(handler)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert [r.getMessage() for r in records if r.levelno < logging.WARNING] == []
    assert lines == ["study exp.isic2016: created", "study exp.isic2016: reopened, 1 samples recorded"]


def test_remote_store_keeps_the_study_locally_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    url, note = default_storage_url("s3://bucket/results", "exp")
    assert url == f"sqlite:///{tmp_path / 'results' / 'exp' / 'optuna.db'}" and "s3://bucket/results" in note
    with caplog.at_level("WARNING", logger="dragsaw.platform.search"):
        storage = make_storage(None, "s3://bucket/results", experiment="exp")
    assert storage.url == url and (tmp_path / "results" / "exp" / "optuna.db").exists()
    assert note in caplog.text
    assert default_storage_url("file:///data/results")[0] == "sqlite:////data/results/optuna.db"
    with pytest.raises(ValueError, match="name the experiment"):
        default_storage_url("gs://b/r")


@pytest.mark.parametrize("module", ["search.space", "search.probe", "search.schema", "search.samplers",
                                    "search.study", "experiment.configs", "experiment.schema"])
def test_each_module_imports_on_its_own(module):
    """The search language and the spec schema import each other's leaf modules: each imports
    first in a fresh interpreter (no circular import through a package __init__)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import dragsaw.platform.{module}"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
