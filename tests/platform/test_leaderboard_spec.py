"""Leaderboards of stores written the way ``dragsaw run`` writes them (the experiment record
with the spec beside the results): the spec's baseline and Holm family by default, the
quickstart's single bad run not called significant, grids over data fractions and crossed
axes, tied means, JSON nulls, the command line and the ranking across datasets with its
critical-difference diagram."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from dragsaw.platform.cli import main
from dragsaw.platform.experiment.loading import load_spec, validate_spec
from dragsaw.platform.launch.run import save_record
from dragsaw.platform.leaderboard import across_datasets, draw_cd_diagram, format_rows, leaderboard
from dragsaw.platform.store import ResultStore

from .test_leaderboard import case_rows, symmetric
from .test_store import make_trial

QUICKSTART = "configs/experiments/quickstart.yaml"


def quickstart_spec(**changes):
    spec = load_spec(QUICKSTART)
    if changes:
        spec = validate_spec({**spec.model_dump(mode="json"), **changes})
    return spec


def write_run(store, variant, seed, dice, experiment="quickstart", dataset="isic2016", fold="test",
              fraction=1.0) -> None:
    """One completed trial whose per-case Dice (foreground and background alike) are ``dice``
    (multiples of 0.02)."""
    counts = [symmetric(int(round(50 * d))) for d in dice]
    tid = f"{dataset}-{variant}-f{fraction:g}-s{seed}".replace("+", "_")
    trial = make_trial(tid, experiment=experiment, dataset=dataset, variant=variant, seed=seed, fold=fold,
                       metrics={"dice": float(np.mean(dice)), "convention": "paper2d"},
                       config={"data": {"fraction": fraction}})
    store.write_trial(trial, [], case_rows(counts))


BASE = [0.70 + 0.02 * (i % 8) for i in range(16)]
# Seed 0: better on 12 of 16 images (+0.02), worse on 4 (-0.04): +0.005. Seed 1: worse on all 16: -0.05.
UAFR = {0: [b + (0.02 if i < 12 else -0.04) for i, b in enumerate(BASE)],
        1: [b - (0.04 if i % 2 else 0.06) for i, b in enumerate(BASE)]}


@pytest.fixture
def quickstart(local_store_url) -> ResultStore:
    """The quickstart's situation: baseline and UAFR, 2 seeds x 16 test images, with the spec's
    record (4 variants, 3 comparisons in its family) saved as ``dragsaw run`` saves it."""
    save_record(local_store_url, quickstart_spec(), "hash")
    store = ResultStore(local_store_url)
    for seed in (0, 1):
        write_run(store, "baseline", seed, BASE)
        write_run(store, "uafr", seed, UAFR[seed])
    return store


def by_variant(rows):
    return {r["variant"]: r for r in rows}


def test_quickstart_bad_run_is_not_significant_by_default(quickstart):
    rows = leaderboard(quickstart, experiment="quickstart")  # no baseline argument: the spec's
    uafr = by_variant(rows)["uafr"]
    assert uafr["baseline"] == "baseline" and uafr["n_runs"] == 2 and uafr["n_cases"] == 16
    assert uafr["run_effects"] == pytest.approx([0.005, -0.05], abs=1e-9) and uafr["runs_agree"] == "1/2"
    assert uafr["delta"] == pytest.approx(-0.0225)
    assert uafr["ci_low"] < 0 < uafr["ci_high"] and uafr["verdict"] == "not significant"
    # The spec's family holds 3 comparisons (pdcr, uafr, pdcr-uafr), whatever is in the store.
    assert uafr["p_value"] == pytest.approx(min(1.0, 3 * uafr["p_boot"]))
    # What the old leaderboard did, 32 (seed, case) pairs as independent: "significantly worse".
    pooled = np.concatenate([np.array(UAFR[s]) - np.array(BASE) for s in (0, 1)])
    old: Any = stats.wilcoxon(np.round(pooled, 12))
    assert old.pvalue < 0.05


def test_family_is_the_specs_not_the_boards(quickstart):
    for seed in (0, 1):
        write_run(quickstart, "pdcr", seed, [b + 0.02 for b in BASE])
    full = by_variant(leaderboard(quickstart, experiment="quickstart"))
    shown = by_variant(leaderboard(quickstart, experiment="quickstart", variants=["uafr"]))
    assert set(shown) == {"uafr", "baseline"}  # the baseline stays for the comparison
    assert shown["uafr"]["p_value"] == full["uafr"]["p_value"]
    assert full["pdcr"]["p_value"] == pytest.approx(min(1.0, 3 * full["pdcr"]["p_boot"]))
    none = by_variant(leaderboard(quickstart, experiment="quickstart", baseline=None))
    assert "p_value" not in none["uafr"] and none["uafr"]["n_runs"] == 2


def test_many_consistent_runs_are_significant(local_store_url):
    save_record(local_store_url, quickstart_spec(), "hash")
    store = ResultStore(local_store_url)
    rng = np.random.default_rng(0)
    for seed in range(6):
        write_run(store, "baseline", seed, BASE)
        write_run(store, "pdcr", seed, [b + 0.02 * rng.integers(1, 3) for b in BASE])
    pdcr = by_variant(leaderboard(store, experiment="quickstart"))["pdcr"]
    assert pdcr["runs_agree"] == "6/6" and pdcr["ci_low"] > 0 and pdcr["verdict"] == "better"
    assert pdcr["n_runs"] == 6 and pdcr["n_cases"] == 16


def test_one_run_per_variant_is_never_significant(local_store_url):
    save_record(local_store_url, quickstart_spec(), "hash")
    store = ResultStore(local_store_url)
    write_run(store, "baseline", 0, BASE)
    write_run(store, "pdcr", 0, [b + 0.1 for b in BASE])  # better on every case, by far
    pdcr = by_variant(leaderboard(store, experiment="quickstart"))["pdcr"]
    assert pdcr["p_value"] is None or math.isnan(pdcr["p_value"])
    assert "too few" in pdcr["verdict"] and pdcr["ci_low"] != pdcr["ci_low"]  # NaN: no interval


def test_fractions_are_boards_and_ties_share_a_rank(local_store_url):
    save_record(local_store_url, quickstart_spec(), "hash")
    store = ResultStore(local_store_url)
    for fraction, shift in ((0.25, -0.1), (0.5, -0.04), (1.0, 0.0)):
        for seed in (0, 1):
            write_run(store, "baseline", seed, [b + shift for b in BASE], fraction=fraction)
            write_run(store, "pdcr", seed, [b + shift for b in BASE], fraction=fraction)  # tied with baseline
            write_run(store, "uafr", seed, [b + shift - 0.02 for b in BASE], fraction=fraction)
    rows = leaderboard(store, experiment="quickstart")
    assert [(r["fraction"], r["variant"], r["rank"]) for r in rows] == [
        (f, v, rank) for f in (0.25, 0.5, 1.0) for v, rank in (("baseline", 1), ("pdcr", 1), ("uafr", 3))]
    assert all(r["n"] == 2 for r in rows)  # never pooled over fractions
    assert {round(r["mean"] - np.mean(BASE), 6) for r in rows if r["variant"] == "baseline"} == {-0.1, -0.04, 0.0}
    pdcr = [r for r in rows if r["variant"] == "pdcr"]
    assert all(r["delta"] == 0 and r["p_boot"] == 1.0 and r["n_cases"] == 16 for r in pdcr)


def test_crossed_axes_compare_with_their_own_baseline(local_store_url):
    spec = quickstart_spec(axes={"model.name": ["deeplabv3plus", "unet"]})
    save_record(local_store_url, spec, "hash")
    store = ResultStore(local_store_url)
    for seed in (0, 1):
        for model, shift in (("deeplabv3plus", 0.0), ("unet", -0.1)):
            write_run(store, f"{model}+baseline", seed, [b + shift for b in BASE])
            write_run(store, f"{model}+pdcr", seed, [b + shift + 0.02 for b in BASE])
    rows = leaderboard(store, experiment="quickstart")
    got = by_variant(rows)
    assert got["unet+pdcr"]["baseline"] == "unet+baseline" and got["unet+pdcr"]["delta"] == pytest.approx(0.02)
    # The axis is a column of its own, right after the variant.
    assert list(got["unet+pdcr"])[list(got["unet+pdcr"]).index("variant") + 1] == "model.name"
    assert {r["variant"]: r["model.name"] for r in rows}["deeplabv3plus+pdcr"] == "deeplabv3plus"
    assert by_variant(leaderboard(store, experiment="quickstart", baseline=None))["unet+pdcr"]["model.name"] == "unet"
    assert got["deeplabv3plus+pdcr"]["baseline"] == "deeplabv3plus+baseline"
    # 8 variants, 6 of them compared with a baseline: the family has 6 members.
    assert got["unet+pdcr"]["p_value"] == pytest.approx(min(1.0, 6 * got["unet+pdcr"]["p_boot"]))


def test_json_has_real_nulls_and_the_required_keys(quickstart):
    data = json.loads(format_rows(leaderboard(quickstart, experiment="quickstart"), "json"))
    required = {"experiment", "dataset", "variant", "metric", "mean", "std", "n", "rank", "n_runs", "n_cases",
                "p_value", "ci_low", "ci_high", "runs_agree"}
    assert all(required <= set(r) for r in data)
    base = next(r for r in data if r["variant"] == "baseline")
    assert base["p_value"] is None and base["ci_low"] is None and base["empty"] == "nan"


def test_cli_leaderboard_default_baseline_legend_and_none(quickstart, capsys):
    assert main(["leaderboard", "--store", quickstart.url, "--experiment", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert "not significant" in out and "1/2" in out
    assert "Columns:" in out and "runs_agree" in out.split("Columns:")[1]
    assert main(["leaderboard", "--store", quickstart.url, "--experiment", "quickstart", "--format", "json",
                 "--baseline", "none"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all("p_value" not in r for r in data) and all(r["std"] is not None for r in data)
    assert main(["leaderboard", "--store", quickstart.url, "--baseline", "uafrr"]) == 2
    assert "did you mean 'uafr'" in capsys.readouterr().err
    assert main(["leaderboard", "--store", quickstart.url, "--cd-diagram", "x.png"]) == 2
    assert "--across datasets" in capsys.readouterr().err


def _three_datasets(store_url: str) -> ResultStore:
    datasets = [{"name": n, "root": f"data/{n}"} for n in ("isic2016", "isic2017", "ph2")]
    save_record(store_url, quickstart_spec(datasets=datasets), "hash")
    store = ResultStore(store_url)
    for d, dataset in enumerate(("isic2016", "isic2017", "ph2")):
        for seed in (0, 1):
            write_run(store, "baseline", seed, [b - 0.02 * d for b in BASE], dataset=dataset)
            write_run(store, "pdcr", seed, [b + 0.04 for b in BASE], dataset=dataset)
            write_run(store, "uafr", seed, [b + 0.02 - 0.06 * (d == 1) for b in BASE], dataset=dataset)
    return store


def test_across_datasets_ranks_friedman_cd(local_store_url, tmp_path, capsys):
    store = _three_datasets(local_store_url)
    ranking = across_datasets(leaderboard(store, experiment="quickstart"))
    # Ranks per dataset: isic2016 pdcr 1, uafr 2, baseline 3; isic2017 pdcr 1, baseline 2, uafr 3;
    # ph2 pdcr 1, uafr 2, baseline 3 -> mean ranks 1, 7/3, 8/3.
    assert [(r["variant"], r["mean_rank"]) for r in ranking.rows] == [
        ("pdcr", pytest.approx(1.0)), ("uafr", pytest.approx(7 / 3)), ("baseline", pytest.approx(8 / 3))]
    assert ranking.rows[1]["rank isic2017"] == 3.0 and ranking.baseline == "baseline"
    chi2 = 12 * 3 / (3 * 4) * (1 + (7 / 3) ** 2 + (8 / 3) ** 2 - 3 * 16 / 4)
    assert ranking.friedman is not None and ranking.friedman.chi2 == pytest.approx(chi2)
    assert all(r["cd"] == pytest.approx(2.343 * math.sqrt(3 * 4 / 18), abs=1e-3) for r in ranking.rows)
    pdcr = ranking.rows[0]
    assert pdcr["wilcoxon"] == "exact" and pdcr["p_wilcoxon"] == pytest.approx(0.25)  # 3 of 3 datasets better: 2/8
    assert pdcr["p_holm"] == pytest.approx(0.5) and ranking.rows[1]["p_holm"] == pytest.approx(0.75)
    assert ranking.rows[2]["p_holm"] is None  # the baseline
    png, svg = tmp_path / "cd.png", tmp_path / "cd.svg"
    assert draw_cd_diagram(ranking, png)[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    draw_cd_diagram(ranking, svg)
    assert "<svg" in svg.read_text() and "pdcr" in svg.read_text()
    with pytest.raises(ValueError, match="format"):
        draw_cd_diagram(ranking, tmp_path / "cd.pdf")
    assert main(["leaderboard", "--store", store.url, "--no-legend"]) == 0  # the board, then the ranking
    out = capsys.readouterr().out
    assert "Ranking across 3 datasets" in out and out.index("isic2017") < out.index("Ranking across")
    argv = ["leaderboard", "--store", store.url, "--across", "datasets", "--format", "json",
            "--cd-diagram", str(tmp_path / "cli.svg")]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"variant", "mean_rank", "n_datasets", "friedman_p", "p_holm", "cd"} <= set(data[0])
    assert data[0]["n_datasets"] == 3 and (tmp_path / "cli.svg").exists()


def test_report_ranks_across_datasets_with_a_cd_diagram(local_store_url, tmp_path):
    from dragsaw.platform.report import write_report

    _three_datasets(local_store_url)
    page = write_report(local_store_url, "quickstart", tmp_path / "report", trials_for_pictures=[])
    html = page.read_text()
    start = html.index("<caption>Ranking across 3 datasets")
    table = html[start:html.index("</table>", start)]
    assert "<th>Rank isic2017</th>" in table and "<td>pdcr</td><td><strong>1.00</strong></td>" in table
    assert "Nemenyi critical difference CD = 1.91" in html[start:]
    assert (tmp_path / "report" / "cd-diagram.png").read_bytes()[:4] == b"\x89PNG"
    assert "Critical-difference diagram" in html and "](cd-diagram.png)" in (tmp_path / "report" / "report.md").read_text()
    paired = html[html.index("<caption>Paired tests against the baseline on isic2016"):]
    paired = paired[:paired.index("</table>")]
    # Every case better by 0.04 in both runs: no spread, so the interval is the point; p is the
    # bootstrap's smallest, 2 / 2001, times 3 (the spec's family: pdcr, uafr, pdcr-uafr).
    assert "<td>pdcr</td><td>baseline</td><td>2</td><td>16</td>" in paired
    assert "<td>+4.00 [+4.00, +4.00]</td><td>0.003</td>" in paired and "<td>2/2</td><td>better</td>" in paired


def test_record_of_an_older_spec_format_still_gives_the_baseline(local_store_url):
    """A record whose spec this version no longer validates: its plain `baseline` and
    `variants` still define the comparisons and the family."""
    import pathlib

    record = {"spec": {"name": "quickstart", "baseline": "baseline", "a_key_from_the_past": 1,
                       "variants": {"baseline": {}, "pdcr": {}, "uafr": {}}}}
    folder = pathlib.Path(local_store_url) / "_experiments" / "quickstart"
    folder.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(record))
    store = ResultStore(local_store_url)
    for seed in (0, 1):
        write_run(store, "baseline", seed, BASE)
        write_run(store, "uafr", seed, UAFR[seed])
    uafr = by_variant(leaderboard(store, experiment="quickstart"))["uafr"]
    assert uafr["baseline"] == "baseline" and uafr["p_value"] == pytest.approx(min(1.0, 2 * uafr["p_boot"]))


def test_long_lists_are_shortened_in_tables_only(quickstart):
    rows = leaderboard(quickstart, experiment="quickstart")
    rows[0]["run_effects"] = [0.01 * i for i in range(9)]
    table = format_rows(rows, "table")
    assert "+0.0500 ... (9)" in table and "+0.0800" not in table
    assert json.loads(format_rows(rows, "json"))[0]["run_effects"][-1] == pytest.approx(0.08)
    md = format_rows(rows, "markdown", legend=True)
    assert "- `runs_agree`: runs whose own difference has the sign of delta" in md
