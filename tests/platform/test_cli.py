"""The ``dragsaw`` command's input checks: bad input exits with status 2, names the
problem, prints no traceback, launches nothing and touches nothing stored."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRAGSAW = str(Path(sys.executable).with_name("dragsaw"))

TINY = """\
name: tiny
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
baseline: baseline
variants:
  baseline: {{}}
  uafr:
    plugins: {{uafr: {{layers: [{layer}]}}}}
"""


def write_spec(tmp_path, name="tiny.yaml", layer="encoder.2", store=None, root=None, text=None):
    path = tmp_path / name
    path.write_text(text or TINY.format(store=store or tmp_path / "results", root=root or tmp_path / "isic",
                                        layer=layer))
    return path


def dragsaw(*args, cwd=None, timeout=300):
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([DRAGSAW, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=env)


def assert_usage_error(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr)


def test_validate_and_dry_run(tmp_path):
    spec = write_spec(tmp_path)
    out = dragsaw("validate", spec)
    assert out.returncode == 0 and "valid" in out.stdout
    out = dragsaw("run", spec, "--dry-run", "--set", "seeds=[0,1]")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(" seed ") == 4 and "cpu 1 gpu 0" in out.stdout  # 2 variants x 2 seeds
    assert not (tmp_path / "results").exists()  # a dry run writes nothing


@pytest.mark.parametrize("text,needles", [
    ("name: tiny\nstore: [unclosed\n", ["line"]),
    (TINY.replace("seeds: [0]", "seeds: [0]\nseedz: [1]"), ["seedz"]),
    (TINY.replace("epochs: 1", "epochs: many"), ["train.epochs"]),
])
def test_bad_yaml_unknown_keys_and_types_exit_2(tmp_path, text, needles):
    spec = write_spec(tmp_path, text=text.format(store=tmp_path / "r", root=tmp_path / "isic", layer="encoder.2")
                      if "{" in text else text)
    assert_usage_error(dragsaw("run", spec), *needles)


def test_missing_root_unknown_layer_and_bad_store_exit_2(tmp_path):
    no_root = write_spec(tmp_path, "a.yaml", text=TINY.replace("    synthetic: {{n_train: 8, n_test: 4, size: [72, 96], seed: 0}}\n", "").format(
        store=tmp_path / "r", root=tmp_path / "nowhere", layer="encoder.2"))
    assert_usage_error(dragsaw("run", no_root), "nowhere")
    bad_layer = write_spec(tmp_path, "b.yaml", layer="encoder.9")
    assert_usage_error(dragsaw("run", bad_layer), "encoder.9")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad_store = write_spec(tmp_path, "c.yaml", store=blocker / "results")
    assert_usage_error(dragsaw("run", bad_store), str(blocker))
    assert not (tmp_path / "isic").exists()  # nothing was prepared before the checks failed


def test_existing_results_are_untouched_by_a_rejected_run(tmp_path):
    store = tmp_path / "results"
    (store / "trials").mkdir(parents=True)
    marker = store / "trials" / "keep.txt"
    marker.write_text("x")
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    assert_usage_error(dragsaw("run", write_spec(tmp_path, layer="encoder.9", store=store)), "encoder.9")
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before and marker.read_text() == "x"


def test_datasets_list_and_check(tmp_path):
    out = dragsaw("datasets", "list")
    assert out.returncode == 0 and "msd_prostate" in out.stdout and "isic2016_ph2" in out.stdout
    from dragsaw.workloads.data.synthetic import write_mc

    write_mc(tmp_path / "mc", n=6, size=(64, 64))
    out = dragsaw("datasets", "check", "mc", tmp_path / "mc")
    assert out.returncode == 0, out.stderr
    assert "6" in out.stdout
    assert_usage_error(dragsaw("datasets", "check", "mc", tmp_path / "nothing"), "nothing")
    assert_usage_error(dragsaw("datasets", "check", "mcc", tmp_path), "mcc")


def test_leaderboard_on_an_empty_store_exits_2(tmp_path):
    assert_usage_error(dragsaw("leaderboard", "--store", tmp_path / "empty", "--format", "json"), "no completed trials")
