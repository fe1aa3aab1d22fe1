"""Delta label versions: exact after many edits, readable by plain zarr once exported or
materialised, never half-written, and the layout of older volumes still read."""

import json
import os

import numpy as np
import pytest
import zarr

from annotation.storage import VolumeStore
from annotation.storage.labels import wait_for_coarse_levels
from annotation.storage.manifest import VersionLayout, read_manifest
from annotation.storage.ortho import ortho_shape, row_planes


def _labels(shape, seed=0):
    """Boxes of ids 1..12 scattered over the volume."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint32)
    for i in range(1, 13):
        z, y, x = (int(rng.integers(0, s - 4)) for s in shape)
        labels[z:z + 3, y:y + 40, x:x + 40] = i
    return labels


@pytest.fixture
def stack(tmp_path, nuclei_image):
    """An 8-plane stack of 300 x 520 pixels (three levels, XZ / YZ layouts)."""
    return VolumeStore.create(tmp_path / "stack.zarr", nuclei_image((8, 300, 520), np.uint16),
                              voxel_size=(2.0, 0.5, 0.5))


def _assert_version(store, version, expected):
    for level in range(store.meta.n_levels):
        step = 2 ** level
        np.testing.assert_array_equal(store.read_labels(version, level), expected[:, ::step, ::step])
    for plane, index in (("xz", 120), ("yz", 300)):
        _, rows, _ = ortho_shape(store.meta, plane, 0)
        section = expected[:, index, :] if plane == "xz" else expected[:, :, index]
        want = section[row_planes(store.meta, plane, 0, 0, rows)]
        got = store.read_label_ortho_tile(version, plane, 0, index, 0, 0)
        np.testing.assert_array_equal(got, want[:256, :256])


def test_it_keeps_every_old_version_exact_after_many_edits(stack):
    rng = np.random.default_rng(3)
    current = _labels(stack.meta.shape)
    stack.write_labels(current)
    expected = {"v1": current.copy()}
    for _ in range(25):
        z0, y0, x0 = int(rng.integers(0, 7)), int(rng.integers(0, 280)), int(rng.integers(0, 500))
        region = (slice(z0, z0 + int(rng.integers(1, 3))), slice(y0, y0 + int(rng.integers(5, 300 - y0 + 1))),
                  slice(x0, x0 + int(rng.integers(5, 520 - x0 + 1))))
        shape = tuple(s.stop - s.start for s in region)
        kind = rng.integers(0, 3)
        values = (np.zeros(shape, np.uint32) if kind == 0 else  # background: chunks removed
                  np.full(shape, int(rng.integers(1, 20)), np.uint32) if kind == 1 else
                  current[region])  # no change at all
        meta = stack.write_label_edit(stack.label_versions()[-1], region, values)
        current = current.copy()
        current[region] = values
        expected[meta.name] = current
        assert meta.n_labels == int(current.max())
    reopened = VolumeStore.open(stack.path)
    for version, labels in expected.items():
        _assert_version(reopened, version, labels)
    manifest = read_manifest(stack.path / "labels" / "v26")
    assert manifest.base == "v1"  # one manifest over the base, never a chain to walk
    assert stack.label_versions() == [f"v{i}" for i in range(1, 27)]


def test_it_exports_and_materialises_a_delta_version_that_plain_zarr_reads(stack, tmp_path):
    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    region = (slice(2, 5), slice(0, 300), slice(100, 300))
    stack.write_label_edit("v1", region, np.zeros((3, 300, 200), np.uint32))
    expected = labels.copy()
    expected[region] = 0
    groups = json.loads((stack.path / "labels" / "zarr.json").read_text())["attributes"]
    assert groups["ome"]["labels"] == ["v1"]  # OME-Zarr readers see complete versions only
    with pytest.raises(FileNotFoundError):  # a delta version has no array of its own: refused, not read as zeros
        zarr.open_array(str(stack.path / "labels" / "v2" / "0"), mode="r")

    out = stack.export_labels_zarr("v2", tmp_path / "v2.zarr")
    for level in range(stack.meta.n_levels):
        step = 2 ** level
        np.testing.assert_array_equal(zarr.open_array(str(out / str(level)), mode="r")[...],
                                      expected[:, ::step, ::step])

    assert stack.materialise_label_versions() == ["v2"]
    assert read_manifest(stack.path / "labels" / "v2") is None
    groups = json.loads((stack.path / "labels" / "zarr.json").read_text())["attributes"]
    assert groups["ome"]["labels"] == ["v1", "v2"]
    for level in range(stack.meta.n_levels):
        step = 2 ** level
        plain = zarr.open_array(str(stack.path / "labels" / "v2" / str(level)), mode="r")[...]
        np.testing.assert_array_equal(plain, expected[:, ::step, ::step])
    _assert_version(VolumeStore.open(stack.path), "v2", expected)
    _assert_version(stack, "v2", expected)  # a store that read the manifest before keeps reading right
    assert stack.materialise_label_versions() == []


def test_it_writes_an_edits_chunks_unshuffled_and_plain_zarr_reads_them(stack):
    # The arrays' zarr.json says bit-shuffle; label chunks (a segmentation's and an edit's) are
    # LZ4 without it (faster, and smaller for labels). Blosc reads the shuffle from each chunk's
    # header: zarr reads them as the array's own.
    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    region = (slice(1, 7), slice(20, 280), slice(30, 500))
    values = np.full((6, 260, 470), 21, np.uint32)
    values[:, ::7, ::5] = 22
    stack.write_label_edit("v1", region, values)
    wait_for_coarse_levels()  # levels 1 and up are written after the edit's answer
    expected = labels.copy()
    expected[region] = values
    written = [p for p in (stack.path / "labels" / "v2").rglob("*") if p.is_file() and "/c/" in str(p)]
    arrays = {str(p.relative_to(stack.path / "labels" / "v2")).split("/c/")[0] for p in written}
    assert arrays == {f"{a}{k}" for a in ("", "xz/", "yz/") for k in range(stack.meta.n_levels)}
    # The Blosc header's flags (byte 2): bit 0 byte-shuffle, bit 2 bit-shuffle; neither is set.
    assert all(p.read_bytes()[2] & 0b101 == 0 for p in written)
    segmented = [p for p in (stack.path / "labels" / "v1").rglob("*") if p.is_file() and "/c/" in str(p)]
    assert segmented and all(p.read_bytes()[2] & 0b101 == 0 for p in segmented)  # v1's too, layouts included
    image = [p for p in (stack.path / "0" / "c").rglob("*") if p.is_file()]
    assert image and all(p.read_bytes()[2] & 0b100 for p in image)  # the intensities stay bit-shuffled
    assert stack.materialise_label_versions() == ["v2"]
    for level in range(stack.meta.n_levels):
        step = 2 ** level
        for array in (str(level), f"xz/{level}", f"yz/{level}"):
            plain = zarr.open_array(str(stack.path / "labels" / "v2" / array), mode="r")[...]
            np.testing.assert_array_equal(plain, expected[:, ::step, ::step])
    _assert_version(VolumeStore.open(stack.path), "v2", expected)


def test_it_leaves_no_partial_version_when_an_edit_fails_mid_write(stack, monkeypatch, leftovers):
    from annotation.storage import labels as labels_module

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)

    def crash(folder, manifest):
        raise OSError("disk full")

    monkeypatch.setattr(labels_module, "write_manifest", crash)  # chunks written, manifest not
    with pytest.raises(OSError):
        stack.write_label_edit("v1", (slice(0, 8), slice(0, 300), slice(0, 520)), np.ones((8, 300, 520), np.uint32))
    monkeypatch.undo()
    assert stack.label_versions() == ["v1"] and leftovers(stack.path / "labels") == []
    assert sorted(p.name for p in (stack.path / "labels").iterdir()) == [".lock", "v1", "zarr.json"]
    meta = stack.write_label_edit("v1", (slice(0, 1), slice(0, 5), slice(0, 5)), np.full((1, 5, 5), 7, np.uint32))
    expected = labels.copy()
    expected[0, :5, :5] = 7
    assert meta.name == "v2"
    _assert_version(stack, "v2", expected)


def test_it_leaves_no_partial_version_when_one_of_an_edits_arrays_fails(stack, monkeypatch, leftovers):
    # The arrays of an edit's level 0 are written side by side on threads: one failing (here
    # its XZ layout, while the others write) leaves nothing behind, as a serial write did.
    import time

    from annotation.storage import labels as labels_module

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    write = labels_module._DeltaWriter.write

    def slow_or_failing(self, key, values):
        if self._array == "xz/0":
            raise OSError("disk full")
        time.sleep(0.01)  # the other arrays are still writing when it fails
        write(self, key, values)

    monkeypatch.setattr(labels_module, "_EDIT_THREADS", 4)
    monkeypatch.setattr(labels_module._DeltaWriter, "write", slow_or_failing)
    with pytest.raises(OSError, match="disk full"):
        stack.write_label_edit("v1", (slice(0, 8), slice(0, 300), slice(0, 520)), np.ones((8, 300, 520), np.uint32))
    time.sleep(0.2)  # a writer still running would recreate the folder
    assert stack.label_versions() == ["v1"] and leftovers(stack.path / "labels") == []
    assert sorted(p.name for p in (stack.path / "labels").iterdir()) == [".lock", "v1", "zarr.json"]


def test_it_keeps_decoded_chunks_only_while_their_file_is_the_same(stack):
    from annotation.storage.zarrio import CHUNK, decode_chunk, encode_chunk, read_chunk

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    region = (slice(2, 4), slice(0, 300), slice(0, 300))
    stack.write_label_edit("v1", region, np.full((2, 300, 300), 31, np.uint32))
    files = [f for f in (stack.path / "labels" / "v2" / "0" / "c").rglob("*") if f.is_file()]
    assert files
    for f in files:  # remembered by the edit: what decoding its file gives, and read-only
        cached = read_chunk(f, CHUNK, np.uint32)
        np.testing.assert_array_equal(cached, decode_chunk(f.read_bytes(), CHUNK, np.uint32))
        assert not cached.flags.writeable
    replaced = files[0]
    other = np.arange(256 * 256, dtype=np.uint32).reshape(CHUNK)
    tmp = replaced.with_name("tmp")
    tmp.write_bytes(encode_chunk(other, CHUNK))
    os.replace(tmp, replaced)  # another file under the name: decoded anew
    np.testing.assert_array_equal(read_chunk(replaced, CHUNK, np.uint32), other)
    assert read_chunk(replaced.with_name("absent"), CHUNK, np.uint32) is None


def test_it_reads_and_edits_a_volume_stored_before_delta_versions(stack, monkeypatch):
    from annotation.storage import labels as labels_module

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    stack.write_labels(labels, parent="v1")
    group = stack.path / "labels" / "zarr.json"
    attrs = json.loads(group.read_text())
    del attrs["attributes"]["ezquant"]  # the listing an older release wrote: ome.labels only
    group.write_text(json.dumps(attrs))
    for version in ("v1", "v2"):
        (stack.path / "labels" / version / "chunk_max.npy").unlink()
    old = VolumeStore.open(stack.path)
    assert old.label_versions() == ["v1", "v2"]
    largest = labels == 12
    region = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(largest))
    meta = old.write_label_edit("v2", region, np.where(largest[region], 0, labels[region]).astype(np.uint32))
    expected = np.where(largest, 0, labels).astype(np.uint32)
    assert meta.n_labels == int(expected.max()) == 11  # the largest id left: found by one scan
    assert old.label_versions() == ["v1", "v2", "v3"]
    _assert_version(old, "v3", expected)
    eleven = expected == 11  # v3 keeps the chunk maxima that scan found: no scan again
    region = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(eleven))
    monkeypatch.setattr(labels_module, "_chunk_maxima", None)  # a scan would call it
    again = old.write_label_edit("v3", region, np.where(eleven[region], 0, expected[region]).astype(np.uint32))
    assert again.n_labels == int(np.where(eleven, 0, expected).max()) == 10


def test_it_builds_the_layouts_of_a_delta_version_over_a_base_stored_without_them(stack):
    import shutil

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    for plane in ("xz", "yz"):
        shutil.rmtree(stack.path / "labels" / "v1" / plane)
    old = VolumeStore.open(stack.path)
    region = (slice(0, 8), slice(100, 200), slice(0, 520))
    old.write_label_edit("v1", region, np.full((8, 100, 520), 5, np.uint32))
    expected = labels.copy()
    expected[region] = 5
    _assert_version(old, "v2", expected)  # XZ / YZ read from the levels
    assert old.build_ortho_layouts() == ["v1", "v2"]
    _assert_version(VolumeStore.open(stack.path), "v2", expected)
    _assert_version(VolumeStore.open(stack.path), "v1", labels)


def test_it_reads_chunk_files_directly_as_zarr_reads_them(stack):
    from annotation.storage.zarrio import DirectArray, open_array, open_reader

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    path = stack.path / "labels" / "v1" / "0"
    direct, plain = open_reader(path), open_array(path)
    assert isinstance(direct, DirectArray) and (direct.shape, direct.dtype) == (plain.shape, plain.dtype)
    for key in [(3, slice(10, 290), slice(5, 515)), (slice(None), 120, slice(None)), (slice(2, 7), slice(0, 300), 300),
                ..., 5, (-1, Ellipsis), (slice(0, 8, 3), slice(1, 299, 2), slice(None, None, 5)),
                (slice(4, 4), slice(None), slice(None))]:
        np.testing.assert_array_equal(direct[key], plain[key])
    for bad in [(8, 0, 0), (0, 0, 0, 0), (slice(None, None, -1),)]:
        with pytest.raises(IndexError):
            direct[bad]


def test_it_reads_only_the_changed_chunks_when_given_the_region_before(stack, monkeypatch):
    from annotation.storage import LabelVersionError
    from annotation.storage import labels as labels_module

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    region = (slice(0, 8), slice(0, 300), slice(0, 520))  # the whole volume; one voxel changes
    after = labels.copy()
    after[4, 150, 260] = 77
    reads = []
    real = labels_module._DeltaWriter.read
    monkeypatch.setattr(labels_module._DeltaWriter, "read", lambda self, key, box: reads.append(key) or
                        real(self, key, box))
    meta = stack.write_label_edit("v1", region, after, before=labels)
    wait_for_coarse_levels()
    # (150, 260) is sampled by levels 0 and 1 (not 2): one chunk of each, in each of the three layouts
    assert meta.n_labels == 77 and len(reads) == 6 and meta.chunks_written == 2
    _assert_version(stack, meta.name, after)
    wrong = labels.copy()
    wrong[4, 150, 261] = 5
    with pytest.raises(LabelVersionError, match="not those of v1"):
        stack.write_label_edit("v1", region, after, before=wrong)
    assert stack.label_versions() == ["v1", "v2"]


def test_it_writes_a_complete_version_over_a_delta_parent_sharing_its_chunk_files(stack):
    import os

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    region = (slice(0, 2), slice(0, 100), slice(0, 100))
    stack.write_label_edit("v1", region, np.full((2, 100, 100), 30, np.uint32))
    expected = labels.copy()
    expected[region] = 30
    again = expected.copy()
    again[7, 299, 519] = 31  # one chunk of level 0 changes; v2's and v1's files are shared
    meta = stack.write_labels(again, parent="v2")
    assert meta.chunks_linked > 0 and read_manifest(stack.path / "labels" / meta.name) is None
    root = stack.path / "labels"
    assert os.stat(root / "v2" / "0" / "c" / "0" / "0" / "0").st_ino == os.stat(root / "v3" / "0" / "c" / "0" / "0" /
                                                                                 "0").st_ino
    assert os.stat(root / "v1" / "0" / "c" / "3" / "0" / "0").st_ino == os.stat(root / "v3" / "0" / "c" / "3" / "0" /
                                                                                 "0").st_ino
    _assert_version(VolumeStore.open(stack.path), "v3", again)
    groups = json.loads((root / "zarr.json").read_text())["attributes"]
    assert groups["ome"]["labels"] == ["v1", "v3"] and groups["ezquant"]["versions"] == ["v1", "v2", "v3"]


def _coarse_files(store, version):
    folder = store.path / "labels" / version
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and "/c/" in str(p) and not str(p.relative_to(folder)).split("/c/")[0].endswith("0"))


def test_a_reader_writes_an_edits_coarse_levels_when_the_edit_did_not(stack, monkeypatch):
    # An edit answers once level 0 is written; its coarse levels follow on a thread. Here that
    # thread never runs (the process stopped first), for two edits in a row: reading a coarse
    # level writes what the version owes, from its level 0 and its parent's chunks (the
    # parent's owed ones first), and every reader, zarr through the manifest included, sees the
    # edit at every level and in every layout.
    from annotation.storage import labels as labels_module
    from annotation.storage.manifest import COARSE_PENDING

    monkeypatch.setattr(labels_module, "_finish_logged", lambda folder, values: None)
    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    first = labels.copy()
    first[2:5, 130:190, 250:330] = 31
    stack.write_label_edit("v1", (slice(2, 5), slice(130, 190), slice(250, 330)), first[2:5, 130:190, 250:330],
                           before=labels[2:5, 130:190, 250:330])
    second = first.copy()
    second[3, 140:150, 260:300] = 0  # inside the first edit's box: its coarse chunks are the first's, changed
    stack.write_label_edit("v2", (slice(3, 4), slice(140, 150), slice(260, 300)), second[3:4, 140:150, 260:300])
    for version in ("v2", "v3"):
        assert (stack.path / "labels" / version / COARSE_PENDING).exists() and _coarse_files(stack, version) == []
    _assert_version(stack, "v3", second)  # v3's levels 1 and 2, then (through v3's) v2's
    for version in ("v2", "v3"):
        assert not (stack.path / "labels" / version / COARSE_PENDING).exists() and _coarse_files(stack, version)
    _assert_version(stack, "v2", first)
    for plane, index in (("xz", 70), ("yz", 140)):  # level 1's layouts: rows 140 and columns 280 of level 0
        section = second[:, ::2, ::2][:, index, :] if plane == "xz" else second[:, ::2, ::2][:, :, index]
        _, rows, _ = ortho_shape(stack.meta, plane, 1)
        want = section[row_planes(stack.meta, plane, 1, 0, rows)]
        np.testing.assert_array_equal(stack.read_label_ortho_tile("v3", plane, 1, index, 0, 0), want[:256, :256])
    assert read_manifest(stack.path / "labels" / "v3").base == "v1"
    through_zarr = VersionLayout(stack.path / "labels", "v3").open_zarr("2")  # DeltaStore: the manifest's files
    np.testing.assert_array_equal(through_zarr[...], second[:, ::4, ::4])


def test_a_failed_write_of_an_edits_coarse_levels_is_made_good_by_its_next_reader(stack, monkeypatch):
    # The coarse-level thread fails (a full disk): the edit's version stands (level 0 is
    # written, the manifest names the owed chunks), the failure is logged, and the first reader
    # once the disk has room writes the chunks and reads the edit.
    from annotation.storage import labels as labels_module
    from annotation.storage.manifest import COARSE_PENDING

    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    real = labels_module.ChunkFiles.write
    full = {"disk": True}

    def write(self, key, values):
        if full["disk"] and self.replace:
            raise OSError("disk full")
        real(self, key, values)

    monkeypatch.setattr(labels_module.ChunkFiles, "write", write)
    after = labels.copy()
    after[1:3, 20:60, 20:60] = 0
    meta = stack.write_label_edit("v1", (slice(1, 3), slice(20, 60), slice(20, 60)), after[1:3, 20:60, 20:60])
    wait_for_coarse_levels()
    assert meta.name == "v2" and (stack.path / "labels" / "v2" / COARSE_PENDING).exists()
    np.testing.assert_array_equal(stack.read_labels("v2", 0), after)
    full["disk"] = False
    _assert_version(stack, "v2", after)
    assert not (stack.path / "labels" / "v2" / COARSE_PENDING).exists()


def test_another_process_reading_an_edit_writes_the_coarse_levels_it_owes(stack, monkeypatch):
    # The process that made the edit never wrote its coarse levels (it stopped): a second
    # process (a tile server, an export) reads level 2 and writes them, under the list's flock;
    # this process then finds nothing owed and reads the edit.
    import subprocess
    import sys

    from annotation.storage import labels as labels_module
    from annotation.storage.manifest import COARSE_PENDING

    monkeypatch.setattr(labels_module, "_finish_logged", lambda folder, values: None)
    labels = _labels(stack.meta.shape)
    stack.write_labels(labels)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(labels == 2))
    after = labels.copy()
    after[after == 2] = 40  # nucleus 2 renumbered
    stack.write_label_edit("v1", box, after[box])
    sampled = int((after[:, ::4, ::4] == 40).sum())
    assert sampled > 0  # level 2 samples it
    owed = stack.path / "labels" / "v2" / COARSE_PENDING
    assert owed.exists()
    code = ("import sys, numpy as np; from annotation.storage import VolumeStore; "
            "v = VolumeStore.open(sys.argv[1]); print(int((v.read_labels('v2', 2) == 40).sum()))")
    out = subprocess.run([sys.executable, "-c", code, str(stack.path)], capture_output=True, text=True, check=True,
                         cwd=os.getcwd())
    assert out.stdout.strip() == str(sampled) and not owed.exists()
    _assert_version(stack, "v2", after)
