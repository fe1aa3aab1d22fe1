"""segmentation.core.editing on tiny literal arrays, 2D and 3D: each edit changes the nuclei it
names and the background, never a neighbour, and refuses what it cannot do."""

import numpy as np
import pytest

from segmentation.core.editing import (
    Edit,
    add_nucleus,
    apply_edit,
    delete_nuclei,
    merge_nuclei,
    modify_nucleus,
    polygon_mask,
    split_nucleus,
    stroke_mask,
)
from segmentation.core.errors import InvalidInputError


def _two_blobs(z: int = 1) -> np.ndarray:
    """A 20-wide nucleus 1 (columns 2..21) beside a neighbour 2, on ``z`` planes."""
    labels = np.zeros((z, 12, 32), np.uint32)
    labels[:, 3:9, 2:22] = 1
    labels[:, 3:9, 25:30] = 2
    return labels


@pytest.mark.parametrize("z", [1, 4])
def test_it_splits_along_a_line_through_every_plane(z):
    labels = _two_blobs(z)
    out = split_nucleus(labels, 1, line=[[0, 11.5], [11, 11.5]], new_id=3)
    assert out.dtype == labels.dtype and out.shape == labels.shape
    assert set(np.unique(out)) == {0, 1, 2, 3}
    assert ((out == 1) | (out == 3)).sum() == (labels == 1).sum()  # no pixel lost to the line
    assert (out[labels == 2] == 2).all() and (out[labels == 0] == 0).all()
    for plane in out:  # the cut runs through every plane: each half on one side
        left, right = set(np.unique(plane[3:9, 2:11])), set(np.unique(plane[3:9, 13:22]))
        assert len(left) == len(right) == 1 and left | right == {1, 3}
    assert labels.max() == 2  # input untouched


@pytest.mark.parametrize("z", [1, 3])
def test_it_splits_by_two_seeds(z):
    labels = _two_blobs(z)
    out = split_nucleus(labels, 1, seeds=[[5, 4], [5, 19]], new_id=7)
    assert {int(out[0, 5, 4]), int(out[0, 5, 19])} == {1, 7}
    assert ((out == 1) | (out == 7)).sum() == (labels == 1).sum()
    assert (out == 2).sum() == (labels == 2).sum()


def test_it_refuses_a_line_that_does_not_cut():
    with pytest.raises(InvalidInputError, match="does not cut"):
        split_nucleus(_two_blobs(), 1, line=[[0, 11], [5, 11]], new_id=3)
    with pytest.raises(InvalidInputError, match="seed 2 does not lie inside"):
        split_nucleus(_two_blobs(), 1, seeds=[[5, 4], [5, 27]], new_id=3)
    with pytest.raises(InvalidInputError, match="already in use"):
        split_nucleus(_two_blobs(), 1, line=[[0, 11.5], [11, 11.5]], new_id=2)


def test_it_merges_deletes_and_names_missing_ids():
    labels = _two_blobs(2)
    merged = merge_nuclei(labels, [2, 1])
    assert set(np.unique(merged)) == {0, 1} and (merged > 0).sum() == (labels > 0).sum()
    deleted = delete_nuclei(labels, [2])
    assert set(np.unique(deleted)) == {0, 1}
    with pytest.raises(InvalidInputError, match="no nucleus 9"):
        merge_nuclei(labels, [1, 9])
    with pytest.raises(InvalidInputError, match="at least two"):
        merge_nuclei(labels, [1, 1])


def test_it_adds_on_background_only_on_the_planes_given():
    labels = _two_blobs(3)
    drawing = polygon_mask([[1, 18], [1, 27], [10, 27], [10, 18]], labels.shape[1:])
    out = add_nucleus(labels, drawing, planes=(1, 2), new_id=5)
    assert not (out[0] == 5).any() and (out[1:] == 5).any()
    assert (out[labels == 1] == 1).all() and (out[labels == 2] == 2).all()  # neighbours keep their pixels
    with pytest.raises(InvalidInputError, match="covers no background"):
        add_nucleus(labels, labels[0] == 1, planes=(0, 0), new_id=5)


def test_it_brushes_and_erases_one_nucleus():
    labels = _two_blobs()
    grown = modify_nucleus(labels, 2, stroke_mask([[10, 25], [10, 29]], 1.0, labels.shape[1:]), planes=(0, 0),
                           erase=False)
    assert (grown == 2).sum() > (labels == 2).sum() and (grown == 1).sum() == (labels == 1).sum()
    shrunk = modify_nucleus(labels, 1, stroke_mask([[5, 2]], 2.0, labels.shape[1:]), planes=(0, 0), erase=True)
    assert 0 < (shrunk == 1).sum() < (labels == 1).sum()
    with pytest.raises(InvalidInputError, match="delete it instead"):
        modify_nucleus(labels, 2, labels[0] == 2, planes=(0, 0), erase=True)


