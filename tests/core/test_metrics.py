import numpy as np
import pytest
from skimage.segmentation import expand_labels, relabel_sequential

from segmentation.core.errors import InvalidInputError, InvalidParameterError
from segmentation.core.metrics import (
    average_precision,
    coefficient_of_variation,
    compute_3d_dice,
    compute_3d_iou,
    compute_split_merge_errors,
    iou_matrix,
    label_overlap,
    match_instances,
)

SHAPES = {"2d": (48, 64), "3d": (6, 24, 32)}


def random_labels(shape, n, seed, radius=4):
    """Voronoi-like touching blobs grown from ``n`` random seeds, ids 1..k."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int32)
    seeds[tuple(rng.integers(0, s, n) for s in shape)] = np.arange(1, n + 1)
    return relabel_sequential(expand_labels(seeds, radius))[0]


def perturb(labels, seed):
    """A plausible prediction: shifted, some objects dropped, some pixels lost."""
    rng = np.random.default_rng(seed)
    out = np.roll(labels, int(rng.integers(-2, 3)), axis=-1)
    ids = np.unique(out)[1:]
    out[np.isin(out, rng.choice(ids, size=max(1, ids.size // 8), replace=False))] = 0
    out = out * (rng.random(out.shape) > 0.03)
    return relabel_sequential(out)[0]


def scatter_ids(labels, seed, dtype=np.int64, high=10**6):
    """The same partition with random, non-contiguous, large ids."""
    rng = np.random.default_rng(seed)
    ids = np.unique(labels)[1:]
    new = rng.choice(high - 1, size=ids.size, replace=False) + 1
    lut = np.zeros(int(labels.max()) + 1, dtype)
    lut[ids] = new
    return lut[labels]


def brute_iou(gt, pred):
    g_ids, p_ids = np.unique(gt)[1:], np.unique(pred)[1:]
    out = np.zeros((g_ids.size, p_ids.size))
    for i, g in enumerate(g_ids):
        for j, p in enumerate(p_ids):
            a, b = gt == g, pred == p
            out[i, j] = (a & b).sum() / (a | b).sum()
    return g_ids, p_ids, out


# ---------------------------------------------------------------- foreground IoU and Dice


@pytest.mark.parametrize(
    "mask1, mask2, iou, dice",
    [
        ([[1, 1, 0, 0]], [[0, 5, 5, 0]], 1 / 3, 0.5),
        ([[[1, 0], [0, 0]], [[1, 0], [0, 0]]], [[[2, 0], [0, 0]], [[0, 0], [0, 0]]], 0.5, 2 / 3),
        ([[0, 0]], [[0, 0]], 1.0, 1.0),
        ([[0, 0]], [[0, 3]], 0.0, 0.0),
        ([[True, False]], [[True, False]], 1.0, 1.0),
    ],
    ids=["2d", "3d", "both-empty", "one-empty", "bool"],
)
def test_foreground_iou_and_dice(mask1, mask2, iou, dice):
    a, b = np.array(mask1), np.array(mask2)
    assert compute_3d_iou(a, b) == pytest.approx(iou)
    assert compute_3d_dice(a, b) == pytest.approx(dice)
    assert compute_3d_iou(b, a) == pytest.approx(iou)


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_dice_and_iou_relation_on_random_masks(dim):
    gt = random_labels(SHAPES[dim], 12, seed=1)
    pred = perturb(gt, seed=2)
    iou, dice = compute_3d_iou(gt, pred), compute_3d_dice(gt, pred)
    assert 0.3 < iou < 1.0
    assert dice == pytest.approx(2 * iou / (1 + iou))


def test_foreground_metrics_refuse_different_shapes():
    with pytest.raises(InvalidInputError):
        compute_3d_iou(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(InvalidInputError):
        compute_3d_dice(np.zeros((2, 3, 1)), np.zeros((2, 3)))


# ---------------------------------------------------------------- overlap and IoU matrix


@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("dtype, high", [(np.uint32, 300), (np.int64, 10**6), (np.uint32, 2**32 - 1)])
def test_iou_matrix_matches_brute_force_for_any_ids(dim, dtype, high):
    gt = scatter_ids(random_labels(SHAPES[dim], 10, seed=3), seed=4, dtype=dtype, high=high)
    pred = scatter_ids(perturb(random_labels(SHAPES[dim], 10, seed=3), seed=5), seed=6, dtype=dtype, high=high)
    g_ids, p_ids, iou = iou_matrix(gt, pred)
    bg, bp, expected = brute_iou(gt, pred)
    np.testing.assert_array_equal(g_ids, bg)
    np.testing.assert_array_equal(p_ids, bp)
    np.testing.assert_allclose(iou, expected)
    np.testing.assert_allclose(iou_matrix(gt, pred, sparse=True)[2].toarray(), expected)


def test_label_overlap_counts_literal():
    a = np.array([[7, 7, 0, 9], [7, 0, 9, 9]], np.uint32)
    b = np.array([[1, 2, 2, 2], [0, 0, 0, 2]], np.uint32)
    ov = label_overlap(a, b)
    np.testing.assert_array_equal(ov.ids_a, [7, 9])
    np.testing.assert_array_equal(ov.ids_b, [1, 2])
    np.testing.assert_array_equal(ov.sizes_a, [3, 3])
    np.testing.assert_array_equal(ov.sizes_b, [1, 4])
    np.testing.assert_array_equal(ov.to_dense(), [[1, 1], [0, 2]])
    np.testing.assert_array_equal(ov.to_sparse().toarray(), [[1, 1], [0, 2]])


def test_label_overlap_of_empty_images():
    ov = label_overlap(np.zeros((3, 3), int), np.zeros((3, 3), int))
    assert ov.ids_a.size == ov.ids_b.size == ov.intersections.size == 0


@pytest.mark.parametrize("bad", [np.array([[0.5, 1.0]]), np.array([[-1, 2]])], ids=["float", "negative"])
def test_label_overlap_refuses_non_labels(bad):
    with pytest.raises(InvalidInputError):
        label_overlap(bad, np.zeros_like(bad, dtype=int))


def test_inputs_are_not_modified():
    gt = random_labels(SHAPES["2d"], 8, seed=7)
    pred = perturb(gt, seed=8)
    copies = gt.copy(), pred.copy()
    average_precision(gt, pred)
    compute_split_merge_errors(pred, gt)
    iou_matrix(gt, pred)
    np.testing.assert_array_equal(gt, copies[0])
    np.testing.assert_array_equal(pred, copies[1])


# ---------------------------------------------------------------- matching and AP


def test_match_instances_literal():
    gt = np.array([[1, 1, 1, 1, 0, 2, 2, 2]])
    pred = np.array([[5, 5, 5, 0, 0, 0, 8, 8]])
    m = match_instances(gt, pred, 0.5)
    np.testing.assert_array_equal(m.gt_ids, [1, 2])
    np.testing.assert_array_equal(m.pred_ids, [5, 8])
    np.testing.assert_allclose(m.ious, [0.75, 2 / 3])
    assert match_instances(gt, pred, 0.7).gt_ids.tolist() == [1]


def test_match_instances_prefers_more_matches_to_more_iou():
    gt = np.array([[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]])
    pred = np.array([[20, 10, 10, 10, 10, 10, 10, 0, 0, 0]])
    # IoU(1, 10) = 4/7, IoU(1, 20) = 1/5, IoU(2, 10) = 2/9: the largest summed IoU is (1, 10)
    # alone, but (1, 20) + (2, 10) matches two objects, as StarDist and cellpose count.
    m = match_instances(gt, pred, 0.2)
    assert dict(zip(m.gt_ids.tolist(), m.pred_ids.tolist(), strict=True)) == {1: 20, 2: 10}
    np.testing.assert_allclose(m.ious, [1 / 5, 2 / 9])
    assert match_instances(gt, pred, 0.3).pred_ids.tolist() == [10]


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, "a"])
def test_match_instances_refuses_bad_threshold(threshold):
    with pytest.raises(InvalidParameterError):
        match_instances(np.ones((2, 2), int), np.ones((2, 2), int), threshold)


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_ap_is_one_on_identical_labels_whatever_their_ids(dim):
    gt = random_labels(SHAPES[dim], 15, seed=9)
    pred = scatter_ids(gt, seed=10, dtype=np.uint32, high=2**31)
    n = np.unique(gt).size - 1
    res = average_precision(gt, pred)
    np.testing.assert_array_equal(res.ap, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(res.tp, [n, n, n])
    np.testing.assert_array_equal(res.fp + res.fn, [0, 0, 0])


def test_ap_counts_literal():
    gt = np.array([[1, 1, 0, 2, 2, 0, 3, 3]])
    pred = np.array([[4, 4, 0, 6, 0, 0, 0, 0]])  # one exact, one half, one missed
    res = average_precision(gt, pred, thresholds=(0.5, 0.75))
    np.testing.assert_array_equal(res.tp, [2, 1])
    np.testing.assert_array_equal(res.fp, [0, 1])
    np.testing.assert_array_equal(res.fn, [1, 2])
    np.testing.assert_allclose(res.ap, [2 / 3, 1 / 4])
    assert res.at(0.75) == {"ap": 0.25, "tp": 1, "fp": 1, "fn": 2}
    assert res.to_dict()["tp"] == [2, 1]


def test_ap_of_empty_images():
    empty = np.zeros((4, 4), np.uint16)
    one = empty.copy()
    one[1:3, 1:3] = 1
    np.testing.assert_array_equal(average_precision(empty, empty).ap, [1.0, 1.0, 1.0])
    res = average_precision(empty, one)
    np.testing.assert_array_equal(res.ap, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(res.fp, [1, 1, 1])


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_ap_agrees_with_cellpose(dim):
    cp_metrics = pytest.importorskip("cellpose.metrics")
    thresholds = [0.3, 0.5, 0.75, 0.9]
    for seed in range(4):
        gt = random_labels(SHAPES[dim], 14, seed=100 + seed)
        pred = perturb(expand_labels(gt, 1), seed=200 + seed)
        ap, tp, fp, fn = cp_metrics.average_precision(gt, pred, threshold=thresholds)
        res = average_precision(gt, pred, thresholds)
        np.testing.assert_allclose(res.ap, ap, atol=1e-6)
        np.testing.assert_array_equal(res.tp, tp)
        np.testing.assert_array_equal(res.fp, fp)
        np.testing.assert_array_equal(res.fn, fn)
        assert 0 < res.tp[0] and res.tp[-1] < res.tp[0]  # the case is not trivial


def test_ap_over_a_list_sums_the_counts():
    gts = [random_labels(SHAPES["2d"], 10, seed=s) for s in (11, 12)]
    preds = [perturb(g, seed=s) for g, s in zip(gts, (13, 14), strict=True)]
    each = [average_precision(g, p) for g, p in zip(gts, preds, strict=True)]
    total = average_precision(gts, preds)
    assert total.n_images == 2
    for name in ("tp", "fp", "fn"):
        np.testing.assert_array_equal(getattr(total, name), sum(getattr(r, name) for r in each))
    np.testing.assert_allclose(total.ap, total.tp / (total.tp + total.fp + total.fn))


def test_ap_refuses_mismatched_inputs():
    with pytest.raises(InvalidInputError):
        average_precision([np.zeros((2, 2), int)], [])
    with pytest.raises(InvalidInputError):
        average_precision(np.zeros((2, 2), int), [np.zeros((2, 2), int)])
    with pytest.raises(InvalidInputError):
        average_precision(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(InvalidParameterError):
        average_precision(np.zeros((2, 2), int), np.zeros((2, 2), int), thresholds=())


# ---------------------------------------------------------------- split and merge errors


def test_split_merge_literal():
    gt = np.array([[1, 1, 1, 1, 1, 1, 0, 2, 2, 0, 3, 3]])
    pred = np.array([[4, 4, 5, 5, 6, 6, 0, 7, 7, 7, 7, 7]])
    # gt 1 is cut in three (2 extra pieces); pred 7 holds gt 2 and gt 3 (1 extra).
    assert compute_split_merge_errors(pred, gt) == (2, 1)
    assert compute_split_merge_errors(gt, pred) == (1, 2)


def test_split_needs_a_majority_inside():
    gt = np.array([[1, 1, 1, 1, 0, 0]])
    pred = np.array([[2, 2, 2, 3, 3, 3]])  # pred 3 is mostly outside gt 1: no split
    assert compute_split_merge_errors(pred, gt) == (0, 0)


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_split_merge_is_symmetric_and_zero_on_identity(dim):
    a = random_labels(SHAPES[dim], 16, seed=15, radius=5)
    b = random_labels(SHAPES[dim], 5, seed=16, radius=12)
    splits, merges = compute_split_merge_errors(a, b)
    assert compute_split_merge_errors(b, a) == (merges, splits)
    assert splits + merges > 0
    assert compute_split_merge_errors(a, scatter_ids(a, seed=17)) == (0, 0)


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_cutting_every_object_in_two_counts_one_split_each(dim):
    gt = random_labels(SHAPES[dim], 8, seed=18, radius=6)
    halves = np.where(np.indices(gt.shape)[-1] % 2 == 0, gt, gt + gt.max()) * (gt > 0)
    n = np.unique(gt).size - 1
    assert compute_split_merge_errors(halves, gt) == (n, 0)
    assert compute_split_merge_errors(gt, halves) == (0, n)


# ---------------------------------------------------------------- coefficient of variation


def test_coefficient_of_variation():
    assert coefficient_of_variation([100, 100, 100]) == 0.0
    assert coefficient_of_variation([90, 110]) == pytest.approx(10.0)
    assert coefficient_of_variation([90, 110], ddof=1) == pytest.approx(100 * np.std([90, 110], ddof=1) / 100)


@pytest.mark.parametrize("values", [[], [0, 0], [1, np.nan], [5]], ids=["empty", "zero-mean", "nan", "ddof"])
def test_coefficient_of_variation_errors(values):
    ddof = 1 if len(values) == 1 else 0
    with pytest.raises(InvalidInputError):
        coefficient_of_variation(values, ddof=ddof)

