"""Leaderboards on hand-computed results: means, std, n, ranks under both conventions,
comparisons with a baseline (per-run effects and deltas by hand), formats, and the same answer
from a local folder and from S3 (a real moto_server). The statistics themselves are tested in
test_leaderboard_stats.py, the spec's baseline and the grid's axes in test_leaderboard_spec.py."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from dragsaw.platform.leaderboard import (
    CONVENTIONS,
    METRICS,
    cross_dataset_table,
    format_rows,
    holm,
    leaderboard,
)
from dragsaw.platform.store import IncompleteTrials, ResultStore

from .test_store import make_trial

PIXELS = 100


def symmetric(x: int) -> tuple[int, int, int]:
    """Foreground (tp, fp, fn) of a 100-pixel case whose foreground AND background Dice are x / 50."""
    return (x, 50 - x, 50 - x)


EMPTY = (0, 0, 0)  # no foreground in prediction or reference: fg Dice undefined, bg Dice 1
SKEWED = (10, 10, 20)  # fg Dice 20/50 = 0.4; bg (tp 60, fp 20, fn 10) Dice 120/150 = 0.8

# variant -> seed -> foreground counts of cases c1, c2, c3 (fold "0").
HAND = {
    "A": {0: [symmetric(40), symmetric(45), symmetric(30)],   # 0.8, 0.9, 0.6
          1: [symmetric(35), symmetric(45), symmetric(25)]},  # 0.7, 0.9, 0.5
    "B": {0: [symmetric(45), symmetric(50), symmetric(35)],   # 0.9, 1.0, 0.7
          1: [symmetric(40), symmetric(50), symmetric(35)]},  # 0.8, 1.0, 0.7
    "C": {0: [symmetric(40), EMPTY, SKEWED],                  # paper2d 0.8, 1.0, 0.6; foreground 0.8, -, 0.4
          1: [symmetric(45), EMPTY, SKEWED]},                 # paper2d 0.9, 1.0, 0.6; foreground 0.9, -, 0.4
}
# Per-case values written out by hand, in (seed, case) order.
PAPER2D = {"A": [.8, .9, .6, .7, .9, .5], "B": [.9, 1., .7, .8, 1., .7], "C": [.8, 1., .6, .9, 1., .6]}
FOREGROUND = {"A": PAPER2D["A"], "B": PAPER2D["B"], "C": [.8, None, .4, .9, None, .4]}


def case_rows(fg_counts, empty="nan") -> list[dict]:
    rows = []
    for i, (tp, fp, fn) in enumerate(fg_counts):
        tn = PIXELS - tp - fp - fn
        for k, (name, c) in enumerate((("background", (tn, fn, fp, tp)), ("lesion", (tp, fp, fn, tn)))):
            den = 2 * c[0] + c[1] + c[2]
            rows.append({"case_id": f"c{i + 1}", "class_index": k, "class_name": name, "tp": c[0], "fp": c[1],
                         "fn": c[2], "tn": c[3], "dice": 2 * c[0] / den if den else math.nan,
                         "jaccard": c[0] / (c[0] + c[1] + c[2]) if den else math.nan,
                         "accuracy": (c[0] + c[3]) / PIXELS, "empty": empty})
    return rows


def write_hand(store: ResultStore, experiment="hand", dataset="isic2016", convention="paper2d",
               variants=HAND, seeds_of=None, attempt=1) -> None:
    for variant, by_seed in variants.items():
        for seed, counts in by_seed.items():
            seed = (seeds_of or {}).get(variant, {}).get(seed, seed)
            tid = f"{dataset}-{variant}-s{seed}"
            metrics = {"dice": 0.0, "convention": convention}
            store.write_trial(make_trial(tid, experiment=experiment, dataset=dataset, variant=variant, seed=seed,
                                         attempt=attempt, metrics=metrics), [], case_rows(counts))


@pytest.fixture
def hand_store(local_store_url) -> ResultStore:
    """HAND written as attempt 2 of every trial, plus results that must not count: a failed
    first attempt (with wrong cases, rewritten by the retry), a trial whose trials row never
    landed (its writer crashed after the cases), and a failed trial with cases."""
    store = ResultStore(local_store_url)
    store.write_trial(make_trial("isic2016-A-s0", experiment="hand", variant="A", status="failed", metrics={}),
                      [], case_rows([symmetric(0)] * 3))
    write_hand(store, attempt=2)
    crashed = make_trial("isic2016-B-s9", experiment="hand", variant="B", seed=9)
    store._files.put(store.file_path("cases", "hand", "isic2016", "isic2016-B-s9"),
                     _cases_bytes(crashed, case_rows([EMPTY, EMPTY, EMPTY])))
    store.write_trial(make_trial("isic2016-C-s7", experiment="hand", variant="C", seed=7, status="failed",
                                 metrics={"convention": "paper2d"}), [], case_rows([symmetric(0)] * 3))
    return store


def _cases_bytes(trial, rows) -> bytes:
    from dragsaw.platform.store._files import to_parquet
    from dragsaw.platform.store._schema import cases_table, identity

    return to_parquet("cases", cases_table(identity(trial), rows))


def by_variant(rows):
    return {r["variant"]: r for r in rows}


def test_means_std_n_rank_paper2d(hand_store):
    rows = leaderboard(hand_store, experiment="hand")
    got = by_variant(rows)
    # Trial scores (mean over cases of the per-case class means), by hand:
    # A: (0.8+0.9+0.6)/3 = 0.76667, (0.7+0.9+0.5)/3 = 0.7; B: 0.86667, 0.83333; C: 0.8, 0.83333.
    expect = {"A": (0.7333333333, 0.0471404521), "B": (0.85, 0.0235702260), "C": (0.8166666667, 0.0235702260)}
    for v, (mean, std) in expect.items():
        assert got[v]["mean"] == pytest.approx(mean, abs=1e-9) and got[v]["std"] == pytest.approx(std, abs=1e-9)
        assert got[v]["n"] == 2 and got[v]["convention"] == "paper2d" and got[v]["empty"] == "nan"
    assert [(r["rank"], r["variant"]) for r in rows] == [(1, "B"), (2, "C"), (3, "A")]
    assert all(r["metric"] == "dice" and r["experiment"] == "hand" and r["dataset"] == "isic2016" for r in rows)


def test_foreground_convention(hand_store):
    rows = leaderboard(hand_store, experiment="hand", convention="foreground")
    got = by_variant(rows)
    # C: per class (lesion) mean over cases ignoring the empty case: (0.8+0.4)/2 = 0.6, (0.9+0.4)/2 = 0.65.
    assert got["C"]["mean"] == pytest.approx(0.625) and got["C"]["std"] == pytest.approx(0.0353553391)
    assert got["A"]["mean"] == pytest.approx(0.7333333333) and got["B"]["mean"] == pytest.approx(0.85)
    assert [(r["rank"], r["variant"]) for r in rows] == [(1, "B"), (2, "A"), (3, "C")]
    assert {r["convention"] for r in rows} == {"foreground"}


def _run_effects(per_case, variant, baseline="A"):
    """Each seed's mean paired difference over the cases defined on both sides, by hand."""
    effects = []
    for seed in (0, 1):
        pairs = [(x, b) for x, b in zip(per_case[variant][3 * seed: 3 * seed + 3],
                                        per_case[baseline][3 * seed: 3 * seed + 3]) if x is not None and b is not None]
        effects.append(float(np.mean([x - b for x, b in pairs])))
    return effects


