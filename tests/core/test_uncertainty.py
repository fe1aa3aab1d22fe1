import numpy as np
import pytest
from skimage.measure import regionprops
from skimage.morphology import convex_hull_image
from skimage.segmentation import expand_labels, relabel_sequential

from segmentation.core.errors import InvalidInputError, InvalidParameterError
from segmentation.core.uncertainty import (
    NucleusUncertainty,
    UncertaintyEstimator,
    UncertaintyParams,
    nucleus_uncertainty,
)

SHAPES = {"2d": (40, 64), "3d": (12, 32, 48)}


def ball(shape, center, radius):
    """Boolean disk (2D) or ball (3D)."""
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, center, strict=True)) <= radius ** 2


def two_nuclei(dim):
    """Labels with two equal round nuclei, 1 on the left and 2 on the right."""
    shape = SHAPES[dim]
    mid = [s // 2 for s in shape[:-1]]
    labels = np.zeros(shape, np.int32)
    labels[ball(shape, mid + [shape[-1] // 4], 5)] = 1
    labels[ball(shape, mid + [3 * shape[-1] // 4], 5)] = 2
    return labels


def good_flows(labels):
    """What a perfect network predicts: 5 x the mask's own flows, confident logits inside."""
    from cellpose.dynamics import masks_to_flows

    dp = 5.0 * masks_to_flows(labels.astype(np.int32)).astype(np.float32)
    cellprob = np.where(labels > 0, 6.0, -6.0).astype(np.float32)
    return dp, cellprob


def random_labels(shape, n, seed, radius=5):
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int32)
    seeds[tuple(rng.integers(0, s, n) for s in shape)] = np.arange(1, n + 1)
    labels = expand_labels(seeds, radius) * (rng.random(shape) > 0.1)   # ragged outlines
    return relabel_sequential(labels)[0]


# --- parameters -------------------------------------------------------------------------------


def test_params_round_trip_and_validation():
    params = UncertaintyParams(flow_weight=2, cellprob_weight=0.5, solidity_weight=0, solidity_floor=0.5)
    assert UncertaintyParams.from_dict(params.to_dict()) == params
    assert params.weights == {"flow": 2.0, "cellprob": 0.5, "solidity": 0.0}
    with pytest.raises(InvalidParameterError):
        UncertaintyParams(flow_weight=-1)
    with pytest.raises(InvalidParameterError):
        UncertaintyParams(flow_weight=0, cellprob_weight=0, solidity_weight=0)
    with pytest.raises(InvalidParameterError):
        UncertaintyParams(solidity_floor=1.0)
    with pytest.raises(InvalidParameterError):
        UncertaintyParams(flow_error_scale=float("nan"))
    with pytest.raises(InvalidParameterError):
        UncertaintyParams.from_dict({"flow_weigth": 1})
    with pytest.raises(InvalidParameterError):
        UncertaintyEstimator(params={"flow_weight": 1})


# --- solidity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_solidity_is_that_of_the_digital_convex_hull(dim):
    """Voxels over voxels whose centres are in the hull of the centres (skimage without offsets)."""
    labels = random_labels(SHAPES[dim], 12, seed=3)
    table = UncertaintyEstimator().estimate(labels)
    expected = [r.area / convex_hull_image(r.image, offset_coordinates=False).sum() for r in regionprops(labels)]
    np.testing.assert_allclose(table.solidity, expected, atol=1e-12)
    assert table.solidity.min() < 0.95   # the ragged outlines are not all convex


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("radius", [1, 2, 3, 4.5, 5, 7.3, 11])
def test_digitised_disks_and_balls_have_solidity_one_at_every_size(ndim, radius):
    size = int(2 * radius + 5)
    centre = [size / 2 + 0.3 * k for k in range(ndim)]   # off-grid centres too
    labels = ball((size,) * ndim, centre, radius).astype(int)
    table = UncertaintyEstimator().estimate(labels)
    assert table.solidity.tolist() == [1.0]
    assert table.score.tolist() == [0.0]


@pytest.mark.parametrize("piece", [
    np.array([[1]]),                               # one pixel
    np.array([[1, 1, 1, 1, 1]]),                   # a one-pixel line
    np.array([[[1]]]),                             # one voxel
    np.ones((1, 4, 5), int),                       # a planar 3D nucleus, one slice thick
    np.ones((3, 1, 1), int),                       # a line along z
    np.eye(4, dtype=int),                          # a diagonal line (degenerate hull)
    np.eye(3, dtype=int)[None].repeat(3, axis=0),  # an oblique plane in 3D
])
def test_degenerate_nuclei_have_a_solidity(piece):
    labels = np.zeros(tuple(s + 2 for s in piece.shape), int)
    labels[tuple(slice(1, 1 + s) for s in piece.shape)] = piece
    table = UncertaintyEstimator().estimate(labels)
    assert 0 < table.solidity[0] <= 1 and 0 <= table.score[0] <= 1


def test_flat_nuclei_are_measured_in_fewer_dimensions():
    ring = np.ones((5, 5), int)
    ring[1:4, 2:] = 0                               # a C shape: 16 of 25 pixels in its hull
    for labels in (ring, ring[None], ring[:, None], ring[:, :, None]):
        padded = np.pad(labels, 1)
        np.testing.assert_allclose(UncertaintyEstimator().estimate(padded).solidity, [16 / 25])
    line = np.pad(np.array([1, 1, 0, 1]), 1)[None]  # a broken line: 3 of 4
    np.testing.assert_allclose(UncertaintyEstimator().estimate(line).solidity, [0.75])


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_a_notched_nucleus_ranks_above_a_round_one(dim):
    labels = two_nuclei(dim)
    notched = labels.copy()
    # cut a wedge into nucleus 2, from its right edge to its centre
    centre = np.array(np.nonzero(notched == 2)).mean(axis=1).round().astype(int)
    wedge = (slice(centre[-2] - 1, centre[-2] + 2), slice(centre[-1], None))
    notched[(Ellipsis, *wedge)] = np.where(notched[(Ellipsis, *wedge)] == 2, 0, notched[(Ellipsis, *wedge)])
    dp, cellprob = good_flows(notched)
    table = UncertaintyEstimator().estimate(notched, dp, cellprob)
    assert table.solidity[1] < table.solidity[0] - 0.05
    assert table.score[1] > table.score[0]
    assert [i for i, _ in table.ranked()] == [2, 1]


# --- cell probability -----------------------------------------------------------------------------


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_low_cellprob_ranks_higher(dim):
    labels = two_nuclei(dim)
    dp, cellprob = good_flows(labels)
    cellprob[labels == 1] = 0.3            # barely above Cellpose's threshold
    table = UncertaintyEstimator().estimate(labels, dp, cellprob)
    assert table.mean_probability[0] < 0.6 < 0.99 < table.mean_probability[1]
    assert table.cellprob_signal[0] > 0.8 > 0.05 > table.cellprob_signal[1]
    assert nucleus_uncertainty(labels, dp, cellprob)[1] > nucleus_uncertainty(labels, dp, cellprob)[2]
    assert UncertaintyEstimator().rank(labels, dp, cellprob, top_n=1)[0][0] == 1


# --- flows -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_flows_consistent_with_the_mask_score_zero(dim):
    labels = two_nuclei(dim)
    dp, cellprob = good_flows(labels)
    table = UncertaintyEstimator().estimate(labels, dp, cellprob)
    np.testing.assert_allclose(table.flow_error, 0.0, atol=1e-10)
    assert table.score.max() < 0.02


@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("corruption", ["merged", "reversed", "weak"])
def test_flows_inconsistent_with_the_mask_rank_higher(dim, corruption):
    labels = two_nuclei(dim)
    dp, cellprob = good_flows(labels)
    inside = labels == 2
    if corruption == "merged":
        # the network saw two nuclei where the mask has one: flows of nucleus 2 cut in half
        halves = labels.copy()
        right = np.zeros_like(inside)
        centre = int(np.nonzero(inside)[-1].mean())
        right[..., centre:] = True
        halves[inside & right] = 3
        dp = np.where(inside, good_flows(halves)[0], dp)
    elif corruption == "reversed":
        dp[:, inside] *= -1
    else:
        dp[:, inside] *= 0.1
    table = UncertaintyEstimator().estimate(labels, dp, cellprob)
    assert table.flow_error[0] < 1e-6
    assert table.flow_error[1] > 0.3
    assert table.score[1] > table.score[0]
    assert table.ranked()[0][0] == 2


def test_per_slice_flows_of_a_volume():
    """Slice backends give (2, Z, Y, X) flows: compared with each plane's 2D mask flows."""
    from cellpose.dynamics import masks_to_flows

    labels = two_nuclei("3d")
    dp = np.zeros((2, *labels.shape), np.float32)
    for z in range(labels.shape[0]):
        if labels[z].any():
            dp[:, z] = 5 * masks_to_flows(labels[z])
    table = UncertaintyEstimator().estimate(labels, dp)
    np.testing.assert_allclose(table.flow_error, 0.0, atol=1e-10)
    dp[:, labels == 1] *= -1
    table = UncertaintyEstimator().estimate(labels, dp)
    assert table.flow_error[0] > 1 and table.flow_error[1] < 1e-6


def test_cellpose_flows_list_is_accepted():
    labels = two_nuclei("2d")
    dp, cellprob = good_flows(labels)
    cellprob[labels == 2] = 0.5
    rgb = np.zeros((*labels.shape, 3), np.uint8)
    from_list = nucleus_uncertainty(labels, [rgb, dp, cellprob])
    assert from_list == nucleus_uncertainty(labels, dp, cellprob)
    # an explicit cellprob wins over the list's
    assert nucleus_uncertainty(labels, [rgb, dp, cellprob], np.full(labels.shape, 6.0))[2] < from_list[2]


# --- the combined score -----------------------------------------------------------------------


def test_score_is_the_weighted_mean_of_the_signals():
    labels = random_labels(SHAPES["2d"], 8, seed=1)
    rng = np.random.default_rng(0)
    dp = rng.normal(0, 3, (2, *labels.shape))
    cellprob = rng.normal(1, 2, labels.shape)
    params = UncertaintyParams(flow_weight=1, cellprob_weight=2, solidity_weight=3)
    t = UncertaintyEstimator(params).estimate(labels, dp, cellprob)
    expected = (t.flow_signal + 2 * t.cellprob_signal + 3 * t.solidity_signal) / 6
    np.testing.assert_allclose(t.score, expected)
    for values in (t.score, t.flow_signal, t.cellprob_signal, t.solidity_signal):
        assert np.all((values >= 0) & (values <= 1))
    np.testing.assert_allclose(t.flow_signal, t.flow_error / (t.flow_error + params.flow_error_scale))
    np.testing.assert_allclose(t.cellprob_signal, np.clip(2 * (1 - t.mean_probability), 0, 1))


def test_missing_inputs_leave_their_signal_out():
    labels = two_nuclei("2d")
    labels[labels == 2] = 0
    labels[20, 40:50] = 2
    t = UncertaintyEstimator().estimate(labels)
    assert np.isnan(t.flow_signal).all() and np.isnan(t.cellprob_signal).all()
    np.testing.assert_allclose(t.score, t.solidity_signal)
    assert t.to_records()[0]["flow_error"] is None
    with pytest.raises(InvalidParameterError, match="no signal"):
        UncertaintyEstimator(UncertaintyParams(solidity_weight=0)).estimate(labels)


def test_ids_need_not_be_consecutive_and_inputs_are_not_modified():
    labels = two_nuclei("2d").astype(np.uint32)
    labels[labels == 1] = 7
    labels[labels == 2] = 4_000_000_000
    dp, cellprob = good_flows((labels > 0) * (1 + (labels == 7)))
    copies = [a.copy() for a in (labels, dp, cellprob)]
    for a in (labels, dp, cellprob):
        a.setflags(write=False)
    scores = nucleus_uncertainty(labels, dp, cellprob)
    assert list(scores) == [7, 4_000_000_000]
    for a, b in zip((labels, dp, cellprob), copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_empty_labels_and_ties():
    assert nucleus_uncertainty(np.zeros((5, 5), int)) == {}
    assert len(UncertaintyEstimator().estimate(np.zeros((2, 5, 5), int))) == 0
    labels = np.zeros((5, 12), int)
    labels[1:4, 1:4], labels[1:4, 5:8], labels[1:4, 9:12] = 3, 1, 2
    assert UncertaintyEstimator().rank(labels) == [(1, 0.0), (2, 0.0), (3, 0.0)]
    assert UncertaintyEstimator().rank(labels, top_n=2) == [(1, 0.0), (2, 0.0)]
    with pytest.raises(InvalidParameterError):
        UncertaintyEstimator().rank(labels, top_n=-1)


@pytest.mark.parametrize("labels, flows, cellprob, match", [
    (np.zeros((4, 4), float), None, None, "integer"),
    (np.zeros(4, int), None, None, r"\(Y, X\)"),
    (-np.ones((4, 4), int), None, None, ">= 0"),
    (np.ones((4, 4), int), np.zeros((2, 4, 5)), None, "dP"),
    (np.ones((4, 4), int), np.zeros((3, 4, 4)), None, "dP"),
    (np.ones((2, 4, 4), int), np.zeros((4, 2, 4, 4)), None, "dP"),
    (np.ones((4, 4), int), np.full((2, 4, 4), np.nan), None, "NaN"),
    (np.ones((4, 4), int), np.zeros((2, 4, 4)), np.zeros((4, 5)), "cellprob"),
    (np.ones((4, 4), int), None, np.full((4, 4), np.nan), "NaN"),
    (np.ones((4, 4), int), [np.zeros((4, 4, 3))], None, "list"),
])
def test_bad_inputs_are_refused(labels, flows, cellprob, match):
    with pytest.raises(InvalidInputError, match=match):
        UncertaintyEstimator().estimate(labels, flows, cellprob)


def test_table_rows():
    labels = two_nuclei("2d")
    t = UncertaintyEstimator().estimate(labels, *good_flows(labels))
    assert isinstance(t, NucleusUncertainty) and len(t) == 2
    rows = t.to_records()
    assert [r["id"] for r in rows] == [1, 2]
    assert set(rows[0]) == {"id", "score", "flow_signal", "cellprob_signal", "solidity_signal",
                            "flow_error", "mean_probability", "solidity"}
