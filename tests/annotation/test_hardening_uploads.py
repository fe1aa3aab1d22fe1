"""Hardening of what comes in (issue 14, parts 2-4): files that decode to far more than they
weigh are refused from their header, data that would break a volume for good is refused at
the door, and malformed files get a 4xx in the documented shape, never a 500.

The files are real, tiny and made here: tifffile's zlib compression turns hundreds of
megabytes of zeros into a few hundred kilobytes.
"""

import tracemalloc
from io import StringIO

import numpy as np
import pytest
import tifffile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import LabelVersion, Volume

pytestmark = pytest.mark.django_db

MiB = 2 ** 20


def _upload(client, url, path, **fields):
    with open(path, "rb") as fh:
        return client.post(url, {"file": fh, **fields}, format="multipart")


def _upload_image(client, project, path, **fields):
    return _upload(client, reverse("volume-upload", args=[project.id]), path, **fields)


def _upload_labels(client, volume, path):
    return _upload(client, reverse("label-version-upload", args=[volume.id]), path)


def _zeros_tiff(path, shape, dtype):
    """A zlib TIFF of zeros, written a plane at a time (the test never holds the whole array)."""
    plane = np.zeros(shape[-2:], dtype)
    n = int(np.prod(shape[:-2]))
    tifffile.imwrite(path, (plane for _ in range(n)), shape=shape, dtype=dtype, compression="zlib")
    return path


