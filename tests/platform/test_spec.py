"""Experiment specs: loading, every error at once with its path, overrides, checks against
this installation, and grid expansion."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dragsaw.platform.experiment.checks import check_paths
from dragsaw.platform.experiment.errors import SpecError
from dragsaw.platform.experiment.grid import (
    TrialSpec,
    baseline_of,
    expand,
    spec_hash,
    trial_id,
    variant_names,
)
from dragsaw.platform.experiment.loading import load_spec, validate_spec
from dragsaw.platform.search.study import studies
from dragsaw.workloads.recipe import TrialConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def isic(tmp_path_factory) -> Path:
    """A tiny synthetic ISIC 2016 set (2 classes, train/test splits)."""
    from dragsaw.workloads.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("data") / "isic"
    write_synthetic("isic2016", root, n_train=6, n_test=3, size=(64, 64))
    return root


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def minimal(root) -> str:
    return textwrap.dedent(f"""\
        name: tiny
        datasets:
          - name: isic2016
            root: {root}
        model: {{name: unet, width: 0.125}}
        train: {{epochs: 1, image_size: [64, 64]}}
        """)


GRID = """\
    name: grid
    datasets:
      - name: isic2016
        root: {root}
        fraction: [0.5, 1.0]
    model: {{name: unet, width: 0.125}}
    train: {{epochs: 1, image_size: [64, 64]}}
    seeds: [0, 1]
    baseline: baseline
    variants:
      baseline: {{}}
      pdcr:
        plugins.pdcr: {{sites: [{{layers: [encoder.2], n: 16}}]}}
      both:
        plugins:
          pdcr: {{sites: [{{layers: [encoder.2], n: 16}}], tau: 0.5}}
          uafr: {{layers: [encoder.4]}}
    axes:
      model.name: [unet, fcn]
    """


# -- valid specs --------------------------------------------------------------------------
def test_minimal_grid_spec_loads_checks_and_expands(tmp_path, isic):
    spec = load_spec(write(tmp_path, minimal(isic)))
    assert spec.store == "./results" and spec.seeds == [0] and spec.resources.cpus == 1
    assert spec.source == str(tmp_path / "spec.yaml")
    assert check_paths(spec) == []
    trials = expand(spec)
    assert len(trials) == 1
    t = trials[0]
    assert isinstance(t, TrialSpec)
    assert (t.variant, t.dataset, t.fold, t.seed, t.fraction, t.params) == ("base", "isic2016", "test", 0, 1.0, {})
    assert t.resources == {"cpu": 1.0, "gpu": 0.0}
    cfg = TrialConfig.model_validate(t.config)
    assert cfg.data.root == str(isic) and cfg.data.fold == "test" and cfg.device == "cpu" and cfg.plugins is None


def test_grid_expansion_crosses_everything_deterministically(tmp_path, isic):
    path = write(tmp_path, GRID.format(root=isic))
    spec = load_spec(path)
    assert variant_names(spec) == ["unet+baseline", "unet+pdcr", "unet+both", "fcn+baseline", "fcn+pdcr", "fcn+both"]
    trials = expand(spec)
    assert len(trials) == 6 * 1 * 1 * 2 * 2  # variants x datasets x folds x fractions x seeds
    assert len({t.trial_id for t in trials}) == len(trials)
    assert [t.trial_id for t in expand(load_spec(path))] == [t.trial_id for t in trials]
    both = next(t for t in trials if t.variant == "fcn+both" and t.fraction == 0.5 and t.seed == 1)
    assert both.params == {"model.name": "fcn", "plugins.pdcr.sites": [{"layers": ["encoder.2"], "n": 16}],
                           "plugins.pdcr.tau": 0.5, "plugins.uafr.layers": ["encoder.4"]}  # dotted, to the leaves
    cfg = TrialConfig.model_validate(both.config)
    assert cfg.model.name == "fcn" and cfg.data.fraction == 0.5 and cfg.seed == 1
    assert both.config["plugins"]["pdcr"]["num_classes"] == 2  # completed from the dataset
    assert both.config["plugins"]["uafr"]["num_maps"] == 2
    assert baseline_of(spec, "fcn+both") == "fcn+baseline"
    # the id depends on what it names, and is stable across versions of the code
    other = expand(load_spec(path, ["seeds=[0, 2]"]))
    assert {t.trial_id for t in other} & {t.trial_id for t in trials} == {t.trial_id for t in trials if t.seed == 0}
    assert trial_id("e", "v", "d", "test", 1.0, 0, {"a": 1}) == "bc99c7941ab26f1b"


def test_dumped_specs_validate_again_with_the_same_hash(tmp_path, isic):
    search = minimal(isic) + textwrap.dedent("""\
        search:
          num_samples: 3
          objectives: [{metric: dice}, {metric: train_seconds}]
          space: {train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
        """)
    for path in (write(tmp_path, GRID.format(root=isic)), write(tmp_path, search, "search.yaml")):
        spec = load_spec(path)
        again = validate_spec(spec.model_dump(mode="json"))
        assert spec_hash(again) == spec_hash(spec) and again.model_dump() == spec.model_dump()


def test_spec_hash_ignores_spelled_out_defaults(tmp_path, isic):
    a = load_spec(write(tmp_path, minimal(isic)))
    b = load_spec(write(tmp_path, minimal(isic) + "seeds: [0]\nstore: ./results\n", "b.yaml"))
    c = load_spec(write(tmp_path, minimal(isic)), ["train.epochs=2"])
    assert spec_hash(a) == spec_hash(b) != spec_hash(c)
    assert len(spec_hash(a)) == 64


# -- errors -------------------------------------------------------------------------------
def test_all_errors_of_a_file_at_once_with_paths_and_lines(tmp_path, isic):
    path = write(tmp_path, f"""\
        name: four
        datasets:
          - name: isic2016
            root: {isic}
            folds: [9]
        model: {{name: unet}}
        train: {{epohcs: 3}}
        seeds: [1, 1]
        variants:
          pdcr:
            plugins.pdcr: {{sites: [{{layers: [encoder.2], n: 0}}]}}
        """)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    problems = {p.path: p for p in err.value.problems}
    assert set(problems) == {"datasets[0].folds[0]", "train.epohcs", "seeds", "variants.pdcr.plugins.pdcr.sites[0].n"}
    assert "did you mean 'epochs'" in problems["train.epohcs"].message
    assert "0-4" in problems["datasets[0].folds[0]"].message
    assert "greater than or equal to 1" in problems["variants.pdcr.plugins.pdcr.sites[0].n"].message
    assert [problems[k].line for k in ("datasets[0].folds[0]", "train.epohcs", "seeds")] == [5, 7, 8]
    text = str(err.value)
    assert text.startswith(f"{path}: 4 problems") and "Traceback" not in text
    assert isinstance(err.value, ValueError)


def test_unknown_keys_anywhere_are_errors_with_suggestions(tmp_path, isic):
    path = write(tmp_path, f"""\
        name: keys
        nmae: oops
        datasets:
          - name: isic2016
            rooot: {isic}
            synthetic: {{n_trian: 4}}
        model: {{name: unet}}
        resources: {{cpu: 2}}
        search:
          num_samples: 2
          samplr: tpe
          space:
            train.lr: {{type: float, low: 0.001, hgih: 0.1}}
        """)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    messages = {p.path: p.message for p in err.value.problems}
    assert "did you mean 'name'" in messages["nmae"]
    assert "did you mean 'root'" in messages["datasets[0].rooot"]
    assert "required" in messages["datasets[0].root"]
    assert "did you mean 'n_train'" in messages["datasets[0].synthetic.n_trian"]
    assert "did you mean 'cpus'" in messages["resources.cpu"]
    assert "did you mean 'sampler'" in messages["search.samplr"]
    assert "did you mean 'high'" in messages['search.space["train.lr"].hgih']


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "name: x\ndatasets:\n  - name: isic2016\n    root: a\n      b: c\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    (problem,) = err.value.problems
    assert (problem.line, problem.column) == (5, 8)
    assert str(path) in str(err.value) and "line 5, column 8" in str(err.value)


def test_yaml_dialect_duplicate_keys_booleans_and_floats(tmp_path, isic):
    with pytest.raises(SpecError, match=r"duplicate key 'model' \(first at line 5\)"):
        load_spec(write(tmp_path, minimal(isic) + "model: {name: fcn}\n"))
    spec = load_spec(write(tmp_path, minimal(isic) + textwrap.dedent("""\
        axes:
          uafr:
            off: {}
            on: {plugins.uafr: {layers: [encoder.4]}}
        variants:
          lr: {train.lr: 1e-4}
        """), "b.yaml"))
    assert variant_names(spec) == ["off+lr", "on+lr"]  # YAML 1.1 would read off/on as booleans
    assert spec.variants["lr"]["train"]["lr"] == 1e-4  # and 1e-4 as a string


def test_overrides_apply_before_validation(tmp_path, isic):
    path = write(tmp_path, GRID.format(root="/not/there"))
    spec = load_spec(path, ["train.epochs=3", "seeds=[0,1,2]", f"datasets[0].root={isic}",
                            "axes.model.name=[unet]", "variants.pdcr.plugins.pdcr.tau=0.25"])
    assert spec.train.epochs == 3 and spec.seeds == [0, 1, 2] and spec.datasets[0].root == str(isic)
    assert variant_names(spec) == ["unet+baseline", "unet+pdcr", "unet+both"]
    assert spec.variants["pdcr"]["plugins"]["pdcr"]["tau"] == 0.25
    with pytest.raises(SpecError) as err:
        load_spec(path, ["datasets[3].root=/x", "train.epohcs=3", "model[0]=x", "nonsense"])
    messages = {p.path: p.message for p in err.value.problems}
    assert "has 1 entries, so [3] is out of range" in messages["--set datasets[3].root"]
    assert "index it by key" in messages["--set model[0]"]
    assert "KEY=VALUE" in messages["--set nonsense"]
    assert "did you mean 'epochs'" in messages["train.epohcs"] and "set by --set train.epohcs" in messages["train.epohcs"]


def test_smoke_overrides_apply_on_request_and_are_checked_always(tmp_path, isic):
    text = minimal(isic).replace("epochs: 1", "epochs: 40")
    spec = load_spec(write(tmp_path, text + "smoke: {train.epochs: 1, 'datasets[0].max_eval_cases': 2}\n"), smoke=True)
    assert spec.train.epochs == 1 and spec.datasets[0].max_eval_cases == 2
    with pytest.raises(SpecError, match="with the smoke overrides applied"):
        load_spec(write(tmp_path, minimal(isic) + "smoke: {train.epochs: 0}\n", "b.yaml"))
    with pytest.raises(SpecError, match="needs a `smoke:` section"):
        load_spec(write(tmp_path, minimal(isic), "c.yaml"), smoke=True)


def test_variant_and_axis_rules(tmp_path, isic):
    base = minimal(isic)
    cases = {
        "variants: {a+b: {}}": r"no '\+'",
        "variants: {a: {data: {fold: 1}}}": "'data' cannot be overridden",
        "axes: {train.lr: [{x: 1}]}": "write this axis as a mapping",
        "axes: {train.lr: [0.1, 0.1]}": "must be distinct",
        "variants: {a: {}}\nbaseline: b": "baseline 'b' is not a variant",
        "axes: {seeds: [1, 2]}": "a list axis names a dotted key under",
    }
    for i, (extra, expected) in enumerate(cases.items()):
        with pytest.raises(SpecError, match=expected):
            load_spec(write(tmp_path, base + extra + "\n", f"case{i}.yaml"))
    # crossed values that clash only together are reported by the crossed variant's name
    clash = base + textwrap.dedent("""\
        axes:
          att: {se: {plugins.se: {layers: [encoder.4]}}}
        variants:
          uafr: {plugins.uafr: {layers: [encoder.4]}}
        """)
    with pytest.raises(SpecError, match="variant 'se\\+uafr'.*gets both uafr and se"):
        load_spec(write(tmp_path, clash, "clash.yaml"))


def test_search_section_rules(tmp_path, isic):
    base = minimal(isic)
    space = "  space: {train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}\n"
    cases = {
        "search:\n  num_samples: 4\n  sampler: grid\n" + space: "write a grid as `variants`/`axes`",
        "search:\n  num_samples: 4\n  metric: dise\n" + space: "did you mean 'dice'",
        "search:\n  num_samples: 4\n  sampler: cmaes\n  objectives: [{metric: dice}, {metric: train_seconds}]\n"
        + space: "optimises one objective",
        "search:\n  num_samples: 4\n  scheduler: asha\n  objectives: [{metric: dice}, {metric: train_seconds}]\n"
        + space: "use scheduler: none",
        "search:\n  num_samples: 4\n  scheduler: {type: asha, max_t: 5}\n" + space: "max_t <= train.epochs",
        "search:\n  num_samples: 4\n  storage: not a url\n" + space: "SQLAlchemy URL",
        "seeds: [0, 1]\nsearch:\n  num_samples: 4\n" + space: "give one seed",
        "variants: {a: {}}\nsearch:\n  num_samples: 4\n" + space: "cannot be crossed with `variants`",
    }
    for i, (extra, expected) in enumerate(cases.items()):
        with pytest.raises(SpecError, match=expected):
            load_spec(write(tmp_path, base + extra, f"case{i}.yaml"))


def test_search_spec_expands_into_studies(tmp_path, isic):
    text = minimal(isic) + textwrap.dedent("""\
        search:
          num_samples: 3
          objectives: [{metric: dice, mode: max}, {metric: train_seconds}]
          space:
            train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
            placement.pdcr: {type: subset, choices: [encoder.2, encoder.3]}
            pdcr.n.{layer}: {type: int, low: 8, high: 64, log: true, when: "layer in placement.pdcr"}
        """)
    spec = load_spec(write(tmp_path, text))
    assert check_paths(spec) == []
    with pytest.raises(ValueError, match="use studies"):
        expand(spec)
    (study,) = studies(spec)
    assert study.study_name == "tiny.isic2016" and study.folds == ("test",)
    assert study.directions == ["maximize", "minimize"] and study.modes == ["max", "min"]
    trial = study.trial({"train.lr": 0.001, "placement.pdcr": ["encoder.3"], "pdcr.n.encoder.3": 16})
    cfg = TrialConfig.model_validate(trial.config)
    assert cfg.plugins is not None and cfg.plugins.pdcr is not None
    (site,) = cfg.plugins.pdcr.sites
    assert cfg.train.lr == 0.001 and (site.layers, site.n, site.patch, site.projection) == (("encoder.3",), 16,
                                                                                            "series", 32)
    assert cfg.plugins.pdcr.num_classes == 2  # the dataset's
    assert trial.variant.startswith("search-") and trial.fold == "test"


def test_expand_reports_config_conflicts_with_the_dataset(tmp_path, isic):
    spec = load_spec(write(tmp_path, minimal(isic) + "plugins: {pdcr: {num_classes: 3, sites: [{layers: [encoder.2], "
                                                     "n: 8}]}}\n"))
    with pytest.raises(SpecError, match="num_classes is 3 but the dataset has 2 classes"):
        expand(spec)


# -- checks against this installation -----------------------------------------------------
def test_check_paths_reports_every_problem(tmp_path, isic):
    text = textwrap.dedent(f"""\
        name: paths
        datasets:
          - {{name: isic2016, root: {tmp_path / 'missing'}}}
          - {{name: isic2061, root: {isic}}}
          - {{name: isic2016, root: {isic}, label: isic_val, folds: [val]}}
          - {{name: mc, root: {tmp_path / 'later'}, synthetic: {{n: 4}}}}
        model: {{name: unet, width: 0.125}}
        variants:
          ok: {{}}
          pdcr: {{plugins.pdcr: {{sites: [{{layers: [encoder.22], n: 8}}]}}}}
        axes:
          model.name: [unet, unet3d, fcnn]
        """)
    spec = load_spec(write(tmp_path, text))
    problems = check_paths(spec)
    joined = "\n".join(problems)
    assert any(p.startswith("datasets[0].root:") and "does not exist" in p for p in problems)
    assert any(p.startswith("datasets[1].name:") and "did you mean" in p and "'isic2016'" in p for p in problems)
    assert any(p.startswith("datasets[2].folds:") and "'val'" in p for p in problems)
    assert not any(p.startswith("datasets[3].root") for p in problems)  # absent root, but synthetic given
    # ... and its outline (mc: 2D) is still checked against the models
    assert "datasets[3]: mc is 2D but model unet3d is 3D" in problems
    assert any(p.startswith("variants.pdcr.plugins.pdcr.sites[0].layers[0]:") and "'encoder.22'" in p
               and "did you mean 'encoder.2'" in p for p in problems), joined
    assert any(p.startswith('axes["model.name"][2].model.name:') and "did you mean 'fcn'" in p for p in problems)
    assert any("is 2D but model unet3d is 3D" in p for p in problems)
    assert "variant 'unet3d+pdcr': plugins.pdcr.sites[0].layers[0]: 'encoder.22'" in joined  # crossed: by name
    assert not (tmp_path / "later").exists()  # checking writes nothing


def test_check_paths_checks_search_placements(tmp_path, isic):
    text = minimal(isic) + textwrap.dedent("""\
        search:
          num_samples: 2
          space:
            placement.uafr: {type: subset, choices: [encoder.2, decoder.9]}
        """)
    (problem,) = check_paths(load_spec(write(tmp_path, text)))
    assert problem.startswith('search.space["placement.uafr"].choices[1]:') and "decoder.9" in problem


def test_validate_spec_takes_plain_data(isic):
    spec = validate_spec({"name": "d", "datasets": [{"name": "isic2016", "root": str(isic)}], "model": {"name": "fcn"}})
    assert spec.model.name == "fcn" and spec.source is None
    with pytest.raises(SpecError, match="must hold a mapping"):
        validate_spec([1, 2])


SHIPPED = sorted((ROOT / "configs" / "experiments").rglob("*.yaml")) + sorted((ROOT / "configs" / "search").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_experiment_specs_validate(path):
    load_spec(path)


def test_dataset_overrides_change_the_base_for_that_dataset(tmp_path, isic):
    text = textwrap.dedent(f"""\
        name: per-dataset
        x-site: &site {{layers: [encoder.2], n: 8}}
        datasets:
          - {{name: isic2016, root: {isic}, label: a}}
          - name: isic2016
            root: {isic}
            label: b
            overrides: {{model.name: fcn, train: {{lr: 0.01}}}}
        model: {{name: unet, width: 0.125}}
        train: {{epochs: 1, image_size: [64, 64]}}
        variants:
          baseline: {{}}
          pdcr: {{plugins.pdcr: {{sites: [*site]}}}}
        """)
    spec = load_spec(write(tmp_path, text))  # the x- key only holds an anchor
    trials = {(t.dataset, t.variant): t for t in expand(spec)}
    assert trials["a", "pdcr"].config["model"]["name"] == "unet" and trials["a", "pdcr"].config["train"]["lr"] == 1e-3
    assert trials["b", "pdcr"].config["model"]["name"] == "fcn" and trials["b", "pdcr"].config["train"]["lr"] == 0.01
    assert trials["b", "pdcr"].params == trials["a", "pdcr"].params == {"plugins.pdcr.sites": [{"layers": ["encoder.2"],
                                                                                                 "n": 8}]}
    bad = text.replace("train: {{lr: 0.01}}".format(), "train: {epohcs: 2}, plugins.uafr: {layers: [block9]}")
    with pytest.raises(SpecError, match=r"datasets\[1\]\.overrides\.train\.epohcs.*did you mean 'epochs'"):
        load_spec(write(tmp_path, bad, "bad.yaml"))
    odd = text.replace("train: {{lr: 0.01}}".format(), "plugins.uafr: {layers: [block9]}")
    problems = check_paths(load_spec(write(tmp_path, odd, "odd.yaml")))
    assert any(p.startswith("datasets[1].overrides.plugins.uafr.layers[0]: 'block9'") and "did you mean 'block5'" in p
               for p in problems), problems
