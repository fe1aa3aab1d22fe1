"""Exports of a label version: OME-TIFF, OME-Zarr in a ZIP, and the nucleus table as CSV."""

import csv
import io
import zipfile

import numpy as np
import pytest
import tifffile
import zarr
from django.urls import reverse

from annotation.models import Nucleus


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
def test_it_exports_the_labels_as_ome_tiff(labels_v1, client_for, bob, sample_3d, data_dir):
    response = client_for(bob).get(reverse("label-version-export-tiff", args=[labels_v1.volume_id, "v1"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/tiff"
    assert 'filename="stack-v1-labels.ome.tif"' in response["Content-Disposition"]
    with tifffile.TiffFile(io.BytesIO(_body(response))) as tif:
        assert tif.is_ome
        np.testing.assert_array_equal(tif.asarray(), sample_3d[1])
    assert not any((data_dir / "exports").iterdir())  # nothing left behind


@pytest.mark.django_db
def test_it_exports_the_labels_as_zipped_ome_zarr(labels_v1, client_for, bob, sample_3d, tmp_path, data_dir):
    response = client_for(bob).get(reverse("label-version-export-zarr", args=[labels_v1.volume_id, "v1"]),
                                   HTTP_ACCEPT="application/zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(_body(response))) as archive:
        names = archive.namelist()
        assert all(n.startswith("stack-v1-labels.ome.zarr/") for n in names)
        archive.extractall(tmp_path / "out")
    root = tmp_path / "out" / "stack-v1-labels.ome.zarr"
    group = zarr.open_group(str(root), mode="r")
    np.testing.assert_array_equal(group["0"][...], sample_3d[1])
    np.testing.assert_array_equal(group["1"][...], sample_3d[1][:, ::2, ::2])
    assert not any((data_dir / "exports").iterdir())


@pytest.mark.django_db
def test_it_exports_the_nucleus_table_as_csv(labels_v1, client_for, alice):
    response = client_for(alice).get(reverse("nucleus-csv", args=[labels_v1.volume_id, "v1"]),
                                     HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(response).decode())))
    nuclei = list(Nucleus.objects.of(labels_v1).order_by("label_id"))
    assert len(rows) == len(nuclei)
    assert list(rows[0]) == ["label_id", "z_min", "z_max", "y_min", "y_max", "x_min", "x_max", "centroid_z",
                             "centroid_y", "centroid_x",
                             "volume_voxels", "volume_um3", "mean_intensity", "integrated_intensity", "solidity",
                             "uncertainty"]
    for row, nucleus in zip(rows, nuclei, strict=True):
        assert int(row["label_id"]) == nucleus.label_id
        assert float(row["volume_um3"]) == nucleus.volume_um3
        assert float(row["mean_intensity"]) == nucleus.mean_intensity
        assert row["uncertainty"] == ("" if nucleus.uncertainty is None else repr(nucleus.uncertainty))


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["label-version-export-tiff", "label-version-export-zarr", "nucleus-csv"])
def test_it_refuses_outsiders_and_unknown_versions(labels_v1, client_for, eve, alice, name):
    assert client_for(eve).get(reverse(name, args=[labels_v1.volume_id, "v1"])).status_code == 404
    response = client_for(alice).get(reverse(name, args=[labels_v1.volume_id, "v7"]), HTTP_ACCEPT="text/csv")
    assert response.status_code == 404
