"""Blockwise segmentation: the block grid, the intensity range, stitching, and the whole run
against whole-volume segmentation on generated volumes.

The stitching tests give every block the exact labels of a generated volume (ids shuffled per
block), so the stitched labels must be those labels again, nucleus for nucleus; the run tests
use the shipped network.
"""

import itertools

import numpy as np
import pytest
from scipy import ndimage as ndi

from segmentation.core import BlockwiseParams, SegmentationEngine, SegmentationParams, segment_blockwise, synthetic
from segmentation.core.blockwise import (
    BlockwiseResult,
    _block_summary,
    _overlapping,
    _stitch,
    block_grid,
    intensity_range,
)
from segmentation.core.errors import InvalidParameterError
from segmentation.core.measurements import nucleus_table
from segmentation.core.metrics import average_precision


@pytest.mark.parametrize("shape, block_voxels, overlap, align", [
    ((10, 100, 100), 10 * 60 * 60, (2, 5, 5), (1, 1, 1)),
    ((33, 97, 61), 20 * 40 * 40, (3, 7, 7), (1, 1, 1)),
    ((1, 300, 200), 120 * 120, (0, 10, 10), (1, 1, 1)),
    ((7, 520, 530), 7 * 300 * 300, (2, 16, 16), (1, 32, 32)),
])
def test_it_cuts_the_volume_into_cores_that_partition_it(shape, block_voxels, overlap, align):
    blocks = block_grid(shape, block_voxels=block_voxels, overlap=overlap, align=align)
    cover = np.zeros(shape, np.int32)
    for block in blocks:
        cover[block.core] += 1
        assert np.prod(block.outer_shape) <= block_voxels
        for core, outer, size, o in zip(block.core, block.outer, shape, overlap, strict=True):
            assert outer.start == max(0, core.start - o) and outer.stop == min(size, core.stop + o)
        for axis in (1, 2):
            assert block.core[axis].start % align[axis] == 0
    assert (cover == 1).all()
    assert [b.number for b in blocks] == list(range(len(blocks)))


def test_it_grows_each_block_by_its_context_on_the_same_grid():
    shape, overlap = (7, 520, 530), (2, 16, 16)
    plain = block_grid(shape, block_voxels=7 * 300 * 300, overlap=overlap)
    grown = block_grid(shape, block_voxels=7 * 300 * 300, overlap=overlap, context=(0, 213, 213))
    # The context is read around the outer region, beyond block_voxels: the grid stays the same.
    assert [(b.core, b.outer) for b in grown] == [(b.core, b.outer) for b in plain]
    for block in grown:
        assert block.context[0] == block.outer[0]
        for axis in (1, 2):
            outer, context = block.outer[axis], block.context[axis]
            assert context.start == max(0, outer.start - 213) and context.stop == min(shape[axis], outer.stop + 213)
        assert block.read_region == block.context
    assert all(b.context is None and b.read_region == b.outer for b in plain)
    with pytest.raises(InvalidParameterError, match="one value per axis"):
        block_grid(shape, block_voxels=7 * 300 * 300, overlap=overlap, context=(0, 5))
    with pytest.raises(InvalidParameterError, match="whole_plane_tiles"):
        BlockwiseParams(whole_plane_tiles="yes")
    off = BlockwiseParams(whole_plane_tiles=False)
    assert BlockwiseParams.from_dict(off.to_dict()) == off


def test_it_refuses_blocks_too_small_for_their_margins():
    with pytest.raises(InvalidParameterError, match="raise the block size"):
        block_grid((10, 100, 100), block_voxels=4096, overlap=(10, 30, 30))
    with pytest.raises(InvalidParameterError, match="block_voxels"):
        BlockwiseParams(block_voxels=100)
    with pytest.raises(InvalidParameterError, match="overlap"):
        BlockwiseParams(overlap=0.5)
    assert BlockwiseParams.from_dict(BlockwiseParams(match_iou=0.3).to_dict()) == BlockwiseParams(match_iou=0.3)


