"""Label versions: immutability, hard-linked chunks, edits, exports."""

import hashlib
import os
import threading

import numpy as np
import pytest
import tifffile

from annotation.storage import (
    InvalidLabelsError,
    LabelShapeError,
    LabelVersionError,
    TileOutOfRangeError,
    VolumeStore,
    import_image,
)
from annotation.storage.labels import wait_for_coarse_levels


def _labels(shape):
    """Three boxes in the first chunk rows, one in the last column of chunks, ids 1..4."""
    labels = np.zeros(shape, dtype=np.uint32)
    labels[:, 10:60, 10:60] = 1
    labels[1:, 100:140, 300:380] = 2
    labels[0, 200:290, 200:270] = 3
    labels[2, 260:300, 500:520] = 4
    return labels


def _files(root):
    """{relative path: (inode, sha256)} of every file under ``root``."""
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = (os.stat(path).st_ino, hashlib.sha256(fh.read()).hexdigest())
    return out


def test_it_writes_a_first_version_with_a_subsampled_pyramid(volume):
    labels = _labels(volume.meta.shape)
    before = labels.copy()
    meta = volume.write_labels(labels)
    np.testing.assert_array_equal(labels, before)
    assert (meta.name, meta.number, meta.parent, meta.shape, meta.n_labels) == ("v1", 1, None, volume.meta.shape, 4)
    assert meta.chunks_linked == 0 and meta.chunks_written > 0
    assert volume.label_versions() == ["v1"] and volume.label_version_meta("v1") == meta
    for level in range(volume.meta.n_levels):
        step = 2 ** level
        got = volume.read_labels("v1", level)
        assert got.dtype == np.uint32
        np.testing.assert_array_equal(got, labels[:, ::step, ::step])
    np.testing.assert_array_equal(volume.read_label_tile("v1", 0, 2, 1, 1), labels[2, 256:300, 256:512])
    with pytest.raises(TileOutOfRangeError):
        volume.read_label_tile("v1", 0, 0, 2, 0)


def test_it_accepts_yx_labels_for_a_2d_image(tmp_path):
    store = VolumeStore.create(tmp_path / "v.zarr", np.zeros((40, 50), np.uint8))
    labels = np.arange(2000, dtype=np.int64).reshape(40, 50)
    store.write_labels(labels)
    np.testing.assert_array_equal(store.read_labels("v1")[0], labels)


def test_it_refuses_labels_that_do_not_fit(volume):
    z, y, x = volume.meta.shape
    for bad, error in [(np.zeros((z, y, x + 1), np.uint32), LabelShapeError),
                       (np.zeros((y, x), np.uint32), LabelShapeError),
                       (np.zeros((z, y, x), np.float32), InvalidLabelsError),
                       (np.full((z, y, x), -1, np.int32), InvalidLabelsError),
                       (np.full((z, y, x), 2 ** 33, np.int64), InvalidLabelsError)]:
        with pytest.raises(error):
            volume.write_labels(bad)
    with pytest.raises(LabelVersionError):
        volume.write_labels(np.zeros((z, y, x), np.uint32), parent="v7")
    with pytest.raises(LabelVersionError):
        volume.read_labels("v1")
    assert volume.label_versions() == []
    assert sorted(p.name for p in (volume.path / "labels").iterdir() if p.name != ".lock") == ["zarr.json"]


