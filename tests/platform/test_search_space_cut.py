"""A space that can run (issue 10): choices that cannot run at the spec's image size and
model are cut before the study starts, never sampled; a parameter left with no runnable
choice, or a range whose low end cannot run, refuses the spec. The cut is deterministic and
a reopened study whose space changed is refused rather than mixing choice lists."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend

from dragsaw.platform.search import probe
from dragsaw.platform.search.distributions import CategoricalDist
from dragsaw.platform.search.probe import effective_space
from dragsaw.platform.search.schema import SearchSpec
from dragsaw.platform.search.space import SearchSpace
from dragsaw.platform.search.study import SPACE_ATTR, StudySpec, check_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

# unet at 64x64: encoder.2 is 16x16 (256 positions), encoder.5 is 4x4 (16 positions)
BASE = {"model": {"name": "unet", "width": 0.125, "options": {}}, "plugins": None,
        "train": {"epochs": 1, "batch_size": 2, "image_size": [64, 64]}, "eval": {}}


def space(n_choices, layers=("encoder.2", "encoder.5"), **extra) -> dict:
    return {"placement.pdcr": {"type": "subset", "choices": list(layers), "min_size": 1},
            "pdcr.n.{layer}": {"type": "categorical", "choices": n_choices, "when": "layer in placement.pdcr"},
            "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}, **extra}


def choices(space: SearchSpace, name: str) -> list:
    dist = space.dist(name)
    assert isinstance(dist, CategoricalDist)
    return dist.choices


@pytest.fixture(autouse=True)
def fresh_memo():
    probe._EFFECTIVE.clear()
    yield
    probe._EFFECTIVE.clear()


def test_a_choice_too_large_for_one_layer_is_cut_there_only_with_a_note():
    cut_space, cuts, problems = effective_space(SearchSpace(space([8, 16, 32])), BASE)
    assert problems == []
    assert [(c.param, c.choice) for c in cuts] == [("pdcr.n.encoder.5", 32)]
    assert cuts[0].note().startswith('search.space["pdcr.n.encoder.5"]: choice 32 cut: n=32 exceeds the 16 '
                                     "positions of layer 'encoder.5'")
    assert choices(cut_space, "pdcr.n.encoder.5") == [8, 16]
    assert choices(cut_space, "pdcr.n.encoder.2") == [8, 16, 32]


def test_a_cut_choice_is_never_sampled_by_a_real_study():
    cut_space, _, _ = effective_space(SearchSpace(space([8, 16, 32])), BASE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    drawn = {"encoder.2": set(), "encoder.5": set()}
    for _ in range(60):
        trial = study.ask()
        params = cut_space.suggest(trial)
        for layer in drawn:
            if f"pdcr.n.{layer}" in params:
                drawn[layer].add(params[f"pdcr.n.{layer}"])
        study.tell(trial, 0.5)
    assert drawn == {"encoder.2": {8, 16, 32}, "encoder.5": {8, 16}}


def test_the_uncut_space_would_sample_the_choice_that_cannot_run():
    """The test above can fail: without the cut, 32 on encoder.5 is drawn."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = set()
    for _ in range(60):
        params = SearchSpace(space([8, 16, 32])).suggest(study.ask())
        values.add(params.get("pdcr.n.encoder.5"))
    assert 32 in values


def test_a_parameter_with_no_runnable_choice_left_is_a_problem():
    _, cuts, problems = effective_space(SearchSpace(space([32, 64])), BASE)
    assert [loc for loc, _ in problems] == [("pdcr.n.encoder.5",)]
    assert "no runnable choice left" in problems[0][1] and "32: n=32 exceeds the 16 positions" in problems[0][1]


def test_a_range_whose_low_end_cannot_run_is_a_problem_naming_the_bound():
    raw = space([8], layers=("encoder.2",), **{"pdcr.tau": {"type": "float", "low": 0.0, "high": 1.0}})
    _, _, problems = effective_space(SearchSpace(raw), BASE)
    assert [loc for loc, _ in problems] == [("pdcr.tau",)], problems
    assert "raise `low` (low=0.0)" in problems[0][1]


def test_the_cut_is_deterministic():
    first = effective_space(SearchSpace(space([8, 16, 32])), BASE)
    probe._EFFECTIVE.clear()
    second = effective_space(SearchSpace(space([8, 16, 32])), BASE)
    assert first[0].describe() == second[0].describe() and first[1] == second[1]


def _study_spec(n_choices) -> StudySpec:
    search = SearchSpec.model_validate({"num_samples": 2, "space": space(n_choices)})
    cut_space, cuts, _ = effective_space(search.search_space(), BASE)
    base = {**BASE, "data": {"name": "isic2016", "root": "/x", "fold": "test"}}
    narrowed = {n: cut_space.dist(n).model_dump(mode="json") for n in {c.param for c in cuts}}
    return StudySpec(study_name="exp.isic2016", experiment="exp", dataset="isic2016", folds=("test",), seed=0,
                     fraction=1.0, num_classes=2, base_config=base, search=search,
                     resources={"cpu": 1.0, "gpu": 0.0}, cuts=tuple(cuts), narrowed=narrowed)


def test_a_reopened_study_whose_choices_changed_is_refused(tmp_path):
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    spec = _study_spec([8, 16, 32])
    assert choices(spec.space, "pdcr.n.encoder.5") == [8, 16]
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    check_space(study, spec)
    assert study.user_attrs[SPACE_ATTR]["pdcr.n.encoder.5"]["choices"] == [8, 16]
    trial = study.ask()
    spec.space.suggest(trial)
    study.tell(trial, 0.5)
    again = optuna.load_study(storage=storage, study_name="s")
    check_space(again, _study_spec([8, 16, 32]))  # same spec, same cut: fine
    with pytest.raises(ValueError, match=r"(?s)space changed.*pdcr\.n\.encoder\.2"):
        check_space(again, _study_spec([8, 16]))
