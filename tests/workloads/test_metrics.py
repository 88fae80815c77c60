"""Confusion counts, metrics and conventions on hand-computed masks (counts written out in each test)."""

import math

import numpy as np
import pytest
import torch

from dragsaw.workloads.metrics import (
    BRATS_REGIONS,
    CONVENTIONS,
    COUNT_FIELDS,
    EMPTY_RULES,
    METRICS,
    accuracy,
    batch_confusion,
    batch_region_confusion,
    case_rows,
    confusion,
    dice,
    jaccard,
    region_confusion,
    summarize,
)

# 2x2, two classes. Pixels (target, pred): (0,0) (1,1) / (0,1) (1,1).
PRED_2X2 = np.array([[0, 1], [1, 1]])
TARGET_2X2 = np.array([[0, 1], [0, 1]])
COUNTS_2X2 = [[1, 0, 1, 2],   # class 0: TP (0,0); FN (1,0); TN (0,1) (1,1)
              [2, 1, 0, 1]]   # class 1: TP (0,1) (1,1); FP (1,0); TN (0,0)

# 3x3, three classes. Pixels (target, pred):
#   (0,0) (0,1) (1,1)
#   (0,0) (1,1) (1,2)
#   (2,2) (2,0) (1,1)
PRED_3X3 = np.array([[0, 1, 1], [0, 1, 2], [2, 0, 1]])
TARGET_3X3 = np.array([[0, 0, 1], [0, 1, 1], [2, 2, 1]])
COUNTS_3X3 = [[2, 1, 1, 5],   # class 0: TP (0,0) (1,0); FP (2,1); FN (0,1)
              [3, 1, 1, 4],   # class 1: TP (0,2) (1,1) (2,2); FP (0,1); FN (1,2)
              [1, 1, 1, 6]]   # class 2: TP (2,0); FP (1,2); FN (2,1)

# 2x2x2, MSD Task01 labels (1 edema, 2 non-enhancing, 3 enhancing). Voxels (target, pred):
#   slice 0: (0,0) (1,1) / (2,3) (3,3)      slice 1: (0,1) (0,0) / (3,3) (3,0)
PRED_3D = np.array([[[0, 1], [3, 3]], [[1, 0], [3, 0]]])
TARGET_3D = np.array([[[0, 1], [2, 3]], [[0, 0], [3, 3]]])
COUNTS_3D = [[2, 1, 1, 4],    # class 0: TP two (0,0); FP (3,0); FN (0,1)
             [1, 1, 0, 6],    # class 1: TP (1,1); FP (0,1)
             [0, 0, 1, 7],    # class 2: in the reference, never predicted: FN (2,3)
             [2, 1, 1, 4]]    # class 3: TP two (3,3); FP (2,3); FN (3,0)
REGIONS_3D = [[4, 1, 1, 2],   # WT {1,2,3}: TP (1,1) (2,3) (3,3) (3,3); FP (0,1); FN (3,0); TN two (0,0)
              [3, 0, 1, 4],   # TC {2,3}: TP (2,3) (3,3) (3,3); FN (3,0)
              [2, 1, 1, 4]]   # ET {3}: TP (3,3) (3,3); FP (2,3); FN (3,0)


def test_names_are_the_documented_identifiers():
    assert COUNT_FIELDS == ("tp", "fp", "fn", "tn")
    assert CONVENTIONS == ("paper2d", "foreground")
    assert EMPTY_RULES == ("nan", "one")
    assert METRICS == ("dice", "jaccard", "accuracy")
    assert {k: set(v) for k, v in BRATS_REGIONS.items()} == {"WT": {1, 2, 3}, "TC": {2, 3}, "ET": {3}}


# --- counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("pred, target, num_classes, expected", [
    (PRED_2X2, TARGET_2X2, 2, COUNTS_2X2),
    (PRED_3X3, TARGET_3X3, 3, COUNTS_3X3),
    (PRED_3D, TARGET_3D, 4, COUNTS_3D),
], ids=["2x2", "3x3", "2x2x2"])
def test_confusion_hand_computed(pred, target, num_classes, expected):
    counts = confusion(pred, target, num_classes)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, expected)
    assert (counts.sum(axis=1) == pred.size).all()


