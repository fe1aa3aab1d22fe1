"""Volumes written from arrays: round trips, pyramid, contrast, tiles, NGFF readers."""

import json
import subprocess
import sys

import numpy as np
import pytest

from annotation.storage import (
    TILE_SIZE,
    DestinationExistsError,
    DimensionalityError,
    InvalidImageError,
    NotAVolumeError,
    TileOutOfRangeError,
    VolumeStore,
)
from annotation.storage.pyramid import downsample_mean


def _mean2(level):
    """The documented 2 x 2 mean, written out independently (odd edges average what is there)."""
    z, h, w = level.shape
    padded = np.full((z, h + h % 2, w + w % 2), np.nan)
    padded[:, :h, :w] = level
    blocks = padded.reshape(z, padded.shape[1] // 2, 2, padded.shape[2] // 2, 2)
    mean = np.nanmean(blocks, axis=(2, 4))
    return np.rint(mean) if level.dtype.kind in "ui" else mean


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(1, 300, 270), (4, 130, 610)])
def test_it_round_trips_2d_and_3d_images(tmp_path, nuclei_image, dtype, shape):
    image = nuclei_image(shape, dtype)
    given = image[0] if shape[0] == 1 else image
    before = given.copy()
    size = (0.25, 0.25) if shape[0] == 1 else (1.5, 0.25, 0.25)
    store = VolumeStore.create(tmp_path / "v.zarr", given, voxel_size=size, name="x")
    np.testing.assert_array_equal(given, before)  # input untouched
    meta = VolumeStore.open(tmp_path / "v.zarr").meta
    assert meta == store.meta
    assert meta.shape == shape and meta.dtype == np.dtype(dtype).name
    assert meta.voxel_size == ((1.0, 0.25, 0.25) if shape[0] == 1 else (1.5, 0.25, 0.25))
    got = store.read_volume()
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_array_equal(got, image)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_it_builds_the_pyramid_down_to_one_tile_with_the_2x2_mean(tmp_path, nuclei_image, dtype):
    image = nuclei_image((2, 1100, 301), dtype)
    store = VolumeStore.create(tmp_path / "v.zarr", image)
    assert store.meta.level_shapes == ((2, 1100, 301), (2, 550, 151), (2, 275, 76), (2, 138, 38))
    previous = image
    for level in range(1, store.meta.n_levels):
        current = store.read_volume(level)
        assert current.dtype == dtype and current.shape == store.meta.level_shapes[level]
        np.testing.assert_allclose(current, _mean2(previous), rtol=1e-6, atol=0 if dtype == np.uint16 else 1e-3)
        previous = current


def test_it_downsamples_odd_edges_by_averaging_what_is_there():
    plane = np.array([[0, 2, 5], [2, 4, 7], [9, 9, 1]], dtype=np.uint8)
    np.testing.assert_array_equal(downsample_mean(plane), [[2, 6], [9, 1]])


def test_it_keeps_a_small_image_as_one_level(tmp_path):
    store = VolumeStore.create(tmp_path / "v.zarr", np.arange(12, dtype=np.uint16).reshape(3, 4))
    assert store.meta.level_shapes == ((1, 3, 4),)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_it_stores_the_contrast_percentiles_of_level_0(tmp_path, nuclei_image, dtype):
    image = nuclei_image((3, 200, 200), dtype)
    store = VolumeStore.create(tmp_path / "v.zarr", image)
    expected = np.percentile(image, [0.5, 99.8])
    if dtype == np.uint16:  # exact histogram
        np.testing.assert_allclose(store.meta.contrast_limits, expected)
    else:  # every voxel is sampled below 2**19 voxels
        np.testing.assert_allclose(store.meta.contrast_limits, expected, rtol=1e-5)
    attrs = json.loads((tmp_path / "v.zarr" / "zarr.json").read_text())["attributes"]["ome"]
    window = attrs["omero"]["channels"][0]["window"]
    assert (window["start"], window["end"]) == store.meta.contrast_limits