def test_it_validates_and_round_trips_an_edit():
    edit = Edit(correction_type="split", nucleus_ids=[1], z=0, line=[[0, 11.5], [11, 11.5]])
    assert Edit.from_dict(edit.to_dict()) == edit
    assert edit.drawing_bounds() == (-1, 13, 10, 14)
    out = apply_edit(_two_blobs()[0], edit.shifted(0, 0, 0), new_id=3)
    assert out.ndim == 2 and set(np.unique(out)) == {0, 1, 2, 3}
    bad = [
        ({"correction_type": "explode"}, "unknown correction type"),
        ({"correction_type": "merge", "nucleus_ids": [1]}, "at least 2"),
        ({"correction_type": "split", "nucleus_ids": [1]}, "takes line or seeds"),
        ({"correction_type": "add", "polygon": [[0, 0], [1, 1]]}, "at least 3"),
        ({"correction_type": "modify", "nucleus_ids": [1], "stroke": [[1, 1]]}, "radius"),
        ({"correction_type": "add", "z": 2, "z_range": [3, 4], "polygon": [[0, 0], [0, 5], [5, 5]]}, "contain"),
        ({"correction_type": "delete", "nucleus_ids": [1], "colour": "red"}, "unknown edit fields: colour"),
        ({"nucleus_ids": [1]}, "missing edit fields: correction_type"),
        ([{"correction_type": "delete"}], "edit fields must be a JSON object, got list"),
        ({"correction_type": "delete", "nucleus_ids": [0]}, "start at 1"),
    ]
    for data, message in bad:
        with pytest.raises(InvalidInputError, match=message):
            Edit.from_dict(data)


def _z_merge() -> np.ndarray:
    """Nucleus 1: two nuclei joined in z, planes 1-4 (x 4..13) on planes 5-9 (x 2..17, wider),
    y 3..8; a neighbour 2 beside them on every plane."""
    labels = np.zeros((11, 12, 24), np.uint32)
    labels[1:5, 3:9, 4:14] = 1
    labels[5:10, 3:9, 2:18] = 1
    labels[:, 3:9, 20:23] = 2
    return labels


@pytest.mark.parametrize("plane", ["xz", "yz"])
def test_it_splits_a_z_merge_with_one_line_on_an_orthogonal_plane(plane):
    labels = _z_merge() if plane == "xz" else np.ascontiguousarray(_z_merge().transpose(0, 2, 1))
    # Drawn across the narrower part only (x 5..12 on the plane y=5, or its YZ twin): the cut
    # is carried on to the edges, so the wider planes below are cut too.
    out = split_nucleus(labels, 1, line=[[5.0, 5.0], [5.0, 12.0]], new_id=3, plane=plane)
    upper, lower = set(np.unique(out[1:5][labels[1:5] == 1])), set(np.unique(out[6:10][labels[6:10] == 1]))
    assert len(upper) == len(lower) == 1 and upper | lower == {1, 3}
    assert lower == {1}  # the larger half keeps the id
    assert ((out == 1) | (out == 3)).sum() == (labels == 1).sum()
    assert (out[labels == 2] == 2).all() and (out[labels == 0] == 0).all()


def test_it_refuses_orthogonal_splits_it_cannot_make():
    labels = _z_merge()
    with pytest.raises(InvalidInputError, match="does not cut"):
        split_nucleus(labels, 1, line=[[10.4, 0], [10.4, 20]], new_id=3, plane="xz")  # below the nucleus
    with pytest.raises(InvalidInputError, match="line"):
        split_nucleus(labels, 1, seeds=[[2, 5], [7, 5]], new_id=3, plane="xz")
    with pytest.raises(InvalidInputError, match="plane"):
        split_nucleus(labels, 1, line=[[5, 0], [5, 20]], new_id=3, plane="zz")
    for bad in [dict(correction_type="split", nucleus_ids=[1], seeds=[[1, 1], [2, 2]], plane="xz"),
                dict(correction_type="add", polygon=[[0, 0], [0, 5], [5, 5]], plane="yz"),
                dict(correction_type="split", nucleus_ids=[1], line=[[1, 1], [2, 2]], plane="zy")]:
        with pytest.raises(InvalidInputError):
            Edit.from_dict(bad)


def test_it_carries_an_orthogonal_edit_into_a_crop_and_back_through_json():
    edit = Edit(correction_type="split", nucleus_ids=[1], z=6, line=((5.0, 3.0), (5.0, 14.0)), plane="xz")
    assert Edit.from_dict(edit.to_dict()) == edit and edit.to_dict()["plane"] == "xz"
    assert edit.drawing_bounds() is None  # the cut stays inside the nucleus' box
    moved = edit.shifted(1, 2, 3)
    assert moved.line == ((4.0, 0.0), (4.0, 11.0)) and moved.z == 5
    assert Edit(correction_type="split", nucleus_ids=[1], z=3, line=((5.0, 3.0), (5.0, 4.0)),
                plane="yz").shifted(1, 2, 3).line == ((4.0, 1.0), (4.0, 2.0))
    labels = _z_merge()
    crop = (slice(1, 11), slice(2, 10), slice(3, 19))
    whole = apply_edit(labels, edit, new_id=3)
    cropped = apply_edit(labels[crop], edit.shifted(1, 2, 3), new_id=3)
    np.testing.assert_array_equal(whole[crop], cropped)


@pytest.mark.parametrize("kind, ids", [("merge", [1, 2]), ("delete", [2]), ("confirm", [1])])
def test_an_edit_without_a_drawing_names_no_plane_and_moves_into_any_crop(kind, ids):
    edit = Edit(correction_type=kind, nucleus_ids=ids, z=10)  # the plane the viewer showed: none of theirs
    assert not edit.has_plane and Edit(correction_type="add", z=2, polygon=[[0, 0], [0, 3], [3, 3]]).has_plane
    # Any crop holding its nuclei whole, whatever its planes: nothing to move, no plane to check.
    labels = _z_merge()
    crop = (slice(1, 10), slice(3, 9), slice(2, 23))  # both nuclei whole
    cropped = apply_edit(labels[crop], edit.shifted(1, 3, 2), new_id=9)
    assert np.array_equal(cropped, apply_edit(labels, edit, new_id=9)[crop])
