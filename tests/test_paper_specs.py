"""The shipped experiment specs (configs/experiments/paper/, configs/search/): each opens
with the command that runs it, validates, asks this machine only for the dataset folders a
user extracts, expands to the number of trials written below (and in its own opening
comment), dry-runs through the CLI with ``--smoke``, and runs end to end with ``--smoke`` on
the synthetic look-alikes (integration).

Full-scale datasets cannot be downloaded here, so every spec states its folds (``test`` or
the CV folds): its trials then follow from the spec alone, and the datasets are only asked
for their class count (the paper's, below). Smoke versions run on look-alikes written into
one folder per test session."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dragsaw.platform.cli import main
from dragsaw.platform.experiment.checks import check_paths
from dragsaw.platform.experiment.datasets import prepare_datasets
from dragsaw.platform.experiment.grid import expand
from dragsaw.platform.experiment.loading import load_spec
from dragsaw.platform.report import paper_numbers
from dragsaw.platform.search.study import studies
from dragsaw.platform.store import ResultStore
from dragsaw.workloads.data import dataset_class

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "experiments" / "paper"
SEARCH = ROOT / "configs" / "search"
DRAGSAW = str(Path(sys.executable).with_name("dragsaw"))

# Trials of each grid at full scale and with --smoke, the arithmetic spelled out.
GRIDS = {
    "table2.yaml": (
        2 * (1 + 1 + 1 + 1 + 5 + 5 + 5 + 5) * 1,  # variants x (PH2, ISIC 2016, ISIC 2017, MC test splits;
        #                                          DigestPath, brain, heart, prostate 5 folds) x 1 seed
        2 * (1 + 1 + 1) * 1,                      # variants x (ISIC 2016, MC test; MSD-brain fold 0) x 1 seed
    ),
    "table4.yaml": (3 * 5 * 1 * 3,                # models x variants x 1 fold (test) x 3 seeds
                    3 * 5 * 1 * 1),               # ... x 1 seed
    "table5a.yaml": (2 * 3 * 1 * 3,               # PDCR kinds (RF, H) x phi (ours, L1, L2) x 1 fold x 3 seeds
                     2 * 3 * 1 * 1),
    "table5b-d.yaml": (1 * (1 + 3) * 1 * 3,       # full model x (ours + (b), (c), (d)) x 1 fold x 3 seeds
                       1 * 4 * 1 * 1),
    "fig5.yaml": ((3 * 4 + 1 + 1) * 1 * 3,        # (3 layers x 4 affinities + baseline + 2 layers) x 1 fold x 3 seeds
                  14 * 1 * 1),
    "table6_7.yaml": ((1 + 9 + 5 + 7 + 1) * 1 * 3,  # (baseline + VI rows + VII single layers + VII
                      23 * 1 * 1),                  #  combinations + VII cross 1-4) x 1 fold x 3 seeds
    "table8_fig6.yaml": ((1 + 3 * (7 + 1) + 3) * 1 * 3,  # (baseline + 3 blocks x (7 stages + all) + 3 with
                         28 * 1 * 1),                    #  H-PDCR) x 1 fold x 3 seeds
    "table9_10.yaml": (1 * (1 + 1 + 7 + 3) * 1 * 3,  # UAFR x (ours + no F + 7 other M + 3 other kernels)
                       12 * 1 * 1),                  #  x 1 fold x 3 seeds
    "fig7.yaml": (2 * 1 * 12 * 3,                 # variants x 1 fold x 12 fractions x 3 seeds
                  2 * 1 * 12 * 1),
}
# Samples of each search (one study per dataset) at full scale and with --smoke.
SEARCHES = {"new_dataset.yaml": (64, 3)}
EXPECTED = {**GRIDS, **SEARCHES}

SPECS = sorted(PAPER.glob("*.yaml")) + sorted(SEARCH.glob("*.yaml"))
IDS = [p.name for p in SPECS]

# The paper's class counts (Table I; the folder search names two classes).
CLASSES = {"isic2016": 2, "isic2016_ph2": 2, "isic2017": 2, "mc": 2, "digestpath": 2, "msd_brain": 4,
           "msd_heart": 2, "msd_prostate": 3, "folder": 2}

class _Classes:
    """What ``expand``/``studies`` read from an opened dataset when the spec lists its folds."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes


def _stand_ins(spec):
    return {d.key: _Classes(CLASSES[d.name]) for d in spec.datasets}


def _trials(spec, datasets=None):
    if spec.search is not None:
        return [s.search.num_samples for s in studies(spec, datasets)]
    return expand(spec, datasets)