def test_it_writes_voxel_size_per_level_and_chunks_for_tiles(volume):
    attrs = json.loads((volume.path / "zarr.json").read_text())["attributes"]["ome"]
    datasets = attrs["multiscales"][0]["datasets"]
    assert [a["name"] for a in attrs["multiscales"][0]["axes"]] == ["z", "y", "x"]
    assert [d["coordinateTransformations"][0]["scale"] for d in datasets] == [
        [2.0, 0.5, 0.5], [2.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    level0 = json.loads((volume.path / "0" / "zarr.json").read_text())
    assert level0["chunk_grid"]["configuration"]["chunk_shape"] == [1, 256, 256]


def test_it_is_opened_by_ome_zarr_py_with_its_multiscales_and_labels(volume):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    volume.write_labels(np.ones(volume.meta.shape, dtype=np.uint32))
    nodes = list(Reader(parse_url(str(volume.path)))())
    image = nodes[0]
    assert image.load(Multiscales) is not None
    assert [d.shape for d in image.data] == list(volume.meta.level_shapes)
    np.testing.assert_array_equal(np.asarray(image.data[1]), volume.read_volume(1))
    assert image.metadata["contrast_limits"] == [list(volume.meta.contrast_limits)]
    labels = [n for n in nodes if n.load(Label) is not None]
    assert len(labels) == 1 and [d.shape for d in labels[0].data] == list(volume.meta.level_shapes)
    assert np.asarray(labels[0].data[0]).dtype == np.uint32


def test_it_validates_against_the_ngff_0_5_models(volume):
    import zarr
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    volume.write_labels(np.ones(volume.meta.shape, dtype=np.uint32))
    Image.from_zarr(zarr.open_group(str(volume.path), mode="r"))
    ImageLabel.from_zarr(zarr.open_group(str(volume.path / "labels" / "v1"), mode="r"))


def test_it_reads_tiles_and_regions_clipped_at_the_edges(volume):
    image = volume.read_volume()
    tile = volume.read_tile(0, 1, 1, 2)
    np.testing.assert_array_equal(tile, image[1, 256:300, 512:520])
    assert volume.read_tile(0, 1, 0, 0).shape == (TILE_SIZE, TILE_SIZE)
    np.testing.assert_array_equal(volume.read_tile(0, 2, 1, 1, tile_size=100), image[2, 100:200, 100:200])
    np.testing.assert_array_equal(volume.read_region(0, 0, -5, 10, 510, 600), image[0, 0:10, 510:520])
    assert volume.read_region(0, 0, 400, 500, 0, 10).shape == (0, 10)
    np.testing.assert_array_equal(volume.read_tile(1, 0, 0, 1), volume.read_volume(1)[0, :, 256:])


@pytest.mark.parametrize("args", [(0, 0, 2, 0), (0, 0, 0, 3), (0, 3, 0, 0), (3, 0, 0, 0), (0, 0, -1, 0),
                                  (-1, 0, 0, 0), (1, 0, 0, 2), (2, 0, 1, 0)])
def test_it_refuses_tiles_out_of_range(volume, args):
    with pytest.raises(TileOutOfRangeError):
        volume.read_tile(*args)
    with pytest.raises(IndexError):  # also an IndexError, for callers that expect one
        volume.read_tile(*args)


def test_it_refuses_a_bad_array_and_an_existing_destination(tmp_path, volume, leftovers):
    with pytest.raises(DimensionalityError):
        VolumeStore.create(tmp_path / "a.zarr", np.zeros(10))
    with pytest.raises(DimensionalityError):
        VolumeStore.create(tmp_path / "a.zarr", np.zeros((2, 2, 3, 3)))
    with pytest.raises(InvalidImageError):
        VolumeStore.create(tmp_path / "a.zarr", np.zeros((3, 3), dtype=complex))
    with pytest.raises(InvalidImageError):
        VolumeStore.create(tmp_path / "a.zarr", np.zeros((0, 3)))
    with pytest.raises(DestinationExistsError):
        VolumeStore.create(volume.path, np.zeros((3, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.zarr"] and not leftovers(tmp_path)


def test_it_refuses_to_open_what_is_not_a_volume(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(NotAVolumeError):
            VolumeStore.open(path)


def test_it_imports_without_django():
    code = "import sys, annotation.storage; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
