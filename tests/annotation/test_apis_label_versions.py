"""/api/v1/volumes/<id>/label-versions/: list, upload a label TIFF, detail."""

import numpy as np
import pytest
import tifffile
from django.urls import reverse

from annotation.models import LabelVersion
from annotation.storage import VolumeStore


def _upload(client, volume, path, **fields):
    with open(path, "rb") as fh:
        return client.post(reverse("label-version-upload", args=[volume.id]), {"file": fh, **fields},
                           format="multipart")


@pytest.mark.django_db
def test_it_uploads_labels_as_a_new_version(volume_3d, labels_v1, client_for, ivy, sample_3d, tmp_path):
    labels = sample_3d[1].copy()
    labels[labels == 5] = 0
    path = tmp_path / "fixed.tif"
    tifffile.imwrite(path, labels)
    response = _upload(client_for(ivy), volume_3d, path, parent="v1")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["number"], body["parent"], body["source"]) == ("v2", 2, "v1", "upload")
    assert body["created_by"] == "ivy" and body["model_version"] == ""
    np.testing.assert_array_equal(VolumeStore.open(volume_3d.storage_path).read_labels("v2"), labels)
    assert not LabelVersion.objects.get(name="v2").nuclei.filter(label_id=5).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("shape", [(8, 300, 299), (7, 300, 300), (300, 300)])
def test_it_refuses_labels_of_another_shape(volume_3d, client_for, ivy, tmp_path, shape):
    path = tmp_path / "wrong.tif"
    tifffile.imwrite(path, np.ones(shape, np.uint16))
    response = _upload(client_for(ivy), volume_3d, path)
    assert response.status_code == 400
    assert "shape" in response.json()["message"] and "(8, 300, 300)" in response.json()["message"]
    assert not LabelVersion.objects.exists()


@pytest.mark.django_db
def test_it_refuses_an_unknown_parent_and_a_bad_file(volume_3d, client_for, ivy, tmp_path, sample_3d):
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, sample_3d[1])
    response = _upload(client_for(ivy), volume_3d, path, parent="v9")
    assert response.status_code == 400 and "v9" in response.json()["message"]
    assert _upload(client_for(ivy), volume_3d, path, parent="nine").status_code == 400
    text = tmp_path / "text.tif"
    text.write_text("no image")
    assert _upload(client_for(ivy), volume_3d, text).status_code == 400
    assert not LabelVersion.objects.exists()


@pytest.mark.django_db
def test_it_lists_and_shows_versions(volume_3d, labels_v1, client_for, bob):
    client = client_for(bob)
    listed = client.get(reverse("label-version-list", args=[volume_3d.id]))
    assert listed.status_code == 200 and [v["name"] for v in listed.json()] == ["v1"]
    shown = client.get(reverse("label-version-detail", args=[volume_3d.id, "v1"]))
    assert shown.status_code == 200
    assert shown.json()["model_version"] == "ezq_nuclei_v1" and shown.json()["parent"] is None
    assert client.get(reverse("label-version-detail", args=[volume_3d.id, "v2"])).status_code == 404


@pytest.mark.django_db
def test_it_refuses_outsiders(volume_3d, labels_v1, client_for, eve, tmp_path, sample_3d):
    client = client_for(eve)
    assert client.get(reverse("label-version-list", args=[volume_3d.id])).status_code == 404
    assert client.get(reverse("label-version-detail", args=[volume_3d.id, "v1"])).status_code == 404
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, sample_3d[1])
    assert _upload(client, volume_3d, path).status_code == 404
    assert LabelVersion.objects.count() == 1