def _peak_while(call):
    """(result, peak bytes traced by tracemalloc while ``call()`` ran); numpy reports its buffers."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _assert_error_shape(response, status=400):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "extra"} and body["message"]
    return body


# -- part 2: small files that decode to gigabytes ---------------------------------------------


def test_it_refuses_an_image_that_decodes_past_the_byte_limit_from_its_header(
        project, client_for, ivy, tmp_path, settings):
    settings.EZQUANT_MAX_IMAGE_BYTES = 16 * MiB
    path = _zeros_tiff(tmp_path / "big.tif", (2048, 2048), np.float64)  # 32 MiB decoded, ~30 KiB on disk
    assert path.stat().st_size < MiB
    response, peak = _peak_while(lambda: _upload_image(client_for(ivy), project, path))
    body = _assert_error_shape(response)
    assert "too large for this machine" in body["message"]
    assert "2048 x 2048 float64" in body["message"] and "33,554,432 bytes" in body["message"]
    assert "16,777,216" in body["message"]
    assert peak < 16 * MiB  # refused before a plane was decoded
    assert not Volume.objects.exists()


def test_it_refuses_labels_of_another_shape_before_decoding_them(volume_3d, client_for, ivy, tmp_path):
    path = _zeros_tiff(tmp_path / "labels.tif", (8, 2048, 2048), np.uint32)  # 128 MiB decoded
    response, peak = _peak_while(lambda: _upload_labels(client_for(ivy), volume_3d, path))
    body = _assert_error_shape(response)
    assert "shape" in body["message"] and "(8, 300, 300)" in body["message"]
    assert peak < 16 * MiB
    assert not LabelVersion.objects.exists()


def test_it_refuses_a_sparse_ome_zarr_past_the_byte_limit_in_import_volume(project, tmp_path, settings):
    import zarr

    from annotation.storage.ngff import image_attributes

    settings.EZQUANT_MAX_IMAGE_BYTES = 16 * MiB
    settings.EZQUANT_BLOCK_VOXELS = 2 ** 27  # segmented whole, so read whole: the whole image must fit
    root = tmp_path / "sparse.ome.zarr"  # metadata only: 80 MB of pixels that were never written
    group = zarr.open_group(str(root), mode="w", zarr_format=3)
    group.create_array("0", shape=(5, 4000, 4000), chunks=(1, 1000, 1000), dtype="uint8", fill_value=0)
    group.attrs.update({"ome": image_attributes(name="sparse", shapes=[(5, 4000, 4000)], voxel_size=(1, 1, 1),
                                                dtype=np.dtype("uint8"), contrast_limits=(0, 1))})
    with pytest.raises(CommandError, match="too large for this machine") as refused:
        call_command("import_volume", str(root), "--project", "Nuclei 101", stdout=StringIO())
    assert "80,000,000 bytes" in str(refused.value)
    assert not Volume.objects.exists()


def test_it_imports_a_volume_segmented_block_by_block_past_the_byte_limit_a_plane_at_a_time(
        project, client_for, ivy, tmp_path, settings):
    from annotation.services import volume_import

    settings.EZQUANT_MAX_IMAGE_BYTES = MiB
    settings.EZQUANT_BLOCK_VOXELS = 2 ** 20  # the volumes below are segmented block by block
    path = _zeros_tiff(tmp_path / "stack.tif", (512, 256, 256), np.uint16)  # 64 MiB decoded, planes of 128 KiB
    volume, peak = _peak_while(lambda: volume_import(project=project, src_path=path, name="stack", user=ivy))
    assert volume.shape == (512, 256, 256)
    assert peak < 40 * MiB  # never held whole (the XZ / YZ layouts are written 64 planes at a time)
    # A label upload is read whole (the labels, and the image to measure them): refused for it.
    labels = _zeros_tiff(tmp_path / "labels.tif", (512, 256, 256), np.uint32)
    body = _assert_error_shape(_upload_labels(client_for(ivy), volume, labels))
    assert "EZQUANT_MAX_IMAGE_BYTES" in body["message"] and body["extra"]["image_bytes"] == 64 * MiB
    assert not LabelVersion.objects.exists()
    # One plane must still fit the limit: that much is decoded at a time.
    wide = _zeros_tiff(tmp_path / "wide.tif", (2, 1024, 1024), np.uint16)
    with pytest.raises(CommandError, match="one 1024 x 1024 uint16 plane decodes to 2,097,152 bytes"):
        call_command("import_volume", str(wide), "--project", "Nuclei 101", stdout=StringIO())
    assert Volume.objects.count() == 1


# -- part 3: data that would break a volume for good ------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_it_refuses_float_images_with_nan_or_inf(project, client_for, ivy, tmp_path, bad):
    image = np.ones((4, 64, 64), np.float32)
    image[2, 10, 10] = bad
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, image, photometric="minisblack")
    body = _assert_error_shape(_upload_image(client_for(ivy), project, path))
    assert "NaN or infinite" in body["message"] and "plane 2" in body["message"]
    assert not Volume.objects.exists()


def test_import_volume_refuses_nan_in_one_line(project, tmp_path):
    image = np.zeros((64, 64), np.float64)
    image[0, 0] = np.nan
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, image)
    with pytest.raises(CommandError, match="NaN or infinite"):
        call_command("import_volume", str(path), "--project", "Nuclei 101", stdout=StringIO())


@pytest.mark.parametrize("voxel_size", [[1e308, 1, 1], [1, 1e-9, 1e-9], [1e5, 0.5, 0.5]])
def test_it_refuses_absurd_voxel_sizes(project, client_for, ivy, tiff_3d, voxel_size):
    body = _assert_error_shape(_upload_image(client_for(ivy), project, tiff_3d, voxel_size=voxel_size))
    assert "outside the accepted range" in body["message"] and "0.0001..10000 micrometres" in body["message"]
    assert not Volume.objects.exists()


def test_it_refuses_an_absurd_voxel_size_stated_by_the_file(project, client_for, ivy, tmp_path, sample_3d):
    path = tmp_path / "far.tif"
    tifffile.imwrite(path, sample_3d[0], imagej=True, resolution=(1e-12, 1e-12),
                     metadata={"spacing": 1e300, "unit": "um", "axes": "ZYX"})
    body = _assert_error_shape(_upload_image(client_for(ivy), project, path))
    assert "the voxel size the file states" in body["message"]


@pytest.mark.parametrize("largest", [2 ** 32 - 1, 2 ** 24 - 1])
def test_it_refuses_labels_whose_ids_leave_no_room(volume_3d, client_for, ivy, tmp_path, sample_3d, largest):
    labels = sample_3d[1].astype(np.uint32)
    labels[labels == labels.max()] = largest
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, labels)
    body = _assert_error_shape(_upload_labels(client_for(ivy), volume_3d, path))
    assert f"{largest:,}" in body["message"] and body["extra"] == {"largest_id": largest, "limit": 2 ** 24 - 1}
    assert not LabelVersion.objects.exists()


# -- part 4: malformed files give a 4xx, not a 500 --------------------------------------------


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_it_imports_64_bit_images_whose_values_fit(project, client_for, ivy, tmp_path, sample_3d, dtype):
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, sample_3d[0].astype(dtype))
    response = _upload_image(client_for(ivy), project, path)
    assert response.status_code == 201, response.json()
    assert response.json()["dtype"] == "uint16"  # the smallest type that holds 0..65535
    from annotation.storage import VolumeStore

    stored = VolumeStore.open(Volume.objects.get().storage_path).read_volume()
    np.testing.assert_array_equal(stored, sample_3d[0])


@pytest.mark.parametrize("value", [2 ** 40, -(2 ** 40)])
def test_it_refuses_64_bit_images_whose_values_do_not_fit(project, client_for, ivy, tmp_path, value):
    image = np.zeros((4, 32, 32), np.int64)
    image[1, 3, 3] = value
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, image, photometric="minisblack")
    body = _assert_error_shape(_upload_image(client_for(ivy), project, path))
    assert "need 64 bits" in body["message"] and f"{value:,}" in body["message"]
    assert not Volume.objects.exists()


def test_import_volume_refuses_a_64_bit_image_in_one_line(project, tmp_path):
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, np.full((16, 16), 2 ** 62, np.uint64))
    with pytest.raises(CommandError, match="need 64 bits"):
        call_command("import_volume", str(path), "--project", "Nuclei 101", stdout=StringIO())


def test_it_refuses_bool_labels_and_leaves_no_orphan_version(labels_v1, client_for, ivy, tmp_path, sample_3d):
    volume = labels_v1.volume
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, sample_3d[1] > 0)
    body = _assert_error_shape(_upload_labels(client_for(ivy), volume, path))
    assert "true/false mask" in body["message"]
    from annotation.stores import volume_store

    assert volume_store(volume).label_versions() == ["v1"]
    # The next version is v2: no number was used up by the refused upload.
    good = tmp_path / "labels.tif"
    tifffile.imwrite(good, sample_3d[1].astype(np.uint16))
    assert _upload_labels(client_for(ivy), volume, good).json()["name"] == "v2"


def test_label_version_create_refuses_a_mask_before_writing(volume_3d, ivy, sample_3d):
    from annotation.services import label_version_create
    from annotation.storage import InvalidLabelsError
    from annotation.stores import volume_store

    with pytest.raises(InvalidLabelsError, match="true/false mask"):
        label_version_create(volume=volume_3d, labels=sample_3d[1] > 0, user=ivy, source=LabelVersion.Source.UPLOAD)
    assert not any(volume_store(volume_3d).path.joinpath("labels").glob("*v1*"))
