"""import_image: TIFF flavours, OME-Zarr, bad input, bounded memory."""

import math
import tracemalloc

import numpy as np
import pytest
import tifffile

from annotation.storage import (
    ChannelError,
    DimensionalityError,
    ImageTooLargeError,
    InvalidImageError,
    StorageError,
    import_image,
)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_it_imports_a_2d_and_a_3d_tiff(tmp_path, nuclei_image, dtype):
    stack = nuclei_image((5, 70, 300), dtype)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    tifffile.imwrite(tmp_path / "plane.tif", stack[2])
    store = import_image(tmp_path / "stack.tif", tmp_path / "stack.zarr")
    assert store.meta.shape == (5, 70, 300) and store.meta.dtype == np.dtype(dtype).name
    assert store.meta.voxel_size == (1.0, 1.0, 1.0) and store.meta.source_name == "stack.tif"
    np.testing.assert_array_equal(store.read_volume(), stack)
    plane = import_image(tmp_path / "plane.tif", tmp_path / "plane.zarr")
    assert plane.meta.shape == (1, 70, 300)
    np.testing.assert_array_equal(plane.read_volume()[0], stack[2])


def test_it_imports_a_multipage_tiff_without_metadata_as_a_stack(tmp_path, nuclei_image):
    stack = nuclei_image((6, 40, 50), np.uint16)
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for plane in stack:
            tif.write(plane, metadata=None)
    np.testing.assert_array_equal(import_image(tmp_path / "pages.tif", tmp_path / "v.zarr").read_volume(), stack)


def test_it_reads_the_voxel_size_of_an_ome_tiff_and_picks_its_channel(tmp_path, nuclei_image):
    data = np.stack([nuclei_image((4, 60, 80), np.uint16, seed=s) for s in range(3)])  # C, Z, Y, X
    tifffile.imwrite(tmp_path / "czyx.ome.tif", data, ome=True, metadata={
        "axes": "CZYX", "PhysicalSizeZ": 0.8, "PhysicalSizeY": 150.0, "PhysicalSizeYUnit": "nm",
        "PhysicalSizeX": 0.15})
    store = import_image(tmp_path / "czyx.ome.tif", tmp_path / "v.zarr", channel=2)
    np.testing.assert_allclose(store.meta.voxel_size, (0.8, 0.15, 0.15))
    np.testing.assert_array_equal(store.read_volume(), data[2])


def test_it_lets_the_caller_override_the_voxel_size(tmp_path):
    tifffile.imwrite(tmp_path / "a.ome.tif", np.zeros((2, 8, 8), np.uint8), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3})
    store = import_image(tmp_path / "a.ome.tif", tmp_path / "v.zarr", voxel_size=(3, 0.2, 0.2))
    assert store.meta.voxel_size == (3.0, 0.2, 0.2)


def test_it_reads_an_imagej_hyperstack_with_spacing(tmp_path, nuclei_image):
    data = np.stack([nuclei_image((5, 30, 40), np.uint16, seed=s) for s in range(2)], axis=1)  # Z, C, Y, X
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"axes": "ZCYX", "spacing": 1.5, "unit": "um"})
    store = import_image(tmp_path / "ij.tif", tmp_path / "v.zarr", channel=1)
    np.testing.assert_allclose(store.meta.voxel_size, (1.5, 0.25, 0.25))
    np.testing.assert_array_equal(store.read_volume(), data[:, 1])


@pytest.mark.parametrize("axes", ["YXS", "YXC"])
def test_it_picks_a_channel_of_interleaved_samples(tmp_path, axes):
    rgb = np.random.default_rng(1).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    if axes == "YXS":
        tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    else:
        tifffile.imwrite(tmp_path / "rgb.tif", rgb, metadata={"axes": "YXC"})
    store = import_image(tmp_path / "rgb.tif", tmp_path / "v.zarr", channel=1)
    np.testing.assert_array_equal(store.read_volume(), rgb[np.newaxis, :, :, 1])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside ome_zarr.writer
