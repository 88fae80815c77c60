"""Reports: paper-shaped tables with the paper's numbers beside ours, paired tests, learning
curves, per-layer and data-fraction plots, Figs. 8 / 9 rebuilt from a real checkpoint,
provenance; the HTML page checked in a real headless Chromium.

The store is written directly with ``ResultStore.write_trial`` (hand-made per-case counts,
curves and configs: fast and exact), plus ONE tiny real trial (UNet width 0.125 on the
synthetic ISIC look-alike, 64x64, 1 epoch, UAFR at encoder.2) whose checkpoint is kept with
the platform's ``CheckpointStore``, so the pictures are rebuilt from a real checkpoint.

The browser check drives Debian's chromium over the DevTools protocol (CDP) with aiohttp's
websocket client (aiohttp comes with s3fs): it loads the page from file://, collects console
messages, uncaught exceptions and log entries (CSP violations and failed loads land there),
reads the DOM (tables, their text, every <img>: a PNG data URI that decoded to a non-zero
size), and takes a screenshot that must not be blank. The session fixture installs chromium
with apt-get when /usr/bin/chromium is missing and fails (never skips) when it cannot.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dragsaw.platform.cli import main
from dragsaw.platform.launch.run import save_record
from dragsaw.platform.report import ReportError, write_report
from dragsaw.platform.report import paper_numbers as paper
from dragsaw.platform.report.html import CSP
from dragsaw.platform.store import ResultStore
from dragsaw.platform.store.checkpoints import CheckpointStore

from .s3_server import stop
from .test_leaderboard import case_rows, symmetric

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PDCR = {"sites": [{"layers": ["encoder.2"], "n": 16}], "num_classes": 2}
FULL = {"pdcr": PDCR, "uafr": {"layers": ["encoder.1", "encoder.2"]}}

# dataset -> variant -> seed -> per-case foreground "x" (case Dice = x / 50 under paper2d).
TABLE4 = {
    "isic2016": {"baseline": {0: [40, 40, 40, 40], 1: [35, 35, 35, 35]},      # 0.80, 0.70
                 "pdcr-uafr": {0: [45, 45, 45, 45], 1: [44, 44, 44, 44]}},    # 0.90, 0.88
    "mc": {"baseline": {0: [46, 47, 48, 45], 1: [46, 46, 47, 45]},
           "pdcr-uafr": {0: [48, 48, 49, 47], 1: [47, 48, 49, 48]}},
}


def config(dataset="isic2016", plugins=None, fraction=1.0, model="deeplabv3plus", width=1.0, fold="test",
           root=None) -> dict:
    return {"data": {"name": dataset, "root": root or f"/data/{dataset}", "fold": fold, "fraction": fraction,
                     "options": {}, "subset_seed": 0, "max_eval_cases": None},
            "model": {"name": model, "width": width, "options": {}}, "plugins": plugins,
            "train": {"epochs": 3}, "eval": {"every": 1}, "seed": 0, "device": "cpu", "cache_dir": None}


def trial(experiment, trial_id, variant, dataset, seed, cfg, metrics=None, status="completed", attempt=1,
          node="node-a") -> dict:
    return {"experiment": experiment, "trial_id": trial_id, "attempt": attempt, "status": status,
            "variant": variant, "dataset": dataset, "fold": str(cfg["data"]["fold"]), "seed": seed,
            "params": {}, "config": cfg, "metrics": metrics or {"convention": "paper2d"},
            "spec_hash": "feedc0de", "git_commit": "0123abc", "versions": {"dragsaw": "0.1.0", "torch": "2.x"},
            "hardware": "x86_64 2 cpus", "node": node, "started_at": T0 + dt.timedelta(minutes=seed),
            "ended_at": T0 + dt.timedelta(minutes=seed + 3), "error": None if status == "completed" else "boom"}


def curve(final: float) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "dice": final - 0.1 * (3 - e), "convention": "paper2d"}
            for e in (1, 2, 3)]


def write_grid(store, experiment, grid, plugins_of, fraction=1.0, prefix=""):
    for dataset, variants in grid.items():
        for variant, seeds in variants.items():
            for seed, xs in seeds.items():
                cfg = config(dataset, plugins_of[variant], fraction)
                dice = sum(xs) / len(xs) / 50
                store.write_trial(trial(experiment, f"{prefix}{dataset}-{variant}-s{seed}", variant, dataset, seed,
                                        cfg, {"dice": dice, "convention": "paper2d"}),
                                  curve(dice), case_rows([symmetric(x) for x in xs]))


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    """table4 (2 datasets x 2 variants x 2 seeds, a saved spec, a failed attempt), fig7 (data
    fractions), fig6 (UAFR / SE per layer), pics (a real trial with its checkpoint)."""
    url = str(tmp_path_factory.mktemp("store") / "results")
    store = ResultStore(url)
    write_grid(store, "table4", TABLE4, {"baseline": None, "pdcr-uafr": FULL})
    store.write_trial(trial("table4", "isic2016-pdcr-uafr-s9", "pdcr-uafr", "isic2016", 9,
                            config("isic2016", FULL), status="failed"), [], [])
    from dragsaw.platform.experiment.grid import spec_hash
    from dragsaw.platform.experiment.loading import validate_spec

    spec = validate_spec({"name": "table4", "description": "Tables II and IV in miniature",
                          "model": {"name": "deeplabv3plus"}, "seeds": [0, 1], "baseline": "baseline",
                          "datasets": [{"name": "isic2016", "root": "/data/isic2016", "folds": ["test"]},
                                       {"name": "mc", "root": "/data/mc", "folds": ["test"]}],
                          "variants": {"baseline": {}, "pdcr-uafr": {"plugins": FULL}}})
    save_record(url, spec, spec_hash(spec))

    for fraction, shift in ((0.1, -6), (0.5, -2), (1.0, 0)):
        grid = {"isic2016": {"baseline": {0: [40 + shift] * 3, 1: [39 + shift] * 3},
                             "pdcr-uafr": {0: [44 + shift // 2] * 3, 1: [43 + shift // 2] * 3}}}
        write_grid(store, "fig7", grid, {"baseline": None, "pdcr-uafr": FULL}, fraction, prefix=f"f{fraction}-")

    layers = {"baseline": None, "uafr-all": {"uafr": {"layers": ["encoder.1", "encoder.2", "decoder.1"]}}}
    for i, layer in enumerate(["encoder.1", "encoder.2", "decoder.1"]):
        layers[f"uafr-{layer}"] = {"uafr": {"layers": [layer]}}
        layers[f"se-{layer}"] = {"se": {"layers": [layer]}}
    xs = {"baseline": 40, "uafr-all": 45, "uafr-encoder.1": 42, "uafr-encoder.2": 43, "uafr-decoder.1": 41,
          "se-encoder.1": 41, "se-encoder.2": 41, "se-decoder.1": 40}
    write_grid(store, "fig6", {"isic2016": {v: {0: [x] * 3, 1: [x - 1] * 3} for v, x in xs.items()}}, layers)
    _real_trial(url, tmp_path_factory)
    return url


def _real_trial(url: str, tmp_path_factory) -> None:
    """pics: one real trial (UAFR at encoder.2) with its checkpoint, and a baseline without one."""
    from dragsaw.workloads.data.synthetic import write_isic2016
    from dragsaw.workloads.recipe import TrialConfig, run_trial

    root = tmp_path_factory.mktemp("isic")
    write_isic2016(root, n_train=8, n_test=3, size=(72, 96), seed=1)
    cfg = TrialConfig.model_validate({
        "data": {"name": "isic2016", "root": str(root)}, "model": {"name": "unet", "width": 0.125},
        # Keys not in sorted order, as a spec may write them: the store keeps config_json sorted,
        # and the picture path must still find the checkpoint's own config (its hash is order-bound).
        "plugins": {"uafr": {"num_maps": 2, "layers": ["encoder.2"]}},
        "train": {"epochs": 1, "batch_size": 4, "image_size": (64, 64)}, "device": "cpu",
        "cache_dir": str(tmp_path_factory.mktemp("cache"))}).model_dump(mode="json")
    checkpoints = CheckpointStore(url, "pics")
    result = run_trial(cfg, lambda metrics, directory: checkpoints.save("real-uafr", directory))
    store = ResultStore(url)
    store.write_trial(trial("pics", "real-uafr", "uafr", "isic2016", 0, cfg, result["metrics"]),
                      result["epochs"], result["cases"])
    bare = json.loads(json.dumps(cfg))
    bare["plugins"] = None
    store.write_trial(trial("pics", "bare-s0", "baseline", "isic2016", 0, bare,
                            {"dice": 0.1, "convention": "paper2d"}), curve(0.1), case_rows([symmetric(5)] * 3))


@pytest.fixture(scope="module")
def table4(store_url, tmp_path_factory) -> Path:
    return write_report(store_url, "table4", tmp_path_factory.mktemp("table4"), trials_for_pictures=[])


@pytest.fixture(scope="module")
def pics(store_url, tmp_path_factory) -> Path:
    return write_report(store_url, "pics", tmp_path_factory.mktemp("pics"), max_picture_cases=2)


# --- the tables ------------------------------------------------------------------------------


def _table(html: str, caption_start: str) -> str:
    start = html.index(f"<caption>{caption_start}")
    return html[start:html.index("</table>", start)]


def test_results_table_paper_layout_and_numbers(table4):
    html = table4.read_text()
    isic = _table(html, "Results on isic2016")
    # Our numbers: mean ± std (n) in percent, from the stored counts (0.80/0.70 and 0.90/0.88).
    assert "<td>75.00 ± 7.07 (2)</td>" in isic
    assert "<td><strong>89.00 ± 1.41 (2)</strong></td>" in isic  # best DI of the column in bold
    # The paper's own numbers beside ours: Table IV DeepLabV3+ bare and Table II/IV "Ours".
    assert "<td>86.09</td><td>91.17</td><td>95.41</td><td>Tables IV, VII</td>" in isic
    assert "<td><strong>88.94</strong></td><td><strong>94.51</strong></td><td><strong>97.71</strong></td>" in isic
    header = isic[isic.index("<thead>"):isic.index("</thead>")]
    assert header.index("JA (%)") < header.index("DI (%)") < header.index("AC (%)") < header.index("Paper JA")
    mc = _table(html, "Results on mc")
    assert "<td>95.30</td><td>—</td><td>99.68</td><td>Table II</td>" in mc  # MC: the paper gives JA and AC
    assert mc.count("<td>—</td><td>—</td><td>—</td><td>—</td>") == 1  # bare DeepLabV3+ on MC: not in the paper


def test_paired_tests_and_cross_dataset_table(table4):
    html = table4.read_text()
    paired = _table(html, "Paired tests against the baseline on isic2016")
    # 2 runs (seeds) x 4 cases: differences 0.10 x 4 (seed 0) and 0.18 x 4 (seed 1). Two runs
    # agree, but two runs say little about the next: mid 14 -/+ 4 x 9.168 (t_1 rescaling), not significant.
    assert "<td>pdcr-uafr</td><td>baseline</td><td>2</td><td>4</td>" in paired
    assert "<td>+14.00 [-22.67, +50.67]</td>" in paired and "<td>2/2</td><td>not significant</td>" in paired
    across = _table(html, "Across datasets")
    assert "isic2016 DI" in across and "mc AC" in across
    assert "paper: ours (Table II)" in across and "<td>94.51</td>" in across and "<td>99.68</td>" in across


def test_markdown_report(table4):
    md = (table4.parent / "report.md").read_text()
    assert "| Variant | JA (%) | DI (%) | AC (%) | Paper JA |" in md
    assert "| **89.00 ± 1.41 (2)** |" in md and "**94.51**" in md
    links = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert links and all((table4.parent / name).is_file() for name in links)
    assert "```yaml" in md and "pdcr-uafr:" in md  # the saved spec


def test_learning_curves_and_provenance(table4):
    html = table4.read_text()
    assert 'id="learning-curves-isic2016"' in html and 'id="learning-curves-mc"' in html
    prov = _table(html, "Provenance")
    assert "feedc0de" in prov and "0123abc" in prov and "x86_64 2 cpus" in prov and "node-a" in prov
    assert "8 completed, 1 failed" in prov and "2025-03-01 12:00:00 UTC" in prov
    assert "Last failure (isic2016-pdcr-uafr-s9 attempt 1): boom" in html
    assert "<td>model selection</td><td>last epoch</td>" in prov.replace("\n", "")


def test_provenance_says_which_model_selection_was_used(tmp_path):
    """best_val trials: the selected epochs and the validation fraction, from the store."""
    url = str(tmp_path / "results")
    store = ResultStore(url)
    for seed, epoch in ((0, 2), (1, 3)):
        cfg = config()
        cfg["eval"] = {"every": 1, "selection": "best_val", "val_fraction": 0.2, "val_every": 1}
        metrics = {"dice": 0.8, "convention": "paper2d", "selection": "best_val", "selected_epoch": epoch,
                   "val_dice": 0.85}
        epochs = [{**e, "val_dice": 0.85 - 0.01 * abs(e["epoch"] - epoch)} for e in curve(0.8)]
        store.write_trial(trial("sel", f"sel-s{seed}", "baseline", "isic2016", seed, cfg, metrics),
                          epochs, case_rows([symmetric(45)] * 3))
    html = write_report(url, "sel", tmp_path / "report", trials_for_pictures=[]).read_text()
    assert "best validation Dice (epochs 2, 3, val fraction 0.2)" in _table(html, "Provenance")
    assert "Dashed: Dice on the validation cases carved from the training data" in html  # the val curve
    cfg = config()
    store.write_trial(trial("sel", "sel-last", "baseline", "isic2016", 5, cfg, {"dice": 0.8, "convention": "paper2d"}),
                      curve(0.8), case_rows([symmetric(45)] * 3))
    prov = _table(write_report(url, "sel", tmp_path / "report2", trials_for_pictures=[]).read_text(), "Provenance")
    assert "best validation Dice (epochs 2, 3, val fraction 0.2) (2 trials); last epoch (1 trial)" in prov


def test_fraction_curve_and_per_layer_plot(store_url, tmp_path):
    page = write_report(store_url, "fig7", tmp_path / "fig7", trials_for_pictures=[]).read_text()
    assert 'id="data-fraction-isic2016"' in page
    assert "Results on isic2016, 10% of the training data" in page
    assert _table(page, "Results on isic2016, 10%").count("<td>—</td><td>—</td><td>—</td>") == 2
    assert "data fraction 0.1 (the paper trains on all training data)" in page
    assert "<strong>94.51</strong>" in _table(page, "Results on isic2016, 100%")
    page = write_report(store_url, "fig6", tmp_path / "fig6", trials_for_pictures=[]).read_text()
    assert 'id="per-layer-isic2016"' in page and 'id="data-fraction' not in page
    png = Image.open(tmp_path / "fig6" / "per-layer-isic2016.png")
    assert png.size[0] > 400 and np.asarray(png.convert("L")).std() > 10


def test_pictures_from_a_real_checkpoint(pics):
    html = pics.read_text()
    assert 'id="uncertainty-real-uafr"' in html and 'id="tsne"' in html
    assert "trial bare-s0 (baseline): no stored checkpoint" in html
    grid = np.asarray(Image.open(pics.parent / "uncertainty-real-uafr.png").convert("L"))
    assert grid.shape[1] > 300 and grid.std() > 10
    # Paper numbers are withheld on synthetic data, and say why.
    assert "synthetic look-alike data" in html


def test_pictures_of_a_trial_run_by_the_trainable_on_another_machine(tmp_path):
    """The trainable writes the config and the checkpoint (hashed by the trial); the report
    rebuilds the trial where its cache folder does not exist (so the config is adapted to this
    machine) and must still find the checkpoint's weights: one config hash on both sides."""
    from dragsaw.platform.launch.trainable import run_one
    from dragsaw.workloads.data.synthetic import write_isic2016

    root, cache, url = tmp_path / "isic", tmp_path / "cache", str(tmp_path / "results")
    write_isic2016(root, n_train=8, n_test=3, size=(72, 96), seed=1)
    cfg = {"data": {"name": "isic2016", "root": str(root)}, "model": {"name": "unet", "width": 0.125},
           # plug-in keys not in sorted order, as a spec may write them
           "plugins": {"uafr": {"num_maps": 2, "layers": ["encoder.2"], "hidden": 4}},
           "train": {"epochs": 1, "batch_size": 4, "image_size": (64, 64)}, "device": "cpu",
           "cache_dir": str(cache)}
    spec = {"experiment": "moved", "trial_id": "moved-uafr", "variant": "uafr", "dataset": "isic2016",
            "fold": "test", "seed": 0, "params": {}, "config": cfg, "resources": {"cpu": 1}}
    run_one(spec, {"store_url": url, "spec_hash": "feedc0de", "git_commit": "0123abc", "versions": {}})
    shutil.rmtree(cache)  # the trial's cache folder is not on the machine that writes the report
    html = write_report(url, "moved", tmp_path / "out", trials_for_pictures=["moved-uafr"],
                        max_picture_cases=1).read_text()
    assert "cannot be rebuilt" not in html and "another config" not in html
    assert 'id="uncertainty-moved-uafr"' in html


