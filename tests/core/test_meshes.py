"""Meshes of nuclei: marching cubes in micrometres, bounded triangles, neighbours, z-merge signs."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.core import InvalidInputError, nucleus_mesh, touching_labels, z_merge_signs, z_profile


def _ball(shape, centre, radius, voxel_size):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    distance2 = sum(((g - c) * v) ** 2 for g, c, v in zip(grids, centre, voxel_size, strict=True))
    return distance2 <= radius ** 2


def _closed(faces: np.ndarray) -> bool:
    """Every edge of a closed surface belongs to exactly two triangles."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return bool((counts == 2).all())


def test_it_meshes_a_ball_in_micrometres_where_it_lies():
    voxel = (2.0, 0.5, 0.5)
    labels = np.zeros((12, 40, 40), np.uint16)
    labels[_ball(labels.shape, (6, 20, 20), 7.0, voxel)] = 3
    mesh = nucleus_mesh(labels, 3, voxel_size=voxel, offset=(10, 100, 200))
    assert mesh.label_id == 3 and mesh.n_triangles > 0 and _closed(mesh.faces)
    centre = mesh.vertices.mean(axis=0)
    np.testing.assert_allclose(centre, [(10 + 6) * 2.0, (100 + 20) * 0.5, (200 + 20) * 0.5], atol=0.6)
    extent = mesh.vertices.max(axis=0) - mesh.vertices.min(axis=0)
    np.testing.assert_allclose(extent[1:], [14.0, 14.0], atol=1.5)
    assert mesh.volume_um3 == pytest.approx((labels == 3).sum() * 2.0 * 0.25)
    zs = np.nonzero((labels == 3).any(axis=(1, 2)))[0]
    assert mesh.z_range == (10 + zs.min(), 10 + zs.max())


def test_it_simplifies_to_the_triangle_bound_and_keeps_the_shape():
    voxel = (1.0, 1.0, 1.0)
    labels = np.zeros((50, 50, 50), np.uint8)
    labels[_ball(labels.shape, (25, 25, 25), 20.0, voxel)] = 1
    full = nucleus_mesh(labels, 1, voxel_size=voxel, max_triangles=10 ** 6)
    small = nucleus_mesh(labels, 1, voxel_size=voxel, max_triangles=800)
    assert full.n_triangles > 800 >= small.n_triangles > 100
    radii = np.linalg.norm(small.vertices - 25.0, axis=1)
    assert abs(radii.mean() - 20.0) < 1.5


def test_it_never_modifies_its_input_and_refuses_a_missing_nucleus():
    labels = np.zeros((4, 6, 6), np.int32)
    labels[1:3, 1:5, 1:5] = 2
    before = labels.copy()
    nucleus_mesh(labels, 2, voxel_size=(1, 1, 1))
    np.testing.assert_array_equal(labels, before)
    with pytest.raises(InvalidInputError, match="no nucleus 5"):
        nucleus_mesh(labels, 5, voxel_size=(1, 1, 1))
    with pytest.raises(InvalidInputError, match="voxel_size"):
        nucleus_mesh(labels, 2, voxel_size=(0, 1, 1))
    with pytest.raises(InvalidInputError, match="max_triangles"):
        nucleus_mesh(labels, 2, voxel_size=(1, 1, 1), max_triangles=3)


@pytest.mark.parametrize("shape", [(7, 7), (1, 7, 7)])
def test_it_meshes_a_single_plane_nucleus(shape):
    labels = np.zeros(shape, np.uint8)
    labels[..., 2:5, 2:5] = 1
    mesh = nucleus_mesh(labels, 1, voxel_size=(3.0, 1.0, 1.0))
    assert mesh.z_range == (0, 0) and mesh.n_triangles > 0 and _closed(mesh.faces)


def test_it_finds_the_nuclei_that_touch_and_not_those_a_gap_apart():
    labels = np.zeros((3, 8, 12), np.uint8)
    labels[:, 2:6, 2:6] = 1
    labels[:, 2:6, 6:9] = 2  # shares a face with 1
    labels[1, 2:6, 10:12] = 3  # a background column apart
    labels[2, 6:8, 2:4] = 4  # under 1 in y
    assert touching_labels(labels, 1) == [2, 4]
    assert touching_labels(labels, 3) == []


def test_it_sees_a_waist_in_two_balls_stacked_in_z_and_none_in_one():
    voxel = (1.0, 0.5, 0.5)
    labels = np.zeros((24, 30, 30), np.uint8)
    labels[_ball(labels.shape, (6, 15, 15), 5.5, voxel) | _ball(labels.shape, (17, 15, 15), 5.5, voxel)] = 1
    merged = z_profile(labels, 1, voxel_size=voxel)
    signs = z_merge_signs(merged, z_step=1.0)
    assert any("waist" in s for s in signs) and any("tall" in s for s in signs)
    single = np.zeros_like(labels)
    single[_ball(labels.shape, (12, 15, 15), 5.5, voxel)] = 1
    assert z_merge_signs(z_profile(single, 1, voxel_size=voxel), z_step=1.0) == []
    assert [z for z, _ in merged] == list(range(merged[0][0], merged[-1][0] + 1))