@pytest.mark.parametrize("convention, per_case", [("paper2d", PAPER2D), ("foreground", FOREGROUND)])
def test_comparisons_against_baseline(hand_store, convention, per_case):
    rows = leaderboard(hand_store, experiment="hand", baseline="A", convention=convention)
    got = by_variant(rows)
    for v in ("B", "C"):
        effects = _run_effects(per_case, v)
        assert got[v]["run_effects"] == pytest.approx(effects, abs=1e-6), v
        assert got[v]["delta"] == pytest.approx(np.mean(effects), rel=1e-9), v
        assert got[v]["baseline"] == "A" and got[v]["n_runs"] == 2
        assert got[v]["ci_low"] <= got[v]["delta"] <= got[v]["ci_high"]
        assert got[v]["runs_agree"] == f"{sum(np.sign(e) == np.sign(np.mean(effects)) for e in effects)}/2"
    # B beats A by 0.1 on 5 of 6 (seed, case) pairs and by 0.2 on one: run effects 0.1 and 0.1333.
    assert got["B"]["run_effects"] == pytest.approx([0.1, 0.4 / 3], abs=1e-6)
    assert got["B"]["n_cases"] == 3 and got["C"]["n_cases"] == (3 if convention == "paper2d" else 2)
    # Holm over the family {B, C} (no spec: the variants present): the smaller p doubled.
    low, high = sorted(("B", "C"), key=lambda v: got[v]["p_boot"])
    assert got[low]["p_value"] == pytest.approx(min(1.0, 2 * got[low]["p_boot"]))
    assert got[high]["p_value"] == pytest.approx(max(got[low]["p_value"], got[high]["p_boot"]))
    assert all(got["A"][k] is None for k in ("p_value", "p_boot", "delta", "ci_low", "ci_high", "runs_agree"))
    assert got["A"]["n_runs"] == 2 and got["A"]["n_cases"] == 3  # the baseline's own distinct cases


