"""Drawings across planes: interpolated sections, the spherical brush, the background fill, and
the edits that carry them (``segmentation.core.editing``)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from segmentation.core.drawing3d import background_fill_mask, interpolate_sections, sphere_mask
from segmentation.core.editing import Edit, apply_edit
from segmentation.core.errors import InvalidInputError


def _disc(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def _square(y0, x0, side):
    return [[y0, x0], [y0, x0 + side], [y0 + side, x0 + side], [y0 + side, x0]]


def test_it_morphs_between_sections_instead_of_stacking_one():
    small, large = _disc((40, 40), (20, 20), 4), _disc((40, 40), (20, 20), 12)
    solid = interpolate_sections([(0, small), (6, large)], (8, 40, 40))
    areas = solid.sum(axis=(1, 2))
    assert areas[0] == small.sum() and areas[6] == large.sum() and areas[7] == 0
    assert all(a < b for a, b in pairwise(areas[:7]))  # grows plane by plane
    np.testing.assert_allclose(np.sqrt(areas[3] / np.pi), 8.0, atol=0.7)  # the radius half way


def test_it_moves_the_shape_between_sections_drawn_apart():
    a, b = _disc((30, 60), (15, 10), 5), _disc((30, 60), (15, 50), 5)
    solid = interpolate_sections([(0, a), (4, b)], (5, 30, 60))
    centres = [np.nonzero(p)[1].mean() for p in solid]
    np.testing.assert_allclose(centres, [10, 20, 30, 40, 50], atol=0.6)
    assert all(p.sum() > 0.8 * a.sum() for p in solid)  # never pinched to nothing


def test_it_interpolates_each_gap_between_three_or_more_sections_given_in_any_order():
    small, large = _disc((40, 40), (20, 20), 4), _disc((40, 40), (20, 20), 12)
    solid = interpolate_sections([(8, small), (0, small), (4, large)], (10, 40, 40))
    areas = solid.sum(axis=(1, 2))
    assert areas[0] == areas[8] == small.sum() and areas[4] == large.sum() and areas[9] == 0
    assert all(a < b for a, b in pairwise(areas[:5])) and all(a > b for a, b in pairwise(areas[4:9]))
    np.testing.assert_array_equal(solid[2], solid[6])  # the same blend either side of the large one


def test_it_refuses_fewer_than_two_planes_or_an_empty_outline():
    disc = _disc((10, 10), (5, 5), 2)
    with pytest.raises(InvalidInputError, match="at least two planes"):
        interpolate_sections([(1, disc)], (3, 10, 10))
    with pytest.raises(InvalidInputError, match="same plane"):
        interpolate_sections([(1, disc), (1, disc)], (3, 10, 10))
    with pytest.raises(InvalidInputError, match="covers no pixel"):
        interpolate_sections([(0, disc), (2, np.zeros((10, 10), bool))], (3, 10, 10))


def test_it_sweeps_a_ball_in_micrometres_through_the_planes_it_reaches():
    ball = sphere_mask([[20, 20]], 5, 3.0, voxel_size=(2.0, 0.5, 0.5), shape=(11, 41, 41))
    assert ball[:4].sum() == 0 and ball[7:].sum() == 0  # 3 µm / 2 µm planes: one plane each side
    np.testing.assert_allclose(np.sqrt(ball[5].sum() / np.pi), 6.0, atol=0.3)  # 3 µm = 6 pixels
    np.testing.assert_allclose(np.sqrt(ball[4].sum() / np.pi), np.sqrt(9 - 4) / 0.5, atol=0.3)
    stroke = sphere_mask([[20, 5], [20, 35]], 5, 1.0, voxel_size=(2.0, 0.5, 0.5), shape=(11, 41, 41))
    assert stroke[5, 20, 5:36].all() and stroke.sum() == stroke[5].sum()


def test_it_fills_enclosed_background_and_refuses_a_leak():
    labels = np.zeros((3, 20, 20), np.uint16)
    ring = _disc((20, 20), (10, 10), 6) & ~_disc((20, 20), (10, 10), 3)
    labels[:2][:, ring] = 4
    labels[2, 9:12, 9:12] = 5  # plane 2: the seed falls on another nucleus
    before = labels.copy()
    filled = background_fill_mask(labels, (10, 10), (0, 2), 8)
    np.testing.assert_array_equal(labels, before)
    hole = _disc((20, 20), (10, 10), 3) & ~ring
    assert (filled[0] == hole).all() and (filled[1] == hole).all() and not filled[2].any()
    labels[0, 10, 4:8] = 0  # a gap in the ring on plane 0
    with pytest.raises(InvalidInputError, match="not enclosed within 8 pixels on plane 0"):
        background_fill_mask(labels, (10, 10), (0, 1), 8)


def _edit(**fields):
    return Edit.from_dict(Edit(**fields).to_dict())


def test_it_adds_a_nucleus_interpolated_between_outlines_on_two_planes():
    labels = np.zeros((6, 30, 30), np.uint32)
    labels[2, 0:3, 0:3] = 1
    edit = _edit(correction_type="add", z=4, sections=[{"z": 1, "polygon": _square(10, 10, 4)},
                                                     {"z": 4, "polygon": _square(8, 8, 10)}])
    assert edit.z_range == (1, 4)
    out = apply_edit(labels, edit, new_id=2)
    areas = (out == 2).sum(axis=(1, 2))
    assert areas[0] == areas[5] == 0 and all(areas[1:5] > 0) and areas[1] < areas[2] < areas[3] < areas[4]
    assert (out == 1).sum() == 1 * 9  # the neighbour untouched


def test_it_grows_and_erases_with_the_spherical_brush_in_micrometres():
    labels = np.zeros((7, 40, 40), np.uint32)
    labels[1:6, 10:30, 10:30] = 3
    labels[3, 20:24, 30:34] = 8  # a neighbour the ball overlaps
    grow = _edit(correction_type="modify", nucleus_ids=[3], z=3, stroke=[[20, 30]], radius_um=2.0)
    assert grow.planes_for((1.0, 0.5, 0.5)) == (1, 5)
    out = apply_edit(labels, grow, new_id=9, voxel_size=(1.0, 0.5, 0.5))
    assert (out == 8).sum() == (labels == 8).sum()  # painting never takes a neighbour's pixels
    assert (out == 3).sum() > (labels == 3).sum() and out[3, 20, 34] == 3 and out[1, 20, 31] == 0
    erase = _edit(correction_type="modify", nucleus_ids=[3], z=3, stroke=[[20, 20]], radius_um=2.0, erase=True)
    carved = apply_edit(labels, erase, new_id=9, voxel_size=(1.0, 0.5, 0.5))
    assert carved[3, 20, 20] == 0 and carved[2, 20, 20] == 0 and carved[1, 20, 22] == 3 and carved[0, 20, 20] == 0
    with pytest.raises(InvalidInputError, match="voxel size"):
        apply_edit(labels, grow, new_id=9)


def test_it_fills_a_hole_of_a_nucleus_or_a_gap_two_nuclei_enclose():
    hole = _disc((20, 20), (10, 10), 2)
    labels = np.zeros((1, 20, 20), np.uint32)
    labels[0][_disc((20, 20), (10, 10), 6) & ~hole] = 4
    out = apply_edit(labels, _edit(correction_type="modify", nucleus_ids=[4], fill=[10, 10], radius=8), new_id=6)
    assert (out == 4).sum() == (labels == 4).sum() + hole.sum()
    halves = labels.copy()
    halves[0, :, 10:][halves[0, :, 10:] == 4] = 5  # the ring's right half is another nucleus
    added = apply_edit(halves, _edit(correction_type="add", fill=[10, 10], radius=8), new_id=6)
    assert (added == 6).sum() == hole.sum() and ((added == 4) == (halves == 4)).all()
    far = np.zeros((1, 20, 20), np.uint32)
    far[0][_disc((20, 20), (6, 6), 5) & ~_disc((20, 20), (6, 6), 2)] = 4
    far[0, 15:18, 15:18] = 5
    with pytest.raises(InvalidInputError, match="does not touch nucleus 5"):
        apply_edit(far, _edit(correction_type="modify", nucleus_ids=[5], fill=[6, 6], radius=8), new_id=6)


@pytest.mark.parametrize("fields, message", [
    ({"correction_type": "add", "sections": [{"z": 1, "polygon": _square(0, 0, 3)}]}, "two or more"),
    ({"correction_type": "add", "z": 0, "sections": [{"z": 1, "polygon": _square(0, 0, 3)},
                                                    {"z": 2, "polygon": _square(0, 0, 3)}]}, "none of the sections"),
    ({"correction_type": "add", "stroke": [[1, 1]], "radius_um": 2.0, "radius": 3.0}, "radius_um alone"),
    ({"correction_type": "add", "stroke": [[1, 1]], "radius_um": -1.0}, "micrometres"),
    ({"correction_type": "add", "fill": [1, 1]}, "radius"),
    ({"correction_type": "modify", "nucleus_ids": [1], "fill": [1, 1], "radius": 4, "erase": True}, "cannot erase"),
    ({"correction_type": "split", "nucleus_ids": [1], "fill": [1, 1], "radius": 4}, "a split takes"),
    ({"correction_type": "add", "polygon": _square(0, 0, 3), "radius": 2.0}, "goes with a brush stroke"),
])
def test_it_refuses_bad_3d_drawings(fields, message):
    with pytest.raises(InvalidInputError, match=message):
        Edit(**fields)


def test_it_round_trips_and_shifts_3d_drawings():
    edit = Edit(correction_type="modify", nucleus_ids=[2], z=3, sections=[[5, _square(10, 10, 3)],
                                                                         [3, _square(12, 12, 3)]])
    assert Edit.from_dict(edit.to_dict()) == edit and edit.sections[0][0] == 3
    moved = edit.shifted(1, 10, 10)
    assert moved.z_range == (2, 4) and moved.sections[0][1][0] == (2.0, 2.0)
    fill = Edit(correction_type="add", z=2, fill=[5, 6], radius=3).shifted(1, 2, 2)
    assert fill.fill == (3.0, 4.0) and Edit.from_dict(fill.to_dict()) == fill
    assert fill.drawing_bounds() == (-1, 8, 0, 9)


def test_it_grows_a_nucleus_by_interpolated_sections_into_background_only():
    labels = np.zeros((5, 30, 30), np.uint32)
    labels[1:4, 10:14, 10:14] = 2
    labels[2, 16:20, 16:20] = 7  # a neighbour inside the drawn solid keeps its pixels
    edit = _edit(correction_type="modify", nucleus_ids=[2], z=1, sections=[{"z": 1, "polygon": _square(8, 8, 8)},
                                                                          {"z": 3, "polygon": _square(8, 8, 14)}])
    out = apply_edit(labels, edit, new_id=9)
    assert ((out == 7) == (labels == 7)).all() and (out == 9).sum() == 0
    assert (out == 2).sum() > (labels == 2).sum() and not (out[0] == 2).any() and not (out[4] == 2).any()
    erase = _edit(correction_type="modify", nucleus_ids=[2], z=1, erase=True,
                  sections=[{"z": 1, "polygon": _square(9, 9, 2)}, {"z": 3, "polygon": _square(9, 9, 2)}])
    carved = apply_edit(labels, erase, new_id=9)
    assert carved[2, 10, 10] == 0 and carved[2, 13, 13] == 2
