"""nucleus_table on tiny literal arrays, with numbers worked out by hand."""

import numpy as np
import pytest

from segmentation.core import synthetic
from segmentation.core.errors import InvalidInputError
from segmentation.core.measurements import NUCLEUS_FIELDS, measure_planes, nucleus_table


def _cube_and_dot():
    """id 1: a 3x3x3 cube without its centre voxel; id 4: one voxel elsewhere."""
    labels = np.zeros((3, 5, 5), np.uint32)
    labels[:, 0:3, 0:3] = 1
    labels[1, 1, 1] = 0
    labels[1, 4, 4] = 4
    image = np.zeros((3, 5, 5), np.float32)
    image[labels == 1] = 2.0
    image[0, 0, 0] = 28.0   # sum over id 1: 25 * 2 + 28 = 78, mean 3
    image[1, 4, 4] = 7.5
    return labels, image


def test_it_measures_a_3d_nucleus_and_a_single_voxel():
    labels, image = _cube_and_dot()
    rows = nucleus_table(labels, image, (2.0, 0.5, 0.5))
    assert [r["label_id"] for r in rows] == [1, 4]
    one, four = rows
    assert list(one) == list(NUCLEUS_FIELDS)
    assert (one["z_min"], one["z_max"]) == (0, 2)
    assert (one["centroid_z"], one["centroid_y"], one["centroid_x"]) == (1.0, 1.0, 1.0)
    assert one["volume_voxels"] == 26
    assert one["volume_um3"] == 13.0            # 26 voxels of 2 x 0.5 x 0.5
    assert one["integrated_intensity"] == 78.0
    assert one["mean_intensity"] == 3.0
    assert one["solidity"] == pytest.approx(26 / 27)  # the hull fills the hole
    assert one["uncertainty"] is None
    assert (four["z_min"], four["z_max"], four["volume_voxels"]) == (1, 1, 1)
    assert (four["centroid_z"], four["centroid_y"], four["centroid_x"]) == (1.0, 4.0, 4.0)
    assert four["mean_intensity"] == four["integrated_intensity"] == 7.5
    assert four["solidity"] == 1.0


@pytest.mark.parametrize("as_2d", [True, False], ids=["YX", "1YX"])
def test_it_measures_a_flat_ring_in_2d(as_2d):
    labels = np.zeros((1, 6, 6), np.uint16)
    labels[0, 1:4, 1:4] = 2
    labels[0, 2, 2] = 0                       # a ring of 8 pixels around a hole
    image = np.ones((1, 6, 6), np.uint8)
    if as_2d:
        labels, image = labels[0], image[0]
    [row] = nucleus_table(labels, image, (0.5, 0.5))
    assert row["label_id"] == 2
    assert (row["z_min"], row["z_max"], row["centroid_z"]) == (0, 0, 0.0)
    assert (row["centroid_y"], row["centroid_x"]) == (2.0, 2.0)
    assert row["volume_voxels"] == 8
    assert row["volume_um3"] == 2.0            # 8 pixels of 0.5 x 0.5 (z taken as 1)
    assert row["solidity"] == pytest.approx(8 / 9)


def test_it_measures_a_flat_nucleus_in_a_stack_slice_by_slice():
    labels = np.zeros((3, 6, 6), np.uint32)
    labels[1, 1:4, 1:4] = 5
    labels[1, 2, 2] = 0
    [row] = nucleus_table(labels, np.ones(labels.shape), (1.0, 1.0, 1.0))
    assert row["solidity"] == pytest.approx(8 / 9)


def test_it_falls_back_to_planes_for_an_oblique_plane():
    labels = np.zeros((2, 3, 3), np.uint32)
    labels[0, 0, 0:2] = 3                      # centres (z, y, x) with y == z: one oblique plane
    labels[1, 1, 0:2] = 3
    with np.errstate(all="raise"):
        [row] = nucleus_table(labels, np.ones(labels.shape), (1.0, 1.0, 1.0))
    assert row["solidity"] == 1.0
    assert row["volume_voxels"] == 4


