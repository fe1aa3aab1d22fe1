"""XZ / YZ planes: their tiles at the physical aspect, the chunk layouts behind them, and edits."""

import shutil

import numpy as np
import pytest
import zarr

from annotation.storage import TileOutOfRangeError, VolumeStore
from annotation.storage.ortho import DEPTH, add_missing_layouts, display_rows, has_ortho, ortho_shape, row_planes
from annotation.storage.zarrio import open_array, read_json


def _section(stack, meta, plane, level, index):
    _, rows, _ = ortho_shape(meta, plane, level)
    planes = row_planes(meta, plane, level, 0, rows)
    return (stack[:, index, :] if plane == "xz" else stack[:, :, index])[planes]


@pytest.fixture
def stack(tmp_path, nuclei_image):
    """A 20-plane uint16 stack of 90 x 300 pixels, voxel size (1.5, 0.5, 0.25): XZ rows 120, YZ 60."""
    image = nuclei_image((20, 90, 300), np.uint16)
    return VolumeStore.create(tmp_path / "stack.zarr", image, voxel_size=(1.5, 0.5, 0.25)), image


def _labels(shape):
    labels = np.zeros(shape, np.uint32)
    labels[2:15, 10:40, 20:90] = 1
    labels[5:9, 50:80, 200:280] = 2
    return labels


def _z_cut(store, labels):
    """Edit v1's nucleus 2 (planes 5-8, y 50-80, x 200-280): a z-cut giving planes 7-8 id 3; the labels after."""
    region = (slice(5, 9), slice(50, 80), slice(200, 280))
    new = labels[region].copy()
    new[2:] = np.where(new[2:] == 2, 3, new[2:])
    store.write_label_edit("v1", region, new)
    expected = labels.copy()
    expected[region] = new
    return expected


def test_it_stretches_z_by_the_voxel_size(stack):
    store, _ = stack
    assert display_rows(store.meta, "xz") == 120 and display_rows(store.meta, "yz") == 60
    assert ortho_shape(store.meta, "xz", 0) == (90, 120, 300) and ortho_shape(store.meta, "yz", 1) == (150, 30, 45)
    rows = row_planes(store.meta, "xz", 0, 0, 120)
    assert rows[0] == 0 and rows[-1] == 19 and np.bincount(rows).tolist() == [6] * 20  # each plane 6 rows tall


@pytest.mark.parametrize("plane, level, index", [("xz", 0, 33), ("yz", 0, 250), ("xz", 1, 44), ("yz", 1, 7)])
def test_it_reads_image_tiles_of_both_planes_at_every_level(stack, plane, level, index):
    store, image = stack
    assert has_ortho(store.path)
    level_image = store.read_volume(level)
    whole = _section(level_image, store.meta, plane, level, index)
    tile = store.read_ortho_tile(plane, level, index, 0, 0)
    np.testing.assert_array_equal(tile, whole[:256, :256])
    if whole.shape[1] > 256:
        np.testing.assert_array_equal(store.read_ortho_tile(plane, level, index, 0, 1), whole[:256, 256:512])


def test_it_reads_the_same_pixels_from_the_planes_when_the_layouts_are_missing(stack, tmp_path):
    store, image = stack
    with_layouts = [store.read_ortho_tile(p, 0, 20, 0, 0) for p in ("xz", "yz")]
    for plane in ("xz", "yz"):
        shutil.rmtree(store.path / plane)
    bare = VolumeStore.open(store.path)
    assert not has_ortho(bare.path)
    for plane, tile in zip(("xz", "yz"), with_layouts, strict=True):
        np.testing.assert_array_equal(bare.read_ortho_tile(plane, 0, 20, 0, 0), tile)