def test_it_makes_an_edit_a_delta_version_holding_only_the_chunks_it_changed(volume):
    from annotation.storage.manifest import read_manifest

    labels = _labels(volume.meta.shape)
    volume.write_labels(labels)
    v1_dir = volume.path / "labels" / "v1"
    v1_before = _files(v1_dir)
    new_values = np.full((1, 40, 30), 9, np.uint32)  # inside chunk (1, 0, 1) of level 0
    meta = volume.write_label_edit("v1", (slice(1, 2), slice(100, 140), slice(300, 330)), new_values)
    wait_for_coarse_levels()  # levels 1 and up are written after the edit's answer

    assert (meta.name, meta.parent, meta.n_labels) == ("v2", "v1", 9)
    assert meta.chunks_written == volume.meta.n_levels and meta.chunks_linked == 0  # one chunk per level
    assert _files(v1_dir) == v1_before  # v1 byte-identical, same inodes
    v2_dir = volume.path / "labels" / "v2"
    chunks = {p for p in _files(v2_dir) if "/c/" in p}
    levels = {p for p in chunks if not p.startswith(("xz/", "yz/"))}
    assert levels == {"0/c/1/0/1", "1/c/1/0/0", "2/c/1/0/0"}  # x 300..330 is x 150..165 at level 1
    assert {p.split("/c/")[0] for p in chunks - levels} == {f"{p}/{k}" for p in ("xz", "yz") for k in range(3)}
    manifest = read_manifest(v2_dir)
    assert manifest.base == "v1" and manifest.ortho
    assert {f"{array}/c/{key}" for array, entries in manifest.chunks.items() for key, holder in entries.items()
            if holder == "v2"} == chunks
    assert not (v2_dir / "0" / "zarr.json").exists()  # a plain zarr client refuses it instead of reading zeros

    expected = labels.copy()
    expected[1, 100:140, 300:330] = 9
    for level in range(volume.meta.n_levels):
        step = 2 ** level
        np.testing.assert_array_equal(volume.read_labels("v2", level), expected[:, ::step, ::step])
        np.testing.assert_array_equal(volume.read_labels("v1", level), labels[:, ::step, ::step])
    assert volume.label_versions() == ["v1", "v2"]


def test_it_writes_only_the_changed_chunks_of_a_full_segmentation_with_a_parent(volume):
    labels = _labels(volume.meta.shape)
    volume.write_labels(labels)
    changed = labels.copy()
    changed[0, 10:20, 10:20] = 0  # chunk (0, 0, 0) at every level
    meta = volume.write_labels(changed, parent="v1")
    assert meta.parent == "v1" and meta.chunks_written == 3 and meta.chunks_linked > 0
    np.testing.assert_array_equal(volume.read_labels("v2"), changed)
    same = volume.write_labels(changed, parent="v2")
    assert same.chunks_written == 0 and same.chunks_linked == meta.chunks_written + meta.chunks_linked


def test_it_keeps_n_labels_the_largest_id_after_edits(volume):
    labels = _labels(volume.meta.shape)
    volume.write_labels(labels)
    gone = volume.write_label_edit("v1", (slice(2, 3), slice(260, 300), slice(500, 520)),
                                   np.zeros((1, 40, 20), np.uint32))
    assert gone.n_labels == 3  # id 4 lived only there
    kept = volume.write_label_edit("v1", (slice(0, 1), slice(10, 60), slice(10, 60)), np.zeros((1, 50, 50), np.uint32))
    assert kept.n_labels == 4


def test_it_refuses_bad_edits(volume):
    volume.write_labels(_labels(volume.meta.shape))
    for region, values, error in [
        ((slice(0, 1), slice(0, 10), slice(0, 10)), np.zeros((1, 10, 9), np.uint32), LabelShapeError),
        ((slice(0, 1), slice(0, 10), slice(515, 525)), np.zeros((1, 10, 10), np.uint32), LabelShapeError),
        ((slice(0, 1), slice(0, 10, 2), slice(0, 10)), np.zeros((1, 5, 10), np.uint32), LabelShapeError),
        ((slice(0, 1), slice(0, 10)), np.zeros((1, 10), np.uint32), LabelShapeError),
        ((slice(0, 1), slice(0, 10), slice(0, 10)), np.full((1, 10, 10), -3), InvalidLabelsError),
    ]:
        with pytest.raises(error):
            volume.write_label_edit("v1", region, values)
    with pytest.raises(LabelVersionError):
        volume.write_label_edit("v9", (slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), np.uint32))
    assert volume.label_versions() == ["v1"]