def test_metrics_hand_computed_2x2_and_3x3():
    np.testing.assert_allclose(dice(COUNTS_2X2), [2 / 3, 4 / 5])        # 2*1/(2+0+1), 2*2/(4+1+0)
    np.testing.assert_allclose(jaccard(COUNTS_2X2), [1 / 2, 2 / 3])     # 1/(1+0+1), 2/(2+1+0)
    np.testing.assert_allclose(accuracy(COUNTS_2X2), [3 / 4, 3 / 4])   # (1+2)/4, (2+1)/4
    np.testing.assert_allclose(dice(COUNTS_3X3), [4 / 6, 6 / 8, 2 / 4])
    np.testing.assert_allclose(jaccard(COUNTS_3X3), [2 / 4, 3 / 5, 1 / 3])
    # one-vs-rest accuracy is 7/9 for each class, although only 6 of 9 pixels are right
    np.testing.assert_allclose(accuracy(COUNTS_3X3), [7 / 9, 7 / 9, 7 / 9])


def test_metrics_keep_leading_axes():
    stacked = np.array([COUNTS_2X2, [[4, 0, 0, 0], [0, 0, 0, 4]]])     # (B=2, M=2, 4)
    np.testing.assert_allclose(dice(stacked, empty="one"), [[2 / 3, 4 / 5], [1.0, 1.0]])
    assert dice(np.array([2, 1, 1, 5])).shape == ()


def test_empty_reference_rules():
    # target all background; class 1 predicted twice (absent from reference), class 2 nowhere.
    pred, target = np.array([[0, 1], [1, 0]]), np.zeros((2, 2), dtype=np.int64)
    counts = confusion(pred, target, 3)
    np.testing.assert_array_equal(counts, [[2, 0, 2, 0], [0, 2, 0, 2], [0, 0, 0, 4]])
    for rule, undefined in (("nan", math.nan), ("one", 1.0)):
        np.testing.assert_allclose(dice(counts, empty=rule), [4 / 6, 0.0, undefined])
        np.testing.assert_allclose(jaccard(counts, empty=rule), [2 / 4, 0.0, undefined])
        np.testing.assert_allclose(accuracy(counts, empty=rule), [2 / 4, 2 / 4, 1.0])
    # swapped: class 1 in the reference but never predicted -> 0 under both rules
    swapped = confusion(target, pred, 3)
    np.testing.assert_array_equal(swapped[1], [0, 0, 2, 2])
    for rule in EMPTY_RULES:
        assert dice(swapped, empty=rule)[1] == 0.0 and jaccard(swapped, empty=rule)[1] == 0.0


def test_class_in_reference_not_predicted_in_3d_scores_zero():
    counts = confusion(PRED_3D, TARGET_3D, 4)
    np.testing.assert_allclose(dice(counts), [4 / 6, 2 / 3, 0.0, 4 / 6])
    np.testing.assert_allclose(jaccard(counts), [2 / 4, 1 / 2, 0.0, 2 / 4])


# --- regions -------------------------------------------------------------------------------


def test_region_confusion_brats():
    counts = region_confusion(PRED_3D, TARGET_3D, BRATS_REGIONS)
    np.testing.assert_array_equal(counts, REGIONS_3D)
    np.testing.assert_allclose(dice(counts), [8 / 10, 6 / 7, 4 / 6])


def test_single_label_regions_equal_per_label_counts():
    regions = {"ED": {1}, "NE": {2}, "EN": {3}}
    np.testing.assert_array_equal(region_confusion(PRED_3D, TARGET_3D, regions), COUNTS_3D[1:])


def test_region_order_and_explicit_num_classes():
    regions = {"ET": [3], "WT": (1, 2, 3)}
    counts = region_confusion(PRED_3D, TARGET_3D, regions, num_classes=5)
    np.testing.assert_array_equal(counts, [REGIONS_3D[2], REGIONS_3D[0]])


# --- batches, backends, a slow reference ---------------------------------------------------


def _slow_counts(pred, target, labels_of):
    """Loop reference: one row per region (a set of labels), straight from the definitions."""
    rows = []
    for labels in labels_of:
        p, t = np.isin(pred, list(labels)), np.isin(target, list(labels))
        rows.append([int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum()), int((~p & ~t).sum())])
    return np.array(rows)


@pytest.mark.parametrize("spatial", [(5, 7), (3, 4, 5)], ids=["2d", "3d"])
def test_batch_equals_per_case_and_slow_reference(spatial):
    rng = np.random.default_rng(0)
    pred, target = rng.integers(0, 4, (3, *spatial)), rng.integers(0, 4, (3, *spatial))
    batched = batch_confusion(pred, target, 4)
    assert batched.shape == (3, 4, 4)
    for b in range(3):
        np.testing.assert_array_equal(batched[b], confusion(pred[b], target[b], 4))
        np.testing.assert_array_equal(batched[b], _slow_counts(pred[b], target[b], [{c} for c in range(4)]))
    regions = batch_region_confusion(pred, target, BRATS_REGIONS)
    for b in range(3):
        np.testing.assert_array_equal(regions[b], region_confusion(pred[b], target[b], BRATS_REGIONS))
        np.testing.assert_array_equal(regions[b], _slow_counts(pred[b], target[b], BRATS_REGIONS.values()))