def test_cli_report_and_unknown_experiment(store_url, tmp_path, capsys):
    assert main(["report", "--store", store_url, "--experiment", "fig6", "--out", str(tmp_path / "r"),
                 "--pictures", "none"]) == 0
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "report.md").is_file()
    capsys.readouterr()
    assert main(["report", "--store", store_url, "--experiment", "tabel4", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "experiment 'tabel4' is not in the store" in err and "did you mean 'table4'" in err
    assert "experiments there: fig6, fig7, pics, table4" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="not in the store"):
        write_report(store_url, "nope", tmp_path / "y")
    with pytest.raises(ReportError, match="without a completed attempt"):
        write_report(store_url, "fig6", tmp_path / "z", trials_for_pictures=["no-such-trial"])


def test_axes_compare_each_model_with_its_own_baseline(tmp_path):
    """Table IV's shape (model axis x variants, no saved spec): ``fcn+h-pdcr`` is tested against
    ``fcn+baseline``, bold marks the best per model, the paper's row is the model's own."""
    store = ResultStore(str(tmp_path / "results"))
    xs = {"unet+baseline": 30, "unet+h-pdcr": 33, "fcn+baseline": 40, "fcn+h-pdcr": 42}
    for variant, x in xs.items():
        model = variant.split("+")[0]
        for seed in (0, 1):
            cfg = config(plugins={"pdcr": PDCR} if "pdcr" in variant else None, model=model)
            store.write_trial(trial("table4-axes", f"{variant.replace('+', '-')}-s{seed}", variant, "isic2016", seed,
                                    cfg), [], case_rows([symmetric(x - seed), symmetric(x + seed), symmetric(x)]))
    page = write_report(str(tmp_path / "results"), "table4-axes", tmp_path / "out", trials_for_pictures=[])
    results = _table(page.read_text(), "Results on isic2016")
    rows = {r.split("</td>")[0].removeprefix("<tr><td>"): r for r in results.split("<tr>")[2:]}
    rows = {k.removeprefix("<td>"): v for k, v in rows.items()}
    assert "<strong>66.00 ± 0.00 (2)</strong>" in rows["unet+h-pdcr"]  # best of the unet group
    assert "<strong>84.00 ± 0.00 (2)</strong>" in rows["fcn+h-pdcr"]  # best of the fcn group
    # Table IV's own rows: UNet + H-PDCR, FCN + H-PDCR (best of their group too), bare FCN.
    assert "<td><strong>80.52</strong></td><td><strong>87.94</strong></td><td><strong>93.14</strong></td>" \
        in rows["unet+h-pdcr"]
    assert "<strong>82.37</strong>" in rows["fcn+h-pdcr"] and "<td>80.42</td>" in rows["fcn+baseline"]
    paired = _table(page.read_text(), "Paired tests against the baseline")
    assert "<td>unet+h-pdcr</td><td>unet+baseline</td><td>2</td><td>3</td><td>" in paired  # 2 runs, 3 cases
    assert "<td>fcn+h-pdcr</td><td>fcn+baseline</td><td>2</td><td>3</td><td>" in paired


def test_report_on_s3(s3_store_url, tmp_path):
    store = ResultStore(s3_store_url)
    write_grid(store, "table4", {"isic2016": TABLE4["isic2016"]}, {"baseline": None, "pdcr-uafr": FULL})
    page = write_report(s3_store_url, "table4", tmp_path, trials_for_pictures=[]).read_text()
    assert "<td>75.00 ± 7.07 (2)</td>" in _table(page, "Results on isic2016")


# --- the paper's numbers -----------------------------------------------------------------------


def test_paper_number_matching():
    assert paper.lookup("isic2016", "unet+h-pdcr-uafr", "deeplabv3plus").dice == 88.34
    assert paper.lookup("isic2016", "fcn+rf-pdcr", "x").jaccard == 81.55
    assert paper.lookup("isic2016", "baseline", "deeplabv3plus").accuracy == 95.41
    assert paper.lookup("isic2016", "uafr+num_maps=1000", "deeplabv3plus").dice == 92.90
    assert paper.lookup("isic2016", "uafr+num_maps=2", "deeplabv3plus").dice == 93.50  # default M dropped
    assert paper.lookup("isic2016", "kernel_size=7+uafr", "deeplabv3plus").jaccard == 87.27
    assert paper.lookup("isic2016", "pdcr-uafr+l1-norm", "deeplabv3plus").dice == 94.18
    assert paper.lookup("digestpath", "ours", "deeplabv3plus").dice == 79.44
    assert paper.lookup("msd_prostate", "baseline", "unet3d").per_class == {"PE": 63.14, "TR": 86.53}
    assert paper.lookup("isic2016", "my-new-idea", "deeplabv3plus") is None
    assert paper.lookup("isic2017", "baseline", "deeplabv3plus") is None  # Table II lists no bare DeepLabV3+


def test_paper_numbers_are_consistent():
    # 3D "DI" is the mean of the per-class Dice the paper prints (a check of the transcription).
    for row in paper.ROWS:
        if row.per_class:
            assert abs(np.mean(list(row.per_class.values())) - row.dice) < 0.006, row
        for value in (row.jaccard, row.dice, row.accuracy):
            assert value is None or 50 < value < 100, row
        assert row.jaccard is None or row.dice is None or row.jaccard < row.dice, row  # JA < DI always
    assert len(paper.BY_KEY) == len(paper.ROWS)


def test_protocol_problems():
    assert paper.protocol_problems([config("isic2016")]) == []
    assert paper.protocol_problems([config("digestpath", fold="2")]) == []
    problems = paper.protocol_problems([config("digestpath", fold="test", width=0.5, fraction=0.2)], synthetic=True)
    assert problems == ["synthetic look-alike data",
                        "fold 'test' is not the paper's protocol for digestpath (5-fold cross-validation (folds 0-4))",
                        "data fraction 0.2 (the paper trains on all training data)",
                        "model width 0.5 (the paper's networks are full width)"]


# --- the page in a real browser ----------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when absent (about 30 s). Fails if it cannot be."""
    if not os.path.exists(CHROMIUM):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        steps = [["apt-get", "install", "-y", "chromium"], ["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]]
        log = []
        for step in steps:
            if os.path.exists(CHROMIUM):
                break
            try:
                done = subprocess.run(step, check=False, env=env, capture_output=True, text=True, timeout=900)
                log.append(f"$ {' '.join(step)} -> {done.returncode}\n{done.stderr[-1500:]}")
            except (OSError, subprocess.TimeoutExpired) as err:
                log.append(f"$ {' '.join(step)} -> {err}")
        if not os.path.exists(CHROMIUM):
            pytest.fail("the browser test needs Debian's chromium and `apt-get install -y chromium` failed:\n"
                        + "\n".join(log))
    return CHROMIUM


PAGE_FACTS = """({
  tables: document.querySelectorAll('table').length,
  headers: Array.from(document.querySelectorAll('th')).map(th => th.textContent),
  cells: Array.from(document.querySelectorAll('td')).map(td => td.textContent),
  images: Array.from(document.images).map(i => ({png: i.src.startsWith('data:image/png;base64,'),
                                                 width: i.naturalWidth, complete: i.complete})),
  scripts: document.scripts.length,
  external: performance.getEntriesByType('resource').map(e => e.name),
  height: document.documentElement.scrollHeight,
})"""


def render_in_chromium(chromium: str, page: Path, profile: Path) -> tuple[dict, bytes, list[dict]]:
    """(page facts, screenshot PNG, problems: console errors, exceptions, error log entries)."""
    with open(profile.parent / "chromium.log", "wb") as log:
        proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 "--window-size=1280,900", "about:blank"], stdout=log, stderr=log)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, (profile.parent / "chromium.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "chromium did not open its DevTools port in 60 s"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        return asyncio.run(_cdp_session(port, page.resolve().as_uri()))
    finally:
        stop(proc)  # by its PID, as for moto_server


async def _cdp_session(port: int, url: str):
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
            target = next(t for t in await response.json() if t["type"] == "page")
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids, events = itertools.count(1), []

            async def call(method, **params):
                n = next(ids)
                await ws.send_json({"id": n, "method": method, "params": params})
                while True:
                    message = await asyncio.wait_for(ws.receive_json(), 60)
                    if message.get("id") == n:
                        assert "error" not in message, message
                        return message["result"]
                    events.append(message)

            for domain in ("Runtime", "Log", "Page"):
                await call(f"{domain}.enable")
            await call("Page.navigate", url=url)
            while not any(e.get("method") == "Page.loadEventFired" for e in events):
                events.append(await asyncio.wait_for(ws.receive_json(), 60))
            facts = (await call("Runtime.evaluate", expression=PAGE_FACTS, returnByValue=True))["result"]["value"]
            shot = await call("Page.captureScreenshot", format="png")
    problems = [e for e in events if e.get("method") == "Runtime.exceptionThrown"
                or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
                or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    return facts, base64.b64decode(shot["data"]), problems


@pytest.mark.integration
def test_html_renders_in_chromium(chromium, table4, pics, tmp_path):
    for page, variants, min_images in ((table4, ["baseline", "pdcr-uafr"], 3), (pics, ["uafr", "baseline"], 3)):
        html = page.read_text()
        assert "<script" not in html and f'content="{CSP}"' in html
        assert "http://" not in html and "https://" not in html  # nothing to fetch
        profile = tmp_path / f"profile-{page.parent.name}"
        facts, screenshot, problems = render_in_chromium(chromium, page, profile)
        assert problems == [], problems
        assert facts["scripts"] == 0 and facts["external"] == []
        assert facts["tables"] >= 3 and "DI (%)" in facts["headers"] and "Paper DI" in facts["headers"]
        if page is table4:  # two datasets: the ranking across them and its critical-difference diagram
            assert "Mean rank" in facts["headers"] and "Rank mc" in facts["headers"]
        assert all(v in facts["cells"] for v in variants)
        assert len(facts["images"]) >= min_images
        assert all(i["png"] and i["complete"] and i["width"] > 100 for i in facts["images"]), facts["images"]
        assert facts["height"] > 1500
        image = Image.open(io.BytesIO(screenshot)).convert("L")
        assert image.size[0] == 1280 and image.size[1] > 500 and np.asarray(image).std() > 5  # not a blank page
    # Negative control: the same check sees a failed load, a console error and an uncaught exception.
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                      '<script>console.error("bad"); undefinedFunction()</script></body></html>')
    _, _, problems = render_in_chromium(chromium, broken, tmp_path / "profile-broken")
    seen = json.dumps(problems)
    assert "Failed to load resource" in seen and '"value": "bad"' in seen and "Uncaught" in seen
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_reports_and_leaderboards_read_the_store_not_the_launcher():
    """Reports and leaderboards read what the store keeps (results, records, checkpoints):
    they import nothing of the launcher (which starts Ray)."""
    import ast

    root = Path(__file__).resolve().parents[2] / "platform"
    offending = []
    for package in ("report", "leaderboard", "store"):
        for path in sorted((root / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offending += [f"{package}/{path.name}: {n}" for n in names if n.startswith("dragsaw.platform.launch")]
    assert offending == []


def test_learning_curves_are_means_over_the_counted_trials_read_chunk_by_chunk(tmp_path, monkeypatch):
    """The curves' points are means over the completed trials (a failed trial's epochs do not
    count), the same whether the epochs table is read in one chunk or many."""
    import dragsaw.platform.store._files as files_module
    from dragsaw.platform.report.collect import load_experiment
    from dragsaw.platform.report.figures import _mean_curves

    url = str(tmp_path / "results")
    store = ResultStore(url)
    for seed, final in ((0, 0.8), (1, 0.6)):
        store.write_trial(trial("lc", f"lc-s{seed}", "baseline", "isic2016", seed, config(),
                                {"dice": final, "convention": "paper2d"}), curve(final),
                          case_rows([symmetric(45)] * 3))
    store.write_trial(trial("lc", "lc-s9", "baseline", "isic2016", 9, config(), status="failed"), curve(0.1), [])
    exp = load_experiment(url, "lc")
    assert sorted(t.trial_id for t in exp.trials) == ["lc-s0", "lc-s1"]
    whole = _mean_curves(exp, exp.trials)
    monkeypatch.setattr(files_module, "CHUNK_ROWS", 2)
    assert len(list(store.scan("epochs", "lc"))) == 3  # one chunk per trial's epochs file
    assert _mean_curves(exp, exp.trials) == whole
    curves = whole["isic2016"]
    assert set(curves) == {("baseline", "train_loss"), ("baseline", "dice")}
    assert curves[("baseline", "train_loss")] == pytest.approx({1: 1.0, 2: 0.5, 3: 1 / 3})
    assert curves[("baseline", "dice")] == pytest.approx({1: 0.5, 2: 0.6, 3: 0.7})