def test_it_leaves_no_partial_version_when_writing_fails(volume, monkeypatch):
    from annotation.storage import labels as labels_module

    volume.write_labels(_labels(volume.meta.shape))
    calls = []

    def failing(path, shape, dtype):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(path, shape, dtype)

    real = labels_module.create_array
    monkeypatch.setattr(labels_module, "create_array", failing)
    with pytest.raises(OSError):
        volume.write_labels(_labels(volume.meta.shape), parent="v1")
    monkeypatch.undo()
    assert volume.label_versions() == ["v1"]
    assert sorted(p.name for p in (volume.path / "labels").iterdir()) == [".lock", "v1", "zarr.json"]
    assert volume.write_labels(_labels(volume.meta.shape)).name == "v2"


def test_it_copies_chunks_where_links_are_refused(volume, monkeypatch):
    volume.write_labels(_labels(volume.meta.shape))

    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    expected = _labels(volume.meta.shape)
    expected[0, :5, :5] = 7
    meta = volume.write_labels(expected, parent="v1")
    assert meta.chunks_copied == meta.chunks_linked > 0
    np.testing.assert_array_equal(volume.read_labels("v2"), expected)


def test_it_numbers_concurrent_versions_uniquely(volume):
    labels = _labels(volume.meta.shape)
    results = []
    threads = [threading.Thread(target=lambda: results.append(volume.write_labels(labels).name)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["v1", "v2", "v3"] and volume.label_versions() == ["v1", "v2", "v3"]


def test_it_exports_a_version_as_an_ome_tiff_with_the_voxel_size(volume, tmp_path):
    labels = _labels(volume.meta.shape)
    volume.write_labels(labels)
    out = volume.export_labels_tiff("v1", tmp_path / "v1.ome.tif")
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and tif.series[0].axes == "ZYX"
        np.testing.assert_array_equal(tif.asarray(), labels)
        assert tif.series[0].dtype == np.uint32
    again = import_image(out, tmp_path / "again.zarr")
    assert again.meta.voxel_size == volume.meta.voxel_size and again.meta.dtype == "uint32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.zarr", "v1.ome.tif", "vol.zarr"]


def test_it_exports_a_version_as_a_standalone_ome_zarr_label_image(volume, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    labels = _labels(volume.meta.shape)
    volume.write_labels(labels)
    volume.write_label_edit("v1", (slice(0, 1), slice(0, 5), slice(0, 5)), np.full((1, 5, 5), 7, np.uint32))
    out = volume.export_labels_zarr("v2", tmp_path / "v2.zarr")
    node = next(iter(Reader(parse_url(str(out)))()))
    assert node.load(Label) is not None
    expected = labels.copy()
    expected[0, :5, :5] = 7
    np.testing.assert_array_equal(np.asarray(node.data[0]), expected)
    assert [d.shape for d in node.data] == list(volume.meta.level_shapes)
    assert all(os.stat(os.path.join(d, f)).st_nlink == 1 for d, _, fs in os.walk(out) for f in fs)


def test_it_writes_a_version_a_plane_at_a_time_like_a_whole_one(volume):
    labels = _labels(volume.meta.shape)
    asked = []

    def plane_of(z):
        asked.append(z)
        return labels[z]

    whole = volume.write_labels(labels)
    planes = volume.write_label_planes(plane_of, n_labels=int(labels.max()))
    assert asked == list(range(volume.meta.shape[0]))
    assert planes.n_labels == whole.n_labels == 4
    for level in range(volume.meta.n_levels):
        assert np.array_equal(volume.read_labels(planes.name, level), volume.read_labels(whole.name, level))
    root = volume.path / "labels"
    for name in ("0", "xz/0", "yz/0"):
        a, b = _files(root / whole.name / name), _files(root / planes.name / name)
        assert {k: v[1] for k, v in a.items()} == {k: v[1] for k, v in b.items()}, name
    with pytest.raises(LabelShapeError):
        volume.write_label_planes(lambda z: labels[z, :10], n_labels=4)
    assert volume.label_versions() == [whole.name, planes.name]