def test_seeds_differ_runs_unpaired(local_store_url):
    """Runs with other seeds are not pairs: each side's runs are drawn on their own, over the
    same cases."""
    store = ResultStore(local_store_url)
    write_hand(store, variants={"A": HAND["A"], "B": HAND["B"]}, seeds_of={"B": {0: 10, 1: 11}})
    got = by_variant(leaderboard(store, baseline="A"))
    # Run means: A 0.76667, 0.7; B 0.86667, 0.83333 -> delta 0.85 - 0.73333.
    assert got["B"]["delta"] == pytest.approx(0.85 - 0.7333333333)
    assert got["B"]["run_effects"] == pytest.approx([0.8666667 - 0.7333333, 0.8333333 - 0.7333333], abs=1e-6)
    assert got["B"]["n_runs"] == 2 and got["B"]["n_cases"] == 3 and got["B"]["runs_agree"] == "2/2"
    assert got["B"]["p_value"] == pytest.approx(got["B"]["p_boot"])  # one comparison: Holm is the identity


def test_holm_hand_case():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # 3 x .01; 2 x .03; max(.06, .04)
    assert holm([0.5, 0.01]) == pytest.approx([0.5, 0.02])
    assert holm([0.02, 0.6, 0.03]) == pytest.approx([0.06, 0.6, 0.06])
    out = holm([0.04, float("nan"), 0.01])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([0.9, 0.8]) == [1.0, 1.0] and holm([]) == []  # 2 x .8 capped at 1; then max(1, .9)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([1.5])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("empty", ["nan", "one"])