def test_torch_numpy_and_mixed_inputs_agree():
    expected = np.array(COUNTS_3X3)
    pt, tt = torch.from_numpy(PRED_3X3), torch.from_numpy(TARGET_3X3)
    for pred, target in ((pt, tt), (pt, TARGET_3X3), (PRED_3X3, tt), (pt.int(), tt.to(torch.uint8))):
        counts = confusion(pred, target, 3)
        assert isinstance(counts, np.ndarray) and counts.dtype == np.int64
        np.testing.assert_array_equal(counts, expected)
    batched = batch_confusion(torch.stack([pt, tt]), torch.stack([tt, tt]), 3)
    np.testing.assert_array_equal(batched[0], expected)
    # target against itself: 3, 4 and 2 pixels of classes 0, 1, 2, all true positives
    np.testing.assert_array_equal(batched[1], [[3, 0, 0, 6], [4, 0, 0, 5], [2, 0, 0, 7]])


@pytest.mark.parametrize("to", [np.uint8, torch.uint8], ids=["numpy", "torch"])
def test_narrow_dtypes_do_not_overflow_the_joint_index(to):
    # target * 20 + pred reaches 399 > 255
    pred, target = np.full((2, 2), 19), np.array([[19, 19], [0, 5]])
    cast = (lambda x: x.astype(to)) if to is np.uint8 else (lambda x: torch.from_numpy(x).to(to))
    counts = confusion(cast(pred), cast(target), 20)
    np.testing.assert_array_equal(counts[19], [2, 2, 0, 0])
    np.testing.assert_array_equal(counts[5], [0, 0, 1, 3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_are_counted_on_device():
    counts = confusion(torch.from_numpy(PRED_3D).cuda(), torch.from_numpy(TARGET_3D).cuda(), 4)
    np.testing.assert_array_equal(counts, COUNTS_3D)


# --- conventions ---------------------------------------------------------------------------

# Three binary 2x2 cases:
#   A = the 2x2 above:               dice (2/3, 4/5), jaccard (1/2, 2/3), accuracy (3/4, 3/4)
#   B = all background, predicted so: counts bg (4,0,0,0), fg (0,0,0,4) -> fg undefined
#   C = one foreground pixel missed:  bg (3,1,0,0) dice 6/7 jaccard 3/4, fg (0,0,1,3) dice 0
CASES = np.array([COUNTS_2X2, [[4, 0, 0, 0], [0, 0, 0, 4]], [[3, 1, 0, 0], [0, 0, 1, 3]]])


def test_confusion_of_the_convention_cases():
    zeros = np.zeros((2, 2), dtype=np.int64)
    target_c = np.array([[1, 0], [0, 0]])
    counts = batch_confusion(np.stack([PRED_2X2, zeros, zeros]), np.stack([TARGET_2X2, zeros, target_c]), 2)
    np.testing.assert_array_equal(counts, CASES)


@pytest.mark.parametrize("metric, empty, expected", [
    # per case: mean over both classes (undefined ones dropped), then the mean over cases
    ("dice", "nan", ((2 / 3 + 4 / 5) / 2 + 1.0 + (6 / 7 + 0) / 2) / 3),
    ("dice", "one", ((2 / 3 + 4 / 5) / 2 + (1.0 + 1.0) / 2 + (6 / 7 + 0) / 2) / 3),
    ("jaccard", "nan", ((1 / 2 + 2 / 3) / 2 + 1.0 + (3 / 4 + 0) / 2) / 3),
    ("accuracy", "nan", (3 / 4 + 1.0 + 3 / 4) / 3),
])
def test_paper2d(metric, empty, expected):
    assert summarize(CASES, "paper2d", metric, empty=empty) == pytest.approx(expected, rel=1e-12)


def test_paper2d_empty_rule_changes_the_class_mean():
    # three classes: dice (2/3, 0, undefined)
    counts = np.array([[[2, 0, 2, 0], [0, 2, 0, 2], [0, 0, 0, 4]]])
    assert summarize(counts, "paper2d", "dice", empty="nan") == pytest.approx((2 / 3 + 0) / 2)
    assert summarize(counts, "paper2d", "dice", empty="one") == pytest.approx((2 / 3 + 0 + 1) / 3)
    np.testing.assert_allclose(summarize(counts, "paper2d", "dice", per_class=True), [2 / 3, 0, math.nan])


@pytest.mark.parametrize("metric, empty, expected", [
    ("dice", "nan", (4 / 5 + 0) / 2),        # case B's undefined foreground is left out
    ("dice", "one", (4 / 5 + 1 + 0) / 3),
    ("jaccard", "nan", (2 / 3 + 0) / 2),
    ("accuracy", "nan", (3 / 4 + 1 + 3 / 4) / 3),
])
def test_foreground(metric, empty, expected):
    assert summarize(CASES, "foreground", metric, empty=empty) == pytest.approx(expected, rel=1e-12)
    per_class = summarize(CASES, "foreground", metric, empty=empty, per_class=True)
    assert per_class.shape == (1,) and per_class[0] == pytest.approx(expected, rel=1e-12)


def test_foreground_per_class_and_class_mean():
    cases = np.array([COUNTS_3X3, [[9, 0, 0, 0], [0, 0, 0, 9], [0, 0, 0, 9]]])
    # class 1: (6/8, undefined), class 2: (2/4, undefined)
    np.testing.assert_allclose(summarize(cases, "foreground", "dice", per_class=True), [3 / 4, 1 / 2])
    assert summarize(cases, "foreground", "dice") == pytest.approx((3 / 4 + 1 / 2) / 2)
    np.testing.assert_allclose(summarize(cases, "foreground", "dice", empty="one", per_class=True),
                               [(3 / 4 + 1) / 2, (1 / 2 + 1) / 2])
    # background=None keeps every row; 2 picks another row to leave out
    np.testing.assert_allclose(summarize(cases, "foreground", "dice", background=None, per_class=True),
                               [(2 / 3 + 1) / 2, 3 / 4, 1 / 2])
    np.testing.assert_allclose(summarize(cases, "foreground", "dice", background=2, per_class=True),
                               [(2 / 3 + 1) / 2, 3 / 4])


def test_foreground_class_undefined_everywhere_gives_nan_like_nnunet():
    cases = np.array([[[4, 0, 0, 0], [0, 0, 0, 4], [0, 0, 0, 4]],
                      [[3, 0, 1, 0], [1, 1, 0, 2], [0, 0, 0, 4]]])   # class 2 never present
    per_class = summarize(cases, "foreground", "dice", per_class=True)
    assert per_class[0] == pytest.approx(2 / 3) and math.isnan(per_class[1])
    assert math.isnan(summarize(cases, "foreground", "dice"))
    assert summarize(cases, "foreground", "dice", empty="one") == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


def test_regions_summarized_without_background():
    counts = batch_region_confusion(PRED_3D[None], TARGET_3D[None], BRATS_REGIONS)
    assert summarize(counts, "foreground", "dice", background=None) == pytest.approx((8 / 10 + 6 / 7 + 4 / 6) / 3)
    # with the default background=0 the WT row would be dropped
    assert summarize(counts, "foreground", "dice") == pytest.approx((6 / 7 + 4 / 6) / 2)


# --- rows for the store --------------------------------------------------------------------


def test_case_rows():
    rows = case_rows("case_007", COUNTS_2X2, ["background", "lesion"])
    assert rows == [
        {"case_id": "case_007", "class_index": 0, "class_name": "background", "tp": 1, "fp": 0, "fn": 1,
         "tn": 2, "dice": pytest.approx(2 / 3), "jaccard": 0.5, "accuracy": 0.75, "empty": "nan"},
        {"case_id": "case_007", "class_index": 1, "class_name": "lesion", "tp": 2, "fp": 1, "fn": 0,
         "tn": 1, "dice": pytest.approx(0.8), "jaccard": pytest.approx(2 / 3), "accuracy": 0.75,
         "empty": "nan"},
    ]
    assert all(type(row[k]) is int for row in rows for k in COUNT_FIELDS)


def test_case_rows_empty_rule_and_recomputation():
    rows = [row for b, counts in enumerate(CASES) for row in case_rows(f"c{b}", counts, ["bg", "fg"])]
    assert math.isnan(rows[3]["dice"]) and math.isnan(rows[3]["jaccard"]) and rows[3]["accuracy"] == 1.0
    assert case_rows("c1", CASES[1], ["bg", "fg"], empty="one")[1]["dice"] == 1.0
    # any convention can be recomputed from the stored counts alone
    stored = np.array([[row[k] for k in COUNT_FIELDS] for row in rows]).reshape(3, 2, 4)
    for convention in CONVENTIONS:
        assert summarize(stored, convention, "dice") == summarize(CASES, convention, "dice")


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, words", [
    (lambda: confusion(PRED_2X2, TARGET_3X3, 3), ValueError, ["same shape", "(2, 2)", "(3, 3)"]),
    (lambda: confusion(PRED_3X3, TARGET_3X3, 2), ValueError, ["`pred`", "[0, 1]", "0 to 2"]),
    (lambda: confusion(PRED_2X2, TARGET_2X2 - 1, 2), ValueError, ["`target`", "-1"]),
    (lambda: confusion(PRED_2X2.astype(float), TARGET_2X2, 2), TypeError, ["`pred`", "integer", "float64"]),
    (lambda: confusion(PRED_2X2, torch.tensor(TARGET_2X2, dtype=torch.float32), 2), TypeError,
     ["`target`", "torch.float32"]),
    (lambda: confusion(PRED_2X2.astype(bool), TARGET_2X2, 2), TypeError, ["`pred`", "bool"]),
    (lambda: confusion(PRED_2X2.tolist(), TARGET_2X2, 2), TypeError, ["`pred`", "list"]),
    (lambda: confusion(PRED_2X2[0], TARGET_2X2[0], 2), ValueError, ["`pred`", "(H, W) or (D, H, W)", "(2,)"]),
    (lambda: batch_confusion(PRED_2X2, TARGET_2X2, 2), ValueError, ["`pred`", "(B, H, W)", "(2, 2)"]),
    (lambda: confusion(np.zeros((0, 2), int), np.zeros((0, 2), int), 2), ValueError, ["at least one pixel"]),
    (lambda: confusion(PRED_2X2, TARGET_2X2, 0), ValueError, ["`num_classes`", "0"]),
    (lambda: region_confusion(PRED_3D, TARGET_3D, {"WT": set()}), ValueError, ["regions['WT']"]),
    (lambda: region_confusion(PRED_3D, TARGET_3D, {"X": {-1}}), ValueError, ["regions['X']", "-1"]),
    (lambda: region_confusion(PRED_3D, TARGET_3D, BRATS_REGIONS, num_classes=3), ValueError,
     ["num_classes=3", "label 3"]),
    (lambda: region_confusion(PRED_3D, TARGET_3D + 1, BRATS_REGIONS), ValueError, ["`target`", "4"]),
    (lambda: dice(COUNTS_2X2, empty="zero"), ValueError, ["`empty`", "'nan'", "'one'", "'zero'"]),
    (lambda: dice([[1, 2, 3]]), ValueError, ["`counts`", "(tp, fp, fn, tn)", "(1, 3)"]),
    (lambda: dice(np.array(COUNTS_2X2, dtype=float)), TypeError, ["`counts`", "integer"]),
    (lambda: jaccard([[1, -2, 3, 4]]), ValueError, ["`counts`", ">= 0"]),
    (lambda: summarize(CASES, "paper", "dice"), ValueError, ["`convention`", "did you mean 'paper2d'"]),
    (lambda: summarize(CASES, "paper2d", "dise"), ValueError, ["`metric`", "did you mean 'dice'"]),
    (lambda: summarize(CASES[0], "paper2d", "dice"), ValueError, ["`per_case_counts`", "(B, M, 4)"]),
    (lambda: summarize(np.array([[[1, 0, 0, 3], [1, 0, 0, 2]]]), "paper2d", "dice"), ValueError,
     ["case 0", "[4, 3]"]),
    (lambda: summarize(CASES, "foreground", "dice", background=2), ValueError, ["`background`", "[0, 1]"]),
    (lambda: summarize(CASES[:, :1], "foreground", "dice"), ValueError, ["foreground class"]),
    (lambda: case_rows("c", COUNTS_2X2, ["bg"]), ValueError, ["`class_names`", "2 str names"]),
], ids=["shape", "pred-range", "target-negative", "float-numpy", "float-torch", "bool", "list", "ndim",
        "batch-ndim", "no-pixels", "num-classes", "empty-region", "negative-label", "region-label-range",
        "region-values", "empty-rule", "counts-shape", "counts-dtype", "counts-negative", "convention",
        "metric", "summarize-ndim", "uneven-rows", "background", "no-foreground", "class-names"])
def test_bad_input_fails_with_a_message_naming_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