def test_it_refuses_an_overlap_or_align_without_one_value_per_axis():
    with pytest.raises(InvalidParameterError, match="one value per axis"):
        block_grid((10, 100, 100), block_voxels=10 * 60 * 60, overlap=(5, 5))
    with pytest.raises(InvalidParameterError, match="one value per axis"):
        block_grid((10, 100, 100), block_voxels=10 * 60 * 60, overlap=(2, 5, 5), align=(1, 1))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_it_measures_the_intensity_range_of_integer_images_exactly(dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    image = rng.integers(max(info.min, -2000), min(info.max, 3000), size=(9, 40, 50)).astype(dtype)
    assert intensity_range(image) == pytest.approx(tuple(np.percentile(image, [1, 99])))


def test_it_measures_the_intensity_range_of_float_images_from_a_sample():
    image = synthetic.generate_3d((8, 96, 96), seed=1).image
    exact = np.percentile(image, [1, 99])
    assert intensity_range(image) == pytest.approx(tuple(exact))
    sampled = intensity_range(image, max_samples=5000)
    assert sampled == pytest.approx(tuple(exact), rel=0.05)


def _exact_blocks(labels, image, blockwise, overlap, workdir):
    """Run the stitching on blocks whose 'segmentation' is ``labels`` itself, ids shuffled."""
    (workdir / "blocks").mkdir(parents=True)
    blocks = block_grid(labels.shape, block_voxels=blockwise.block_voxels, overlap=overlap)
    rng = np.random.default_rng(7)
    summaries = []
    for block in blocks:
        crop = labels[block.outer]
        ids = np.unique(crop)[1:]
        lookup = np.zeros(int(labels.max()) + 1, np.uint32)
        lookup[ids] = rng.permutation(ids.size).astype(np.uint32) + 1
        summaries.append(_block_summary(str(workdir), block, lookup[crop], labels.shape, overlap))
    lookups, n, measures, merged = _stitch(str(workdir), blocks, summaries, blockwise.match_iou, None,
                                           lambda done, total: None)
    return BlockwiseResult(shape=labels.shape, blocks=blocks, lookups=lookups, n_labels=n, info={},
                           workdir=str(workdir), _measures=measures), merged


def _same_up_to_ids(a, b):
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (len(set(pairs[0])) == pairs.shape[1] == len(set(pairs[1])) and
            ((pairs[0] == 0) == (pairs[1] == 0)).all())


@pytest.mark.parametrize("shape, block_voxels, overlap", [
    ((12, 96, 96), 12 * 64 * 64, (0, 16, 16)),        # 2 x 2 in y, x
    ((64, 96, 96), 60 * 76 * 76, (14, 14, 14)),        # 2 x 2 x 2: nuclei at block corners
    ((1, 128, 128), 80 * 80, (0, 16, 16)),             # a 2D image
])
def test_it_stitches_the_pieces_back_into_whole_nuclei(tmp_path, shape, block_voxels, overlap):
    if shape[0] == 1:
        sample = synthetic.generate_2d(shape[1:], seed=2, diameter=10)
        labels, image = sample.labels[np.newaxis], sample.image[np.newaxis]
    else:
        sample = synthetic.generate_3d(shape, seed=2, diameter=10, voxel_size=(1.0, 1.0, 1.0))
        labels, image = sample.labels, sample.image
    blockwise = BlockwiseParams(block_voxels=block_voxels)
    # Solidity comes from one block's view of a nucleus: exact when margins hold whole nuclei.
    assert all(s.stop - s.start <= 2 * o + 1 for box in ndi.find_objects(labels) if box
               for s, o in zip(box, overlap, strict=True) if o)
    result, merged = _exact_blocks(labels, image, blockwise, overlap, tmp_path / "work")
    try:
        assert len(result.blocks) >= 4 and merged > 0
        stitched = result.read()
        assert _same_up_to_ids(stitched, labels)
        assert result.n_labels == np.unique(labels).size - 1
        assert sorted(np.unique(stitched)[1:].tolist()) == list(range(1, result.n_labels + 1))
        # The table is nucleus_table's on the stitched labels: counts, sums, boxes and centroids exact.
        expected = {row["label_id"]: row for row in nucleus_table(stitched, image, (1.0, 1.0, 1.0))}
        rows = result.rows(image, (1.0, 1.0, 1.0))
        assert len(rows) == len(expected)
        for row in rows:
            want = expected[row["label_id"]]
            for key in ("z_min", "z_max", "y_min", "y_max", "x_min", "x_max", "volume_voxels"):
                assert row[key] == want[key], key
            for key in ("centroid_z", "centroid_y", "centroid_x", "mean_intensity", "integrated_intensity",
                        "solidity"):
                assert row[key] == pytest.approx(want[key], rel=1e-6), key
            assert 0 <= row["uncertainty"] <= 1
    finally:
        result.close()
    assert not (tmp_path / "work").exists()



@pytest.mark.parametrize("shape, block_voxels, overlap", [
    ((10, 100, 100), 10 * 60 * 60, (2, 5, 5)),
    ((1, 300, 200), 40 * 40, (0, 15, 15)),  # cores narrower than two margins: farther blocks overlap too
])
def test_it_finds_every_pair_of_blocks_that_segment_a_region_in_common(shape, block_voxels, overlap):
    blocks = block_grid(shape, block_voxels=block_voxels, overlap=overlap)
    found = [(a.number, b.number) for a, b in _overlapping(blocks)]
    every = [(a.number, b.number) for a, b in itertools.combinations(blocks, 2)
             if all(sa.start < sb.stop and sb.start < sa.stop for sa, sb in zip(a.outer, b.outer, strict=True))]
    assert sorted(found) == every
    touching = {(a.number, b.number) for a, b in itertools.combinations(blocks, 2)
                if max(abs(i - j) for i, j in zip(a.index, b.index, strict=True)) <= 1}
    assert touching <= set(found)  # the pairs whose pieces are matched are among them

def _disagreeing_blocks(depth, workdir):
    """Two blocks (split along x) that each see two overlapping nuclei and disagree about who
    owns the lens between them: block 0 gives it to A (in its core), block 1 to B (in its).
    Each nucleus is seen whole only by its own block (the other's edge cuts it), so both views
    are chosen, and where they overlap block 0 keeps the voxels: B loses the lens."""
    shape = (depth, 40, 80)
    overlap = (0, 0, 12)
    blocks = block_grid(shape, block_voxels=depth * 40 * 64, overlap=overlap)
    assert [b.outer[2] for b in blocks] == [slice(0, 52), slice(28, 80)]
    zz, yy, xx = np.ogrid[:depth, :40, :80]
    dz = 0 if depth == 1 else (zz - depth // 2) * 2.0
    a = (yy - 20) ** 2 + (xx - 33) ** 2 + dz ** 2 <= 9 ** 2  # x 24..42: block 1's edge (x = 28) cuts it
    b = (yy - 20) ** 2 + (xx - 45) ** 2 + dz ** 2 <= 9 ** 2  # x 36..54: block 0's edge (x = 51) cuts it
    views = []
    for owner in (1, 2):  # block 0 gives the lens to A (1), block 1 to B (2)
        labels = np.zeros(shape, np.uint32)
        labels[a] = 1
        labels[b & ~a if owner == 1 else b] = 2
        views.append(labels)
    (workdir / "blocks").mkdir(parents=True)
    summaries = [_block_summary(str(workdir), block, view[block.outer], shape, overlap)
                 for block, view in zip(blocks, views, strict=True)]
    lookups, n, measures, merged = _stitch(str(workdir), blocks, summaries, 0.5, None, lambda done, total: None)
    return BlockwiseResult(shape=shape, blocks=blocks, lookups=lookups, n_labels=n, info={}, workdir=str(workdir),
                           _measures=measures), merged, a, b


@pytest.mark.parametrize("depth", [1, 9])
def test_a_nucleus_another_block_s_view_trims_is_measured_on_what_is_left(tmp_path, depth):
    result, merged, a, b = _disagreeing_blocks(depth, tmp_path / "work")
    try:
        stitched = result.read()
        assert result.n_labels == 2 and merged == 2  # each nucleus' two pieces merged, A and B kept apart
        id_a, id_b = int(stitched[a].max()), int(stitched[b & ~a].max())
        assert np.array_equal(stitched == id_a, a) and np.array_equal(stitched == id_b, b & ~a)
        assert result.trimmed.tolist() == [id_b]  # B lost voxels to A's view; A lost none
        image = np.random.default_rng(0).random(stitched.shape)
        expected = {row["label_id"]: row for row in nucleus_table(stitched, image, (1.0, 1.0, 1.0))}
        rows = {row["label_id"]: row for row in result.rows(image, (1.0, 1.0, 1.0))}
        assert rows.keys() == expected.keys() == {id_a, id_b}
        for label_id, row in rows.items():  # all but the uncertainty (the block's score; nucleus_table has none)
            want = {k: v for k, v in expected[label_id].items() if k != "uncertainty"}
            assert {k: row[k] for k in want} == pytest.approx(want, rel=1e-9), label_id
        # B's row is what is left of it, not its block's whole view: the bite shows.
        assert rows[id_b]["solidity"] < result.solidity[id_b] - 0.03
        assert rows[id_a]["solidity"] == result.solidity[id_a]
    finally:
        result.close()


def _split_at_faces(reference, labels, blocks):
    """Nuclei of ``reference`` that cross a core face and whose voxels on its two sides are
    mostly two different nuclei of ``labels``."""
    split = set()
    for block in blocks:
        for axis in range(3):
            face = block.core[axis].stop
            if face >= labels.shape[axis]:
                continue
            before, after = list(block.core), list(block.core)
            before[axis], after[axis] = slice(face - 1, face), slice(face, face + 1)
            ref_a, ref_b = reference[tuple(before)], reference[tuple(after)]
            lab_a, lab_b = labels[tuple(before)], labels[tuple(after)]
            for nucleus in set(np.unique(ref_a)) & set(np.unique(ref_b)) - {0}:
                sides = []
                for ref, lab in ((ref_a, lab_a), (ref_b, lab_b)):
                    ids, counts = np.unique(lab[ref == nucleus], return_counts=True)
                    sides.append(ids[np.argmax(counts)])
                if 0 not in sides and sides[0] != sides[1]:
                    split.add(int(nucleus))
    return split


@pytest.fixture(scope="module")
def volume():
    sample = synthetic.generate_3d((16, 144, 144), seed=3, diameter=16)
    return np.clip(np.round(sample.image), 0, 65535).astype(np.uint16)


@pytest.mark.parametrize("backend", ["slice"])  # the cheapest: true3d costs minutes here (README figures)
def test_it_matches_whole_volume_segmentation(tmp_path, volume, backend):
    params = SegmentationParams(diameter=16.0, do_3d=True, use_3d_backend=backend, voxel_size=(2.0, 0.5, 0.5))
    volume = volume[:8]
    whole = SegmentationEngine().segment(volume, params)
    fractions = []
    result = segment_blockwise(volume, params, BlockwiseParams(block_voxels=8 * 120 * 120),
                               workdir=tmp_path / "work", progress=lambda f, m: fractions.append(f))
    try:
        stitched = result.read()
        assert result.info["blockwise"]["blocks"] == 4
        # Each block's network sees its pixels in the whole plane's own tiles (whole_plane_tiles):
        # its flows are the whole run's, and only nuclei its edge cuts can differ.
        ap = average_precision(whole.labels, stitched, thresholds=(0.5,)).ap[0]
        assert ap >= 0.98, ap
        assert result.info["blockwise"]["context_voxels"][1] > 0
        assert not _split_at_faces(whole.labels, stitched, result.blocks)
        assert result.info["nucleus_count"] == result.n_labels == np.unique(stitched).size - 1
        assert fractions == sorted(fractions) and fractions[-1] >= 0.97
        scores = result.uncertainty()
        assert set(scores) <= set(range(1, result.n_labels + 1)) and len(scores) >= 0.9 * result.n_labels
    finally:
        result.close()


def test_it_leaves_nothing_behind_when_cancelled(tmp_path, volume):
    params = SegmentationParams(diameter=16.0, do_3d=True, use_3d_backend="slice", voxel_size=(2.0, 0.5, 0.5))
    seen = []

    def progress(fraction, message):
        seen.append(message)
        if message.startswith("segmented 1/"):
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        segment_blockwise(volume[:4], params, BlockwiseParams(block_voxels=4 * 100 * 100), workdir=tmp_path / "work",
                          progress=progress)
    assert not (tmp_path / "work").exists()
    assert not any(m.startswith("segmented 2/") for m in seen)


def test_every_block_is_restored_alike_by_the_volume_s_reference():
    from segmentation.core.restoration import restoration_reference, restore

    image = synthetic.generate_3d((4, 96, 96), seed=4, diameter=16, photons=20.0).image
    reference = restoration_reference(image)
    assert reference["auto"] == "denoise"  # photon-starved: auto chooses denoising
    blocks = block_grid(image.shape, block_voxels=4 * 64 * 64, overlap=(0, 16, 16))
    whole = restore(image, "denoise", reference=reference)[0]
    for block in blocks:
        part, done = restore(image[block.outer], "denoise", reference=reference)
        assert done["method"] == "nl_means" and done["restoration_metrics"] == reference["restoration_metrics"]
        # Non-local means is local: with one scale and one strength, a block's restored core is
        # the whole volume's, but for the few pixels its patch search reaches past the block.
        core = part[block.core_in_outer]
        assert np.abs(core - whole[block.core]).mean() < 0.01 * float(np.ptp(whole))
    # Each block measuring itself (the default) would set the denoising strength by its own noise.
    own = [restore(image[b.outer], "denoise")[1]["details"]["nlm_h"] for b in blocks]
    assert len(set(own)) > 1


def test_a_volume_auto_leaves_alone_keeps_its_own_intensity_ranges():
    from segmentation.core.blockwise import _restoration_plan

    image = synthetic.generate_3d((4, 96, 96), seed=4, diameter=16, photons=2000.0, blur_sigma=0.5).image
    info = {}
    plan, intensity, crop = _restoration_plan(image, SegmentationParams(restoration_mode="auto"), info)
    assert (plan, intensity, info["restoration_mode"], info["restoration_method"]) == (None, None, "none", "none")
    assert crop is image  # not restored, so the volume's per-plane ranges stand


def test_it_restores_blockwise_as_the_params_ask(tmp_path):
    image = synthetic.generate_3d((4, 96, 96), seed=4, diameter=16, photons=20.0).image
    params = SegmentationParams(diameter=16.0, do_3d=True, use_3d_backend="slice", voxel_size=(2.0, 0.5, 0.5),
                                restoration_mode="auto")
    result = segment_blockwise(image, params, BlockwiseParams(block_voxels=4 * 80 * 80), workdir=tmp_path / "work")
    try:
        assert result.info["blockwise"]["blocks"] == 4
        assert (result.info["restoration_requested"], result.info["restoration_mode"],
                result.info["restoration_method"]) == ("auto", "denoise", "nl_means")
        assert result.n_labels >= 5
    finally:
        result.close()


def test_it_refuses_an_existing_folder(tmp_path, volume):
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        segment_blockwise(volume, SegmentationParams(diameter=16.0), workdir=tmp_path / "taken")
    assert (tmp_path / "taken").is_dir()