def test_it_attaches_uncertainty_by_id():
    labels, image = _cube_and_dot()
    rows = nucleus_table(labels, image, (1, 1, 1), uncertainty={4: 0.25, 99: 1.0})
    assert [r["uncertainty"] for r in rows] == [None, 0.25]


def test_it_gives_the_same_rows_for_huge_sparse_ids():
    labels, image = _cube_and_dot()
    big = labels.astype(np.uint64)
    big[big == 4] = 2 ** 40
    small_rows = nucleus_table(labels, image, (1, 1, 1))
    big_rows = nucleus_table(big, image, (1, 1, 1))
    assert [r["label_id"] for r in big_rows] == [1, 2 ** 40]
    for a, b in zip(small_rows, big_rows, strict=True):
        assert {k: v for k, v in a.items() if k != "label_id"} == {k: v for k, v in b.items() if k != "label_id"}


def test_it_returns_nothing_for_empty_labels():
    assert nucleus_table(np.zeros((2, 4, 4), np.uint32), np.ones((2, 4, 4)), (1, 1, 1)) == []


def test_it_leaves_its_inputs_alone_and_agrees_with_scipy_on_a_generated_volume():
    sample = synthetic.generate_3d(shape=(6, 48, 48), seed=3)
    labels, image = sample.labels.copy(), sample.image.copy()
    rows = nucleus_table(labels, image, (2.0, 0.5, 0.5))
    np.testing.assert_array_equal(labels, sample.labels)
    np.testing.assert_array_equal(image, sample.image)
    ids = [r["label_id"] for r in rows]
    assert ids == sorted(int(i) for i in np.unique(sample.labels) if i)
    from scipy import ndimage as ndi
    centres = ndi.center_of_mass(np.ones(labels.shape), labels, ids)
    means = ndi.mean(image, labels, ids)
    for row, centre, mean in zip(rows, centres, means, strict=True):
        assert (row["centroid_z"], row["centroid_y"], row["centroid_x"]) == pytest.approx(centre)
        assert row["mean_intensity"] == pytest.approx(mean, rel=1e-6)
        assert 0 < row["solidity"] <= 1


@pytest.mark.parametrize("labels, image, voxel_size", [
    (np.zeros((2, 3, 3), np.float32), np.zeros((2, 3, 3)), (1, 1, 1)),
    (np.zeros((2, 3, 3), np.int32) - 1, np.zeros((2, 3, 3)), (1, 1, 1)),
    (np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3, 4)), (1, 1, 1)),
    (np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3, 3)), (1, 0, 1)),
    (np.zeros((2, 2, 3, 3), np.uint8), np.zeros((2, 2, 3, 3)), (1, 1, 1)),
])
def test_it_refuses_bad_input(labels, image, voxel_size):
    with pytest.raises(InvalidInputError):
        nucleus_table(labels, image, voxel_size)


@pytest.mark.parametrize("shape", [(1, 12, 14), (5, 12, 14)])
def test_planes_measured_with_stale_solidity_measure_it_again_where_asked(shape):
    """measure_planes keeps the solidity it is given, but for the ids it is asked to measure:
    those come out as nucleus_table's on the same labels; the given array is left alone."""
    rng = np.random.default_rng(4)
    labels = np.zeros(shape, np.uint32)
    labels[:, 2:10, 2:10] = 1
    labels[:, 4:7, 4:10] = 0  # a notch: nucleus 1 is far from convex
    labels[:, 1:4, 11:14] = 2
    image = rng.random(shape)
    stale = np.array([1.0, 0.5, 0.25])
    table = measure_planes(labels.__getitem__, shape, image, (1, 1, 1), solidity=stale,
                           uncertainty=np.full(3, np.nan), measure_solidity=np.array([1]))
    expected = nucleus_table(labels, image, (1, 1, 1))
    rows = list(table)
    assert [r["solidity"] for r in rows] == [expected[0]["solidity"], 0.25]
    assert expected[0]["solidity"] < 0.9
    assert [{k: v for k, v in r.items() if k != "solidity"} for r in rows] == \
        [{k: v for k, v in r.items() if k != "solidity"} for r in expected]
    assert stale.tolist() == [1.0, 0.5, 0.25]