def _count(spec, datasets=None) -> int:
    trials = _trials(spec, datasets)
    return sum(trials) if spec.search is not None else len(trials)


@pytest.fixture(scope="session")
def lookalikes(tmp_path_factory):
    """The folder the smoke versions run in: their relative roots (data/synthetic/...) and
    stores resolve here, and the look-alikes written once are reused by every spec."""
    return tmp_path_factory.mktemp("paper-smoke")


@pytest.fixture
def in_lookalikes(lookalikes, monkeypatch):
    monkeypatch.chdir(lookalikes)
    monkeypatch.setenv("DRAGSAW_CACHE", str(lookalikes / "cache"))
    return lookalikes


def test_every_table_and_figure_has_a_spec():
    assert set(IDS) == set(EXPECTED), "a spec was added or removed: list its trial counts in GRIDS / SEARCHES"
    assert CLASSES["msd_brain"] == len(dataset_class("msd_brain").task_classes)
    assert CLASSES["msd_prostate"] == len(dataset_class("msd_prostate").task_classes)


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_opens_with_its_commands(path):
    lines = path.read_text().splitlines()
    relative = path.relative_to(ROOT).as_posix()
    opening = " ".join(lines[:lines.index("#")])  # the command block, before the first empty comment line
    assert lines[0].startswith("# dragsaw ") and f"dragsaw run {relative}" in opening, opening
    assert f"dragsaw run {relative} --smoke" in path.read_text()


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_full_scale_validates_and_needs_only_the_downloads(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative roots resolve to folders that do not exist
    spec = load_spec(path)  # also validates the smoke version
    problems = check_paths(spec)
    missing = [f"datasets[{i}].root: {d.root} does not exist" for i, d in enumerate(spec.datasets)]
    assert len(problems) == len(missing) and all(p.startswith(m) for p, m in zip(problems, missing)), problems
    assert all(d.folds is not None for d in spec.datasets), "state every dataset's folds: counts must not need data"
    assert all(d.synthetic is None for d in spec.datasets), "full scale runs on the real downloads"


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_full_scale_trial_count_and_protocol(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(path)
    assert _count(spec, _stand_ins(spec)) == EXPECTED[path.name][0]
    stated = re.search(r"^# Trials:.*?= (\d+)\.$", path.read_text(), re.MULTILINE | re.DOTALL)
    if spec.search is None:
        assert stated and int(stated.group(1)) == EXPECTED[path.name][0], "the opening comment states another count"
        configs = [t.config for t in expand(spec, _stand_ins(spec))]
    else:
        configs = [s.base_config for s in studies(spec, _stand_ins(spec))]
    for config in configs:  # the paper's protocol (Sec. V-A)
        train = config["train"]
        assert (train["lr"], train["weight_decay"], config["device"]) == (1e-3, 1e-5, "auto")
        assert config["model"]["width"] == 1.0 and config["data"]["max_eval_cases"] is None
        if config["model"]["name"] == "unet3d":
            assert train["epochs"] == 1000 and train["iterations_per_epoch"] == 250
            assert train["spacing"] == [0.7, 0.7, 0.7] and train["loss"] == "ce_dice"
        else:
            assert train["image_size"] == [512, 512]
            assert train["epochs"] == (100 if spec.search is not None else 300)
        pdcr = (config["plugins"] or {}).get("pdcr")
        if pdcr:
            assert train["pdcr_weight"] == 0.01 and pdcr["patch_sizes"] == [5, 7, 9]


def test_every_paper_number_has_a_row_to_stand_beside(tmp_path, monkeypatch):
    """The report puts the paper's numbers beside a variant whose label it reads as the same
    model, plug-ins and settings: every transcribed row must be some shipped variant's."""
    monkeypatch.chdir(tmp_path)
    matched = set()
    for path in sorted(PAPER.glob("*.yaml")):
        spec = load_spec(path)
        for trial in expand(spec, _stand_ins(spec)):
            row = paper_numbers.lookup(trial.config["data"]["name"], trial.variant, trial.config["model"]["name"])
            matched.add(row.key if row else None)
    assert set(paper_numbers.BY_KEY) <= matched, sorted(set(paper_numbers.BY_KEY) - matched, key=str)


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_smoke_version_is_tiny(path, in_lookalikes):
    spec = load_spec(path, smoke=True)
    assert check_paths(spec) == []  # absent synthetic roots are fine: they are written at launch
    datasets = prepare_datasets(spec)  # writes the look-alikes (once per session)
    assert check_paths(spec) == []  # written: now opened, with folds and 2D/3D models checked
    assert _count(spec, datasets) == EXPECTED[path.name][1]
    configs = ([s.base_config for s in studies(spec, datasets)] if spec.search is not None
               else [t.config for t in expand(spec, datasets)])
    for config in configs:
        train = config["train"]
        assert config["device"] == "cpu" and config["data"]["max_eval_cases"] <= 2
        assert Path(config["data"]["root"]).is_relative_to(in_lookalikes / "data" / "synthetic")
        assert train["epochs"] <= 2 and config["model"]["width"] <= 0.125
        if config["model"]["name"] == "unet3d":
            assert train["patch_size"] == [32, 32, 32] and train["iterations_per_epoch"] <= 2
        else:
            assert train["image_size"] == [96, 96]
    assert spec.seeds == [0] and spec.concurrency == 2 and spec.store == "./results-smoke"


@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_smoke_dry_run_through_the_cli(path, in_lookalikes, capsys):
    assert main(["run", str(path), "--smoke", "--dry-run", "--store", str(in_lookalikes / "dry")]) == 0
    out = capsys.readouterr().out
    smoke = EXPECTED[path.name][1]
    if path.name in SEARCHES:
        assert f": {smoke} samples on isic2016" in out, out
    else:
        assert f": {smoke} trials, " in out and out.count(" seed 0 ") == smoke, out
    assert not (in_lookalikes / "dry").exists()  # a dry run writes no results


def test_validate_smoke_through_the_installed_command(in_lookalikes):
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    spec = PAPER / "table9_10.yaml"
    out = subprocess.run([DRAGSAW, "validate", str(spec), "--smoke"], check=False, capture_output=True, text=True,
                         env=env, cwd=in_lookalikes, timeout=120)
    assert out.returncode == 0 and "paper_table9_10: 12 trials, " in out.stdout, out.stdout + out.stderr
    # Without the data: the whole grid, its cost, and the root that is missing (issue 12)
    out = subprocess.run([DRAGSAW, "validate", str(spec)], check=False, capture_output=True, text=True,
                         env=env, cwd=in_lookalikes, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "dataset roots missing here (1):" in out.stdout and "data/ISIC2016 (not on this machine)" in out.stdout
    assert " trials, " in out.stdout and "GPU-hours" in out.stdout, out.stdout


def _folder_dataset(root: Path, n: int = 10) -> Path:
    """A tiny user dataset: images/<id>.png (RGB) with masks/<id>.png (0/255), 32x32."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((32, 32), np.uint8)
        y, x = rng.integers(4, 20, size=2)
        mask[y:y + 10, x:x + 10] = 255
        image = rng.integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
        image[mask > 0] //= 2
        Image.fromarray(image).save(root / "images" / f"case_{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"case_{i:02d}.png")
    return root


def test_search_runs_on_a_users_folder(tmp_path, monkeypatch):
    """The new-dataset search against a real `folder` dataset (its smoke version uses the ISIC
    2016 look-alike instead): roots, classes, folds and the study, without training."""
    monkeypatch.setenv("DRAGSAW_CACHE", str(tmp_path / "cache"))
    root = _folder_dataset(tmp_path / "my_dataset")
    spec = load_spec(SEARCH / "new_dataset.yaml", [f"datasets[0].root={root}"])
    assert check_paths(spec) == []
    (study,) = studies(spec)
    assert (study.dataset, study.folds, study.num_classes, study.search.num_samples) == ("folder", (0,), 2, 64)
    assert study.base_config["data"]["options"]["classes"] == ["background", "lesion"]


@pytest.mark.integration
@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", SPECS, ids=IDS)
def test_smoke_runs_end_to_end(path, lookalikes, tmp_path):
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "DRAGSAW_CACHE": str(lookalikes / "cache")}
    store = tmp_path / "results"
    start = time.monotonic()
    out = subprocess.run([DRAGSAW, "run", str(path), "--smoke", "--store", str(store)], check=False,
                         capture_output=True, text=True, env=env, cwd=lookalikes, timeout=230)
    elapsed = time.monotonic() - start
    smoke, name = EXPECTED[path.name][1], load_spec(path).name
    results = ResultStore(str(store))
    failed = ({t["variant"] for t in results.trial_attempts(name).to_pylist() if t["status"] != "completed"}
              if store.exists() else set())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"{smoke} trials finished, 0 failed" in out.stdout, out.stdout[-3000:]
    assert len(results.completed(name)) == smoke and not failed
    print(f"{path.name}: {smoke} trials in {elapsed:.1f} s")