def test_equals_workloads_summarize(local_store_url, metric, convention, empty):
    """The SQL reimplementation gives exactly ``dragsaw.workloads.metrics.summarize``."""
    from dragsaw.workloads.metrics import CONVENTIONS as W_CONVENTIONS
    from dragsaw.workloads.metrics import METRICS as W_METRICS
    from dragsaw.workloads.metrics import case_rows as w_case_rows
    from dragsaw.workloads.metrics import summarize

    assert (W_CONVENTIONS, W_METRICS) == (CONVENTIONS, METRICS)
    rng = np.random.default_rng(7)
    store = ResultStore(local_store_url)
    expected = {}
    for t in range(4):
        counts = np.zeros((9, 3, 4), np.int64)
        labels_t = rng.integers(0, 3, (9, 64))
        labels_p = np.where(rng.random((9, 64)) < 0.7, labels_t, rng.integers(0, 3, (9, 64)))
        labels_t[0] = labels_p[0] = 0  # a case with only background: fg classes undefined under "nan"
        labels_t[1] = np.where(labels_t[1] == 2, 1, labels_t[1])  # class 2 absent from one reference
        labels_p[1] = np.where(labels_p[1] == 2, 1, labels_p[1])
        if t == 3:  # class 2 in no case at all: its foreground mean, and so the trial's, is NaN under "nan"
            labels_t, labels_p = np.minimum(labels_t, 1), np.minimum(labels_p, 1)
        for b in range(9):
            for m in range(3):
                tp = int(((labels_p[b] == m) & (labels_t[b] == m)).sum())
                fp = int(((labels_p[b] == m) & (labels_t[b] != m)).sum())
                fn = int(((labels_p[b] != m) & (labels_t[b] == m)).sum())
                counts[b, m] = (tp, fp, fn, 64 - tp - fp - fn)
        rows = [r for b in range(9) for r in w_case_rows(f"k{b}", counts[b], ["bg", "a", "b"], empty)]
        store.write_trial(make_trial(f"t{t}", variant=f"v{t}", metrics={"convention": convention}), [], rows)
        expected[f"v{t}"] = summarize(counts, convention, metric, empty)
    rows = leaderboard(store, metric=metric)
    got = {r["variant"]: r["mean"] for r in rows}
    assert got.keys() == expected.keys()
    assert all((r["rank"] is None) == math.isnan(r["mean"]) for r in rows)
    for v, want in expected.items():
        assert got[v] == pytest.approx(want, rel=1e-12, abs=1e-15, nan_ok=True), v


def test_default_convention_per_dataset_and_cross_dataset_table(local_store_url):
    store = ResultStore(local_store_url)
    write_hand(store, dataset="isic2016", convention="paper2d")
    write_hand(store, dataset="msd_heart", convention="foreground")
    rows = leaderboard(store)
    conv = {(r["dataset"], r["variant"]): (r["convention"], r["mean"]) for r in rows}
    assert conv[("isic2016", "C")] == ("paper2d", pytest.approx(0.8166666667))
    assert conv[("msd_heart", "C")] == ("foreground", pytest.approx(0.625))
    assert [r["variant"] for r in leaderboard(store, dataset="msd_heart")] == ["B", "A", "C"]
    table = cross_dataset_table(rows)
    assert [r["variant"] for r in table] == ["B", "C", "A"]
    assert list(table[0]) == ["variant", "isic2016", "msd_heart"]
    assert table[0] == {"variant": "B", "isic2016": "0.8500 ± 0.0236", "msd_heart": "0.8500 ± 0.0236"}
    assert table[1]["msd_heart"] == "0.6250 ± 0.0354"
    only_a = cross_dataset_table([r for r in rows if r["variant"] == "A" and r["dataset"] == "isic2016"])
    assert only_a == [{"variant": "A", "isic2016": "0.7333 ± 0.0471"}]
    text = format_rows(table, "table")
    assert "0.8500 ± 0.0236" in text.splitlines()[2] and text.splitlines()[0].split() == ["variant", "isic2016",
                                                                                         "msd_heart"]


