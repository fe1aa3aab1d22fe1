import dataclasses
from itertools import pairwise

import numpy as np
import pytest
from skimage.segmentation import expand_labels, relabel_sequential

from segmentation.core.errors import InvalidInputError, InvalidParameterError
from segmentation.core.linking import LinkingParams, link_slices
from segmentation.core.metrics import average_precision


def blobs_2d(shape, n, seed, radius=5):
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int32)
    seeds[tuple(rng.integers(0, s, n) for s in shape)] = np.arange(1, n + 1)
    return relabel_sequential(expand_labels(seeds, radius))[0]


def columns_3d(z, shape, n, seed):
    """Ground truth: 2D blobs extruded over a random z range each, so nuclei start and end."""
    rng = np.random.default_rng(seed)
    plane = blobs_2d(shape, n, seed)
    ids = np.unique(plane)[1:]
    start = rng.integers(0, z - 1, ids.size)
    stop = np.minimum(start + rng.integers(2, z + 1, ids.size), z)
    zz = np.arange(z)[:, None]
    alive = (zz >= start) & (zz < stop)  # (Z, n)
    lut = np.zeros((z, ids.max() + 1), np.uint32)
    lut[:, ids] = np.where(alive, ids, 0)
    return lut[np.arange(z)[:, None, None], plane[None]]