def test_it_imports_its_own_volumes_and_ome_zarr_py_images(tmp_path, volume, nuclei_image):
    import zarr
    from ome_zarr.writer import write_image

    again = import_image(volume.path, tmp_path / "again.zarr")
    np.testing.assert_array_equal(again.read_volume(), volume.read_volume())
    assert again.meta.voxel_size == volume.meta.voxel_size

    data = np.stack([nuclei_image((3, 50, 60), np.uint16, seed=s) for s in range(2)])  # C, Z, Y, X
    group = zarr.open_group(str(tmp_path / "ozp.zarr"), mode="w")
    write_image(data, group, axes="czyx", scale_factors=(2,), scale={"z": 2.0, "y": 0.3, "x": 0.3},
                axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"})
    store = import_image(tmp_path / "ozp.zarr", tmp_path / "v.zarr", channel=1)
    np.testing.assert_array_equal(store.read_volume(), data[1])
    np.testing.assert_allclose(store.meta.voxel_size, (2.0, 0.3, 0.3))
    with pytest.raises(ChannelError):
        import_image(tmp_path / "ozp.zarr", tmp_path / "w.zarr")


def test_it_imports_an_ngff_0_4_image_on_zarr_v2(tmp_path, nuclei_image):
    import zarr

    data = nuclei_image((2, 40, 30), np.uint8)
    group = zarr.open_group(str(tmp_path / "old.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=data, chunks=(1, 40, 30))
    group.attrs["multiscales"] = [{
        "version": "0.4", "axes": [{"name": "z", "type": "space", "unit": "micrometer"},
                                   {"name": "y", "type": "space", "unit": "nanometer"},
                                   {"name": "x", "type": "space", "unit": "nanometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2, 100, 100]}]}]}]
    store = import_image(tmp_path / "old.zarr", tmp_path / "v.zarr")
    np.testing.assert_array_equal(store.read_volume(), data)
    np.testing.assert_allclose(store.meta.voxel_size, (2.0, 0.1, 0.1))


def test_it_reports_progress_up_to_one(tmp_path, nuclei_image):
    tifffile.imwrite(tmp_path / "s.tif", nuclei_image((4, 20, 20), np.uint16), photometric="minisblack")
    calls = []
    import_image(tmp_path / "s.tif", tmp_path / "v.zarr", progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(calls) == 5


def _truncated(path, compression, keep):
    with tifffile.TiffWriter(path) as tif:
        for seed in range(6):
            tif.write(np.random.default_rng(seed).integers(0, 60000, (64, 64), dtype=np.uint16),
                      compression=compression, metadata={"axes": "YX"} if seed == 0 else None, contiguous=False)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _bad_inputs(tmp_path):
    """(name, source path, keyword arguments, expected error)."""
    (tmp_path / "noise.tif").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "empty_dir").mkdir()
    for keep in (0.5, 0.9):
        _truncated(tmp_path / f"cut_zlib_{keep}.tif", "zlib", keep)
    tifffile.imwrite(tmp_path / "cut_raw.tif", np.ones((6, 64, 64), np.uint16))
    raw = (tmp_path / "cut_raw.tif").read_bytes()
    (tmp_path / "cut_raw.tif").write_bytes(raw[:len(raw) // 2])
    tifffile.imwrite(tmp_path / "line.tif", np.zeros(10, np.uint8))
    tifffile.imwrite(tmp_path / "tzcyx.tif", np.zeros((2, 3, 2, 8, 8), np.uint16), imagej=True,
                     metadata={"axes": "TZCYX"})
    tifffile.imwrite(tmp_path / "tzyx.tif", np.zeros((2, 3, 8, 8), np.uint16), imagej=True, metadata={"axes": "TZYX"})
    tifffile.imwrite(tmp_path / "czyx.tif", np.zeros((3, 2, 8, 8), np.uint16), imagej=True, metadata={"axes": "ZCYX"})
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((4, 100, 100), np.uint8), photometric="minisblack")
    tifffile.imwrite(tmp_path / "complex.tif", np.zeros((8, 8), np.complex64))
    return [
        ("random bytes", "noise.tif", {}, InvalidImageError),
        ("a text file", "notes.txt", {}, InvalidImageError),
        ("missing", "missing.tif", {}, InvalidImageError),
        ("a directory that is not OME-Zarr", "empty_dir", {}, InvalidImageError),
        ("truncated page chain", "cut_zlib_0.5.tif", {}, InvalidImageError),
        ("truncated compressed data", "cut_zlib_0.9.tif", {}, InvalidImageError),
        ("truncated raw data", "cut_raw.tif", {}, InvalidImageError),
        ("1D", "line.tif", {}, DimensionalityError),
        ("5D", "tzcyx.tif", {"channel": 0}, DimensionalityError),
        ("time series", "tzyx.tif", {}, DimensionalityError),
        ("channel axis without channel=", "czyx.tif", {}, ChannelError),
        ("channel out of range", "czyx.tif", {"channel": 2}, ChannelError),
        ("negative channel", "czyx.tif", {"channel": -1}, ChannelError),
        ("channel of a single-channel image", "big.tif", {"channel": 1}, ChannelError),
        ("too many voxels", "big.tif", {"max_voxels": 39_999}, ImageTooLargeError),
        ("complex pixels", "complex.tif", {}, InvalidImageError),
        ("bad voxel size", "big.tif", {"voxel_size": (1, 0, 1)}, StorageError),
    ]


def test_it_refuses_bad_input_with_one_line_and_leaves_nothing_behind(tmp_path, leftovers):
    sources = tmp_path / "in"
    sources.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    for name, source, kwargs, error in _bad_inputs(sources):
        with pytest.raises(error) as caught:
            import_image(sources / source, out / "v.zarr", **kwargs)
        message = str(caught.value)
        assert message and "\n" not in message, name
        assert list(out.iterdir()) == [], f"{name}: {sorted(p.name for p in out.iterdir())}"
    assert not leftovers(sources)


def test_it_accepts_exactly_max_voxels(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((4, 100, 100), np.uint8), photometric="minisblack")
    assert import_image(tmp_path / "a.tif", tmp_path / "v.zarr", max_voxels=40_000).meta.shape == (4, 100, 100)


def test_it_removes_the_partial_volume_when_a_plane_fails(tmp_path, leftovers, monkeypatch):
    from annotation.storage import sources

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((4, 300, 300), np.uint8), photometric="minisblack")

    def broken(self, z):
        if z == 2:
            raise InvalidImageError("plane 2 is broken")
        return np.zeros((300, 300), np.uint8)

    monkeypatch.setattr(sources.TiffSource, "plane", broken)
    with pytest.raises(InvalidImageError, match="plane 2"):
        import_image(tmp_path / "a.tif", tmp_path / "v.zarr")
    assert not (tmp_path / "v.zarr").exists() and not leftovers(tmp_path)


def test_it_imports_a_large_stack_in_memory_bounded_by_a_few_planes(tmp_path):
    """32 x 1024 x 1024 uint16 (64 MiB): traced peak must stay near 4 planes (8 MiB), not the volume."""
    z, y, x = 32, 1024, 1024
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "big.tif", (rng.integers(0, 4000, (y, x), dtype=np.uint16) for _ in range(z)),
                     shape=(z, y, x), dtype=np.uint16)
    # Warm up: one-time imports and caches would otherwise count as the import's memory.
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((2, 300, 300), np.uint16))
    import_image(tmp_path / "small.tif", tmp_path / "small.zarr")

    tracemalloc.start()
    try:
        store = import_image(tmp_path / "big.tif", tmp_path / "big.zarr")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    plane_bytes = y * x * 2
    assert store.meta.shape == (z, y, x)
    assert peak < 4 * plane_bytes + 4 * 2 ** 20, f"peak {peak / 2 ** 20:.1f} MiB"
    assert peak < z * plane_bytes / 5
    np.testing.assert_array_equal(store.read_region(0, 31, 0, 4, 0, 4),
                                  tifffile.imread(tmp_path / "big.tif", key=31)[:4, :4])
    first = tifffile.imread(tmp_path / "big.tif", key=range(4))
    assert math.isclose(store.meta.contrast_limits[1], np.percentile(first, 99.8), rel_tol=0.01)
