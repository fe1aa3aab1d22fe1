"""/api/v1/projects/<id>/volumes/ (list, upload) and /api/v1/volumes/<id>/."""

import numpy as np
import pytest
import tifffile
from django.urls import reverse

from annotation.models import Volume
from annotation.storage import VolumeStore


def _upload(client, project, path, **fields):
    with open(path, "rb") as fh:
        return client.post(reverse("volume-upload", args=[project.id]), {"file": fh, **fields}, format="multipart")


@pytest.mark.django_db
def test_it_uploads_a_3d_tiff(project, client_for, ivy, tiff_3d, sample_3d):
    response = _upload(client_for(ivy), project, tiff_3d, name="my stack")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "my stack" and body["project"] == project.id
    assert body["shape"] == [8, 300, 300] and body["dtype"] == "uint16"
    assert body["voxel_size"] == pytest.approx([2.0, 0.5, 0.5])
    assert body["level_shapes"] == [[8, 300, 300], [8, 150, 150]] and body["n_levels"] == 2
    assert body["created_by"] == "ivy"
    volume = Volume.objects.get(id=body["id"])
    np.testing.assert_array_equal(VolumeStore.open(volume.storage_path).read_volume(), sample_3d[0])


@pytest.mark.django_db
def test_it_uploads_a_2d_tiff_with_a_voxel_size(project, client_for, ada, tmp_path, sample_2d):
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, sample_2d[0])
    response = _upload(client_for(ada), project, path, voxel_size=[0.2, 0.2])
    assert response.status_code == 201, response.json()
    assert response.json()["name"] == "plane.tif"
    assert response.json()["shape"] == [1, 300, 300]
    assert response.json()["voxel_size"] == [1.0, 0.2, 0.2]


@pytest.mark.django_db
def test_it_lists_and_shows_volumes(project, volume_3d, client_for, bob):
    client = client_for(bob)
    listed = client.get(reverse("volume-list", args=[project.id]))
    assert listed.status_code == 200 and [v["id"] for v in listed.json()] == [volume_3d.id]
    shown = client.get(reverse("volume-detail", args=[volume_3d.id]))
    assert shown.status_code == 200 and shown.json()["contrast_limits"] == [volume_3d.contrast_lo,
                                                                             volume_3d.contrast_hi]


@pytest.mark.django_db
def test_it_refuses_a_file_that_is_no_image(project, client_for, ivy, tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("hello")
    response = _upload(client_for(ivy), project, path)
    assert response.status_code == 400
    assert "notes" in response.json()["message"] or "TIFF" in response.json()["message"]
    assert not Volume.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_multichannel_image_without_a_channel(project, client_for, ivy, tmp_path, sample_2d):
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, np.stack([sample_2d[0]] * 2), metadata={"axes": "CYX"})
    response = _upload(client_for(ivy), project, path)
    assert response.status_code == 400 and "channel" in response.json()["message"]
    assert _upload(client_for(ivy), project, path, channel=1).status_code == 201


@pytest.mark.django_db
def test_it_refuses_an_upload_over_the_size_limit(project, client_for, ivy, tiff_3d, settings):
    settings.EZQUANT_MAX_UPLOAD_BYTES = 10_000
    response = _upload(client_for(ivy), project, tiff_3d)
    assert response.status_code == 413
    assert "EZQUANT_MAX_UPLOAD_BYTES" in response.json()["message"]
    assert not Volume.objects.exists()


@pytest.mark.django_db
def test_it_refuses_outsiders(project, volume_3d, client_for, eve, tiff_3d):
    client = client_for(eve)
    assert client.get(reverse("volume-list", args=[project.id])).status_code == 404
    assert client.get(reverse("volume-detail", args=[volume_3d.id])).status_code == 404
    assert _upload(client, project, tiff_3d).status_code == 404
    assert Volume.objects.count() == 1


def test_it_never_keeps_an_upload_in_memory(settings):
    # 0 would make Django's ASGI handler keep the whole body in memory (a SpooledTemporaryFile
    # of max_size 0 never rolls over); files go to disk through the temporary-file handler only.
    assert 0 < settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 1 << 20
    assert settings.FILE_UPLOAD_HANDLERS == ["django.core.files.uploadhandler.TemporaryFileUploadHandler"]


@pytest.mark.django_db
def test_it_stops_an_upload_past_the_limit_while_it_streams(settings, rf):
    from annotation.apis import _LimitedUploadHandler
    from ezquant_web.api import ApplicationError

    settings.EZQUANT_MAX_UPLOAD_BYTES = 100
    handler = _LimitedUploadHandler(rf.post("/"))
    handler.new_file("file", "x.tif", "image/tiff", None)
    handler.receive_data_chunk(b"x" * 60, 0)
    with pytest.raises(ApplicationError) as info:
        handler.receive_data_chunk(b"x" * 60, 60)
    assert info.value.status == 413


@pytest.mark.django_db(transaction=True)
def test_it_uploads_through_the_asgi_application(project, ivy, tiff_3d):
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
    from rest_framework.authtoken.models import Token

    from ezquant_web.asgi import application

    key = Token.objects.create(user=ivy).key
    with open(tiff_3d, "rb") as fh:
        body = encode_multipart(BOUNDARY, {"file": fh, "name": "over asgi"})

    async def post():
        scope = {"type": "http", "http_version": "1.1", "method": "POST", "query_string": b"", "root_path": "",
                 "path": reverse("volume-upload", args=[project.id]),
                 "headers": [(b"host", b"localhost"), (b"authorization", f"Token {key}".encode()),
                             (b"content-type", MULTIPART_CONTENT.encode()),
                             (b"content-length", str(len(body)).encode())]}
        communicator = ApplicationCommunicator(application, scope)
        for start in range(0, len(body), 65536):  # the body arrives in pieces, as from daphne
            chunk = body[start:start + 65536]
            await communicator.send_input({"type": "http.request", "body": chunk,
                                           "more_body": start + 65536 < len(body)})
        return (await communicator.receive_output(60))["status"]

    assert async_to_sync(post)() == 201
    assert Volume.objects.get().name == "over asgi"