def scramble_per_slice(gt, seed, offset_unique=False):
    """Independent 2D labels: each slice renumbered with random ids (unique across the volume or not)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(gt.shape, np.int64)
    for z in range(gt.shape[0]):
        ids = np.unique(gt[z])[1:]
        lut = np.zeros(int(gt.max()) + 1, np.int64)
        lut[ids] = rng.permutation(ids.size) + 1 + (1000 * z if offset_unique else 0)
        out[z] = lut[gt[z]]
    return out


def check_invariants(labels, linked):
    assert linked.dtype == np.uint32 and linked.shape == labels.shape
    # No voxel lost, none invented.
    np.testing.assert_array_equal(linked > 0, labels > 0)
    ids = np.unique(linked)[1:]
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1))
    for z in range(labels.shape[0]):
        fg = labels[z] > 0
        pairs = np.unique(np.stack([labels[z][fg], linked[z][fg]]), axis=1)
        # Each 2D object gets a single 3D id, and two objects of one slice never share one.
        assert np.unique(pairs[0]).size == pairs.shape[1] == np.unique(pairs[1]).size
    # Linked objects overlap: consecutive appearances of a track share a pixel in (Y, X).
    for track in ids:
        planes = np.flatnonzero((linked == track).any(axis=(1, 2)))
        for z0, z1 in pairwise(planes):
            assert ((linked[z0] == track) & (linked[z1] == track)).any(), (track, z0, z1)


# ---------------------------------------------------------------- parameters


def test_linking_params_round_trip():
    params = LinkingParams(min_overlap_ratio=0.5, max_distance_z=3)
    assert LinkingParams.from_dict(params.to_dict()) == params
    assert params.to_dict() == {"min_overlap_ratio": 0.5, "max_distance_z": 3, "overlap_measure": "iou",
                                "split_dip": 0.7, "max_z_elongation": 2.5}
    assert LinkingParams.from_dict({}) == LinkingParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.max_distance_z = 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_overlap_ratio": 0.0},
        {"min_overlap_ratio": 1.2},
        {"min_overlap_ratio": "0.3"},
        {"max_distance_z": 0},
        {"max_distance_z": 1.5},
        {"max_distance_z": True},
        {"overlap_measure": "dice"},
    ],
)
def test_linking_params_refuse_bad_values(kwargs):
    with pytest.raises(InvalidParameterError):
        LinkingParams(**kwargs)
    with pytest.raises(InvalidParameterError):
        link_slices(np.zeros((2, 2, 2), int), **kwargs)


def test_linking_params_refuse_unknown_keys():
    with pytest.raises(InvalidParameterError):
        LinkingParams.from_dict({"min_overlap": 0.3})


# ---------------------------------------------------------------- literal cases


def test_links_overlapping_objects_and_numbers_by_first_appearance():
    stack = np.array(
        [
            [[7, 7, 0, 3, 3]],
            [[0, 4, 4, 0, 9]],  # 4 overlaps 7 with IoU 1/3, 9 overlaps 3 with IoU 1/2
            [[0, 0, 0, 1, 1]],  # 1 overlaps 9 with IoU 1/2
        ]
    )
    linked = link_slices(stack, max_distance_z=1)
    # 3 < 7, so 3 starts track 1 and 7 track 2.
    np.testing.assert_array_equal(linked[:, 0], [[2, 2, 0, 1, 1], [0, 2, 2, 0, 1], [0, 0, 0, 1, 1]])
    # Above 1/3, 4 starts track 3.
    np.testing.assert_array_equal(link_slices(stack, min_overlap_ratio=0.4)[1, 0], [0, 3, 3, 0, 1])


@pytest.mark.parametrize("gap, max_distance_z, bridged", [(1, 1, False), (1, 2, True), (2, 2, False), (2, 3, True)])
def test_gap_bridging(gap, max_distance_z, bridged):
    obj = np.array([[1, 1, 1, 0]])
    stack = np.stack([obj] + [np.zeros_like(obj)] * gap + [obj * 5])
    linked = link_slices(stack, max_distance_z=max_distance_z)
    assert bool(linked[-1, 0, 0] == linked[0, 0, 0]) == bridged
    assert linked.max() == (1 if bridged else 2)


def test_nearer_slice_wins_over_better_overlap_further_back():
    # A (cols 0-1) is missing on slice 1; B moves from cols 2-4 to cols 1-3. The object on
    # slice 2 (cols 0-2) overlaps A with IoU 2/3 and B with IoU 1/2: B, the nearer track, wins.
    stack = np.array([[[1, 1, 2, 2, 2, 0]], [[0, 2, 2, 2, 0, 0]], [[3, 3, 3, 0, 0, 0]]])
    linked = link_slices(stack, max_distance_z=2)
    assert linked[1, 0, 1] == linked[0, 0, 2]
    assert linked[2, 0, 0] == linked[1, 0, 1] != linked[0, 0, 0]


def test_assignment_maximises_summed_iou_not_each_best_match():
    # Slice 0: P1 cols 0-4, P2 cols 5-9. Slice 1: N1 cols 1-7, N2 col 0.
    # IoU(N1, P1) = 1/2, IoU(N1, P2) = 1/3, IoU(N2, P1) = 1/5. Best-match-first (cellpose's
    # stitch3D) links N1-P1 and leaves N2 alone; the optimal assignment links N1-P2 and N2-P1.
    stack = np.array([[[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]], [[9, 8, 8, 8, 8, 8, 8, 8, 0, 0]]])
    linked = link_slices(stack, min_overlap_ratio=0.15)
    np.testing.assert_array_equal(linked[1, 0], [1, 2, 2, 2, 2, 2, 2, 2, 0, 0])
    # Above 1/5 only N1 has candidates, and it takes its best one.
    np.testing.assert_array_equal(link_slices(stack, min_overlap_ratio=0.25)[1, 0], [3, 1, 1, 1, 1, 1, 1, 1, 0, 0])


def test_intersection_over_smaller_links_the_cap_of_a_nucleus():
    # A nucleus' top section (2 pixels) sits inside its middle section (8 pixels): IoU 1/4.
    stack = np.zeros((2, 1, 10), np.uint8)
    stack[0, 0, 3:5] = 1
    stack[1, 0, 1:9] = 1
    assert link_slices(stack).max() == 2
    linked = link_slices(stack, min_overlap_ratio=0.7, overlap_measure="intersection_over_smaller")
    assert linked.max() == 1
    # Still one-to-one: a second cap inside the same section starts its own track.
    stack[0, 0, 6:8] = 2
    linked = link_slices(stack, min_overlap_ratio=0.7, overlap_measure="intersection_over_smaller")
    assert linked.max() == 2
    check_invariants(stack, linked)


def test_one_object_never_takes_two_tracks():
    stack = np.array([[[1, 1, 0, 2, 2]], [[3, 3, 3, 3, 3]]])
    linked = link_slices(stack, min_overlap_ratio=0.3)
    assert np.unique(linked[1]).size == 1
    assert linked.max() == 2
    check_invariants(stack, linked)


def test_empty_and_blank_stacks():
    assert link_slices(np.zeros((0, 4, 4), np.uint16)).shape == (0, 4, 4)
    out = link_slices(np.zeros((3, 4, 4), np.uint16))
    assert out.dtype == np.uint32 and not out.any()


@pytest.mark.parametrize("bad", [np.zeros((4, 4), int), np.zeros((2, 4, 4), float), -np.ones((2, 2, 2), int)])
def test_refuses_non_label_stacks(bad):
    with pytest.raises(InvalidInputError):
        link_slices(bad)


# ---------------------------------------------------------------- generated volumes


@pytest.mark.parametrize("offset_unique", [False, True], ids=["ids-repeat", "ids-unique"])
@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_extruded_nuclei_exactly(seed, offset_unique):
    gt = columns_3d(8, (40, 40), 10, seed)
    per_slice = scramble_per_slice(gt, seed + 10, offset_unique)
    before = per_slice.copy()
    linked = link_slices(per_slice)
    np.testing.assert_array_equal(per_slice, before)  # input untouched
    check_invariants(per_slice, linked)
    res = average_precision(gt, linked, thresholds=(0.99,))
    assert res.ap[0] == 1.0 and res.tp[0] == np.unique(gt).size - 1


@pytest.mark.parametrize("seed", [2, 3])
def test_bridges_dropped_objects(seed):
    rng = np.random.default_rng(seed)
    gt = columns_3d(10, (40, 40), 10, seed)
    per_slice = scramble_per_slice(gt, seed + 20)
    # Drop every nucleus on one slice strictly inside its z range.
    damaged = per_slice.copy()
    for nucleus in np.unique(gt)[1:]:
        planes = np.flatnonzero((gt == nucleus).any(axis=(1, 2)))
        if planes.size >= 3:
            z = rng.choice(planes[1:-1])
            damaged[z][gt[z] == nucleus] = 0
    linked = link_slices(damaged, max_distance_z=2)
    check_invariants(damaged, linked)
    assert average_precision(gt * (damaged > 0), linked, thresholds=(0.99,)).ap[0] == 1.0
    unbridged = link_slices(damaged, max_distance_z=1)
    assert unbridged.max() > linked.max()


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_invariants_on_random_uncorrelated_slices(seed):
    stack = np.stack([blobs_2d((32, 32), 12, seed * 100 + z, radius=4) for z in range(6)])
    stack[2] = 0  # an empty slice in the middle
    for kwargs in (
        {},
        {"min_overlap_ratio": 0.05, "max_distance_z": 3},
        {"min_overlap_ratio": 0.5, "overlap_measure": "intersection_over_smaller"},
    ):
        check_invariants(stack, link_slices(stack, **kwargs))


def spheres(centres_radii, shape, spacing=(1.0, 1.0, 1.0)):
    """Ground truth of balls ``(centre (z, y, x), radius)`` in physical units; later ones win."""
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    gt = np.zeros(shape, np.uint32)
    for i, (centre, radius) in enumerate(centres_radii, start=1):
        inside = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius ** 2
        gt[inside & (gt == 0)] = i
    # A 2D model never finds the pixel-sized tips of a ball (min_size): drop sections under 8 px.
    for z in range(shape[0]):
        sizes = np.bincount(gt[z].ravel(), minlength=len(centres_radii) + 1)
        gt[z][sizes[gt[z]] < 8] = 0
    return gt


@pytest.mark.parametrize("z_step", [1.0, 2.0])
def test_it_cuts_nuclei_stacked_in_z_at_the_dip_of_their_sections(z_step):
    # Two balls touching in z, one above the other: their sections overlap in (Y, X) as much
    # as two sections of one ball, so overlap linking alone makes them one object.
    gt = spheres([((8, 16, 16), 7), ((22, 17, 16), 7)], (int(32 / z_step), 32, 32), spacing=(z_step, 1, 1))
    slices = scramble_per_slice(gt, seed=1, offset_unique=True)
    merged = link_slices(slices, split_dip=0, max_z_elongation=0)
    assert np.unique(merged).size - 1 == 1
    linked = link_slices(slices, anisotropy=z_step)
    check_invariants(slices, linked)
    assert average_precision(gt, linked, thresholds=(0.9,)).ap[0] == 1.0


def test_it_keeps_one_nucleus_whole_when_its_sections_wobble():
    gt = spheres([((12, 16, 16), 10)], (24, 32, 32))
    wobbly = gt.copy()
    # The 2D model shrinks one middle section by a fifth: no second nucleus there.
    z = 12
    eroded = np.zeros_like(wobbly[z])
    yy, xx = np.mgrid[:32, :32]
    eroded[((yy - 16) ** 2 + (xx - 16) ** 2) <= (10 * 0.9) ** 2] = 1
    wobbly[z] = eroded
    linked = link_slices(scramble_per_slice(wobbly, seed=2, offset_unique=True))
    assert np.unique(linked).size - 1 == 1


def test_it_cuts_a_track_too_long_for_its_width_in_micrometres():
    # A column of constant sections (no dip), 24 slices deep and 8 px wide.
    col = np.zeros((24, 16, 16), np.int64)
    col[:, 4:12, 4:12] = 1
    stack = scramble_per_slice(col, seed=3, offset_unique=True)
    width = 2 * np.sqrt(64 / np.pi)  # 9.0 px
    # 24 slices of 1 px: 2.7 widths; of 0.5 px (anisotropy 0.5): 1.3 widths.
    assert np.unique(link_slices(stack, anisotropy=1.0)).size - 1 == 2
    assert np.unique(link_slices(stack, anisotropy=0.5)).size - 1 == 1
    assert np.unique(link_slices(stack, anisotropy=1.0, max_z_elongation=0)).size - 1 == 1
    assert 24 / width > 2.5 > 12 / width


def test_it_cuts_at_a_gap_taken_by_another_object_but_bridges_an_empty_one():
    yy, xx = np.mgrid[:20, :20]
    radii = [3, 5, 6, 5, 2, 5, 6, 5, 3]
    stack = np.stack([((yy - 10) ** 2 + (xx - 10) ** 2 <= r * r) * (z + 1) for z, r in enumerate(radii)])
    # The small junction section (radius 2) links to neither neighbour; the track would bridge it.
    assert np.unique(link_slices(stack, split_dip=0)[[0, 8], 10, 10]).size == 1
    linked = link_slices(stack)
    assert linked[0, 10, 10] != linked[8, 10, 10]
    check_invariants(stack, linked)
    missed = stack.copy()
    missed[4] = 0  # the 2D model missed a section: bridged, not cut
    assert np.unique(link_slices(missed)[[0, 8], 10, 10]).size == 1


def test_cellprob_dip_weighs_the_sections():
    col = np.zeros((9, 16, 16), np.int64)
    col[:, 3:13, 3:13] = 1
    stack = scramble_per_slice(col, seed=4, offset_unique=True)
    prob = np.full(col.shape, 4.0, np.float32)
    prob[4] = -2.0  # the network doubts the middle section: a dim junction
    assert np.unique(link_slices(stack)).size - 1 == 1
    assert np.unique(link_slices(stack, cellprob=prob)).size - 1 == 2
    with pytest.raises(InvalidInputError):
        link_slices(stack, cellprob=prob[:3])


@pytest.mark.parametrize("kwargs", [{"split_dip": 1.0}, {"split_dip": -0.1}, {"max_z_elongation": 0.5},
                                    {"anisotropy": 0}, {"anisotropy": float("nan")}])
def test_it_refuses_bad_split_parameters(kwargs):
    with pytest.raises(InvalidParameterError):
        link_slices(np.zeros((2, 2, 2), int), **kwargs)


def test_the_guides_two_parameter_backend_still_links():
    from segmentation.core.backends import Hybrid2D3DBackend

    backend = Hybrid2D3DBackend(0.3, 2)
    assert (backend.linking.min_overlap_ratio, backend.linking.max_distance_z) == (0.3, 2)
    gt = spheres([((8, 16, 16), 7), ((22, 17, 16), 7)], (32, 32, 32))
    linked = backend.link(scramble_per_slice(gt, seed=5, offset_unique=True))
    assert average_precision(gt, linked, thresholds=(0.9,)).ap[0] == 1.0