def test_it_writes_label_layouts_and_edits_them_in_place_of_the_touched_chunks(stack):
    store, _ = stack
    labels = _labels(store.meta.shape)
    store.write_labels(labels)
    for plane, index in (("xz", 20), ("yz", 50)):
        np.testing.assert_array_equal(store.read_label_ortho_tile("v1", plane, 0, index, 0, 0),
                                      _section(labels, store.meta, plane, 0, index)[:256, :256])
    expected = _z_cut(store, labels)
    for level in (0, 1):
        step = 2 ** level
        for plane, index in (("xz", 60 // step), ("yz", 240 // step), ("xz", 20 // step)):
            got = store.read_label_ortho_tile("v2", plane, level, index, 0, 0)
            want = _section(expected[:, ::step, ::step], store.meta, plane, level, index)[:256, :256]
            np.testing.assert_array_equal(got, want)
    assert set(np.unique(store.read_label_ortho_tile("v2", "xz", 0, 60, 0, 0))) == {0, 2, 3}
    # The edit's version holds only the chunks of the layouts it changed; the others are read from v1.
    v1, v2 = store.path / "labels" / "v1" / "xz" / "0", store.path / "labels" / "v2" / "xz" / "0"
    assert (v1 / "c" / "0" / "1" / "0").exists() and not (v2 / "c" / "0" / "1" / "0").exists()  # rows 16-31
    assert (v2 / "c" / "0" / "3" / "0").exists()  # rows 48-63: nucleus 2


def _chunk_depth(array_dir):
    return read_json(array_dir / "zarr.json")["chunk_grid"]["configuration"]["chunk_shape"][0]


def test_label_layouts_are_16_planes_deep_and_an_edit_keeps_the_depth_of_an_older_version(stack):
    store, _ = stack
    labels = _labels(store.meta.shape)
    store.write_labels(labels)
    v1 = store.path / "labels" / "v1"
    # The image's layouts hold the 20 planes in one chunk, a label version's in chunks of 16.
    assert _chunk_depth(store.path / "xz" / "0") == 20 and _chunk_depth(v1 / "xz" / "0") == 16
    chunks = v1 / "xz" / "0" / "c"
    assert (chunks / "0" / "0" / "0").exists()  # planes 0-15 of rows 0-15: nucleus 1
    assert not (chunks / "1" / "0" / "0").exists()  # planes 16-19 hold no nucleus
    # A version written by an earlier release, whose layouts were as deep as the image's.
    for plane in ("xz", "yz"):
        shutil.rmtree(v1 / plane)
    add_missing_layouts(v1, lambda k: open_array(v1 / str(k)), list(store.meta.level_shapes), np.uint32, DEPTH)
    assert _chunk_depth(v1 / "xz" / "0") == 20
    old = VolumeStore.open(store.path)
    expected = _z_cut(old, labels)
    v2 = store.path / "labels" / "v2"
    assert (v2 / "xz" / "0" / "c" / "0" / "3" / "0").exists()  # one 20-deep chunk, in v1's shape
    for reader in (old, VolumeStore.open(store.path)):
        for plane, index in (("xz", 60), ("yz", 240), ("xz", 20)):
            np.testing.assert_array_equal(reader.read_label_ortho_tile("v2", plane, 0, index, 0, 0),
                                          _section(expected, store.meta, plane, 0, index)[:256, :256])
    # Every zarr client reads the delta's layout chunks as the array's own (through a complete copy).
    assert old.materialise_label_versions() == ["v2"]
    xz = zarr.open_array(str(v2 / "xz" / "0"), mode="r")
    assert xz.chunks[0] == 20
    np.testing.assert_array_equal(xz[...], expected)


def test_it_refuses_tiles_outside_the_planes(stack):
    store, _ = stack
    store.write_labels(_labels(store.meta.shape))
    for args in [("xz", 0, 90, 0, 0), ("yz", 0, 300, 0, 0), ("xz", 0, 0, 1, 0), ("xz", 0, 0, 0, 2), ("xz", 3, 0, 0, 0),
                 ("zz", 0, 0, 0, 0)]:
        with pytest.raises(TileOutOfRangeError):
            store.read_ortho_tile(*args)
        with pytest.raises(TileOutOfRangeError):
            store.read_label_ortho_tile("v1", *args)


def test_it_writes_no_layouts_for_a_2d_image(tmp_path, nuclei_image):
    store = VolumeStore.create(tmp_path / "flat.zarr", nuclei_image((1, 60, 70), np.uint16))
    store.write_labels(np.ones((60, 70), np.uint32))
    assert not has_ortho(store.path) and not has_ortho(store.path / "labels" / "v1")
    assert store.read_ortho_tile("xz", 0, 5, 0, 0).shape == (1, 70)


def test_it_builds_the_layouts_of_a_volume_and_versions_stored_without_them(stack):
    store, _ = stack
    v1 = store.write_labels(_labels(store.meta.shape)).name
    expected = {(p, g): (store.read_ortho_tile(p, 0, 20, 0, 0) if g == "image" else
                         store.read_label_ortho_tile(g, p, 0, 20, 0, 0))
                for p in ("xz", "yz") for g in ("image", v1)}
    for root in (store.path, store.path / "labels" / v1):
        shutil.rmtree(root / "xz")
        shutil.rmtree(root / "yz")
    (store.path / "xz").mkdir()  # what a stopped run might leave: ignored by readers, replaced
    old = VolumeStore.open(store.path)
    assert old.build_ortho_layouts() == ["image", v1]
    assert has_ortho(old.path) and has_ortho(old.path / "labels" / v1)
    assert not (old.path / ".ortho-partial").exists()
    for reader in (old, VolumeStore.open(store.path)):
        for (plane, group), tile in expected.items():
            got = (reader.read_ortho_tile(plane, 0, 20, 0, 0) if group == "image" else
                   reader.read_label_ortho_tile(group, plane, 0, 20, 0, 0))
            np.testing.assert_array_equal(got, tile)
    assert old.build_ortho_layouts() == []  # nothing left to do


def test_it_builds_nothing_for_a_2d_image(tmp_path, nuclei_image):
    store = VolumeStore.create(tmp_path / "flat.zarr", nuclei_image((1, 60, 70), np.uint16))
    assert store.build_ortho_layouts() == [] and not has_ortho(store.path)
