"""/api/v1/projects/<id>/volumes/import-jobs/ (upload, 202) and /api/v1/import-jobs/<id>/ (state,
cancel): instructors and admins import; students get 403, eve 404."""

import pytest
from django.urls import reverse

from annotation.models import Volume, VolumeImportJob
from annotation.services import volume_import_job_run


def _upload(client, project, path, **fields):
    with open(path, "rb") as fh:
        return client.post(reverse("volume-import-job-create", args=[project.id]), {"file": fh, **fields},
                           format="multipart")


@pytest.mark.django_db
def test_it_accepts_an_upload_and_reports_the_import(project, client_for, ivy, tiff_3d):
    client = client_for(ivy)
    response = _upload(client, project, tiff_3d, name="day 1", voxel_size=[2.0, 0.5, 0.5])
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["progress"], body["file_name"], body["volume"]) == ("queued", 0.0, "stack.tif", None)
    assert body["params"] == {"name": "day 1", "channel": None, "voxel_size": [2.0, 0.5, 0.5]}
    assert body["created_by"] == "ivy" and body["kind"] == "import"

    assert volume_import_job_run(job_id=body["id"]) == "succeeded"
    done = client.get(reverse("volume-import-job-detail", args=[body["id"]])).json()
    volume = Volume.objects.get()
    assert (done["status"], done["progress"], done["volume"], done["volume_name"]) == (
        "succeeded", 1.0, volume.id, "day 1")


@pytest.mark.django_db
def test_it_reports_a_corrupt_file_by_its_name(project, client_for, ada, tmp_path):
    path = tmp_path / "scan 7.tif"
    path.write_bytes(b"II*\x00" + b"\x00" * 64)
    response = _upload(client_for(ada), project, path)
    assert response.status_code == 202
    assert volume_import_job_run(job_id=response.json()["id"]) == "failed"
    failed = client_for(ada).get(reverse("volume-import-job-detail", args=[response.json()["id"]])).json()
    assert failed["status"] == "failed" and "'scan 7.tif'" in failed["error"], failed["error"]


@pytest.mark.django_db
def test_it_refuses_what_it_cannot_import_at_once(project, client_for, ivy, tmp_path):
    path = tmp_path / "cells.png"
    path.write_bytes(b"\x89PNG\r\n")
    response = _upload(client_for(ivy), project, path)
    assert response.status_code == 400 and "'cells.png'" in response.json()["message"]
    tiff = tmp_path / "ok.tif"
    tiff.write_bytes(b"II*\x00")
    response = _upload(client_for(ivy), project, tiff, voxel_size=[0, 1, 1])
    assert response.status_code == 400 and "voxel_size" in response.json()["message"]
    assert not VolumeImportJob.objects.exists()


@pytest.mark.django_db
def test_it_cancels_an_import(project, client_for, ivy, tiff_3d):
    client = client_for(ivy)
    job = _upload(client, project, tiff_3d).json()
    cancelled = client.post(reverse("volume-import-job-cancel", args=[job["id"]]))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(reverse("volume-import-job-cancel", args=[job["id"]]))
    assert again.status_code == 409


@pytest.mark.django_db
def test_it_refuses_students_and_outsiders(project, client_for, ivy, alice, eve, tiff_3d):
    assert _upload(client_for(alice), project, tiff_3d).status_code == 403
    assert _upload(client_for(eve), project, tiff_3d).status_code == 404
    assert _upload(client_for(), project, tiff_3d).status_code in (401, 403)
    job = _upload(client_for(ivy), project, tiff_3d).json()
    for user, code in ((alice, 403), (eve, 404)):
        assert client_for(user).get(reverse("volume-import-job-detail", args=[job["id"]])).status_code == code
        assert client_for(user).post(reverse("volume-import-job-cancel", args=[job["id"]])).status_code == code
    assert VolumeImportJob.objects.get().status == "queued"