def test_formats(hand_store):
    rows = leaderboard(hand_store, baseline="A")
    data = json.loads(format_rows(rows, "json"))
    assert [r["variant"] for r in data] == ["B", "C", "A"]
    required = {"experiment", "dataset", "variant", "metric", "convention", "mean", "std", "n", "rank", "p_value",
                "n_runs", "n_cases", "ci_low", "ci_high", "runs_agree", "delta", "fraction"}
    assert all(required <= set(r) for r in data)
    assert data[2]["p_value"] is None and isinstance(data[0]["p_value"], float)
    single = leaderboard(hand_store, variants=["A"], experiment="hand")
    single[0]["std"] = float("nan")
    assert json.loads(format_rows(single, "json"))[0]["std"] is None  # NaN -> null, valid JSON
    parsed = list(csv.DictReader(io.StringIO(format_rows(rows, "csv"))))
    assert [r["variant"] for r in parsed] == ["B", "C", "A"] and parsed[2]["p_value"] == ""
    assert float(parsed[0]["mean"]) == rows[0]["mean"]
    md = format_rows(rows, "markdown").splitlines()
    assert md[0].startswith("| experiment | dataset | fraction | rank | variant |") and md[1].startswith("|---|")
    assert len(md) == 2 + 3 and "| B |" in md[2]
    table = format_rows(rows, "table").splitlines()
    assert table[0].split()[:5] == ["experiment", "dataset", "fraction", "rank", "variant"] and "0.8500" in table[2]
    assert format_rows([], "table") == "(no rows)" and format_rows([], "json") == "[]"
    with pytest.raises(ValueError, match="`fmt` must be one of"):
        format_rows(rows, "xml")


def test_filters_and_bad_input(hand_store):
    assert [r["variant"] for r in leaderboard(hand_store, variants=["C", "A"])] == ["C", "A"]
    rows = leaderboard(hand_store, variants=["C"], baseline="A")  # the baseline is kept for the comparison
    assert [r["variant"] for r in rows] == ["C", "A"]
    assert leaderboard(hand_store, dataset="msd_heart") == []
    with pytest.raises(ValueError, match="variant 'D' has no completed trials.*valid: 'A', 'B', 'C'"):
        leaderboard(hand_store, variants=["D"])
    with pytest.raises(ValueError, match="did you mean 'hand'"):
        leaderboard(hand_store, experiment="hamd")
    with pytest.raises(ValueError, match="`metric` must be one of"):
        leaderboard(hand_store, metric="hd95")
    with pytest.raises(ValueError, match="`convention` must be one of"):
        leaderboard(hand_store, convention="micro")


@pytest.mark.parametrize("server", ["s3", pytest.param("seaweed", marks=pytest.mark.integration)])
def test_same_answer_local_and_s3(local_store_url, server, request):
    """The same board from a folder and from a real S3 server (moto, SeaweedFS), before and
    after compaction."""
    s3_store_url = request.getfixturevalue(f"{server}_store_url")
    stores = [ResultStore(local_store_url), ResultStore(s3_store_url)]
    for store in stores:
        write_hand(store)
        write_hand(store, dataset="msd_heart", convention="foreground")
    local, s3 = (leaderboard(s, baseline="A") for s in stores)
    assert format_rows(local, "json") == format_rows(s3, "json")
    stores[1].compact()
    assert format_rows(leaderboard(s3_store_url, baseline="A"), "json") == format_rows(local, "json")


def test_only_cases_of_the_counted_attempt(local_store_url, capsys):
    """Cases rewritten by a later attempt that did not complete never stand in for the
    completed attempt's cases, and the completed trial is not dropped silently: it is named
    (IncompleteTrials), or left out only when asked, and named then too."""
    store = ResultStore(local_store_url)
    write_hand(store, variants={"A": HAND["A"]})
    assert by_variant(leaderboard(store))["A"]["n"] == 2
    store.write_trial(make_trial("isic2016-A-s1", experiment="hand", variant="A", seed=1, attempt=2,
                                 status="failed", metrics={}), [], case_rows([symmetric(0)] * 3))
    with pytest.raises(IncompleteTrials, match=r"1 completed trial\(s\).*hand/isic2016-A-s1 \(cases file differs"):
        leaderboard(store)
    row = by_variant(leaderboard(store, exclude_incomplete=True))["A"]
    assert "excluded incomplete trial hand/isic2016-A-s1 (attempt 1)" in capsys.readouterr().err
    assert row["n"] == 1 and row["mean"] == pytest.approx((0.8 + 0.9 + 0.6) / 3) and math.isnan(row["std"])
