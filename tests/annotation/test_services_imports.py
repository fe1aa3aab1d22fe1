"""Volume imports as jobs (``annotation.services.imports``): the upload is stored under the
user's file name, a worker imports it with its progress on the row, and the folder is gone
at the end; a corrupt file fails with one message naming the user's file; a zipped OME-Zarr
folder is unpacked safely."""

import zipfile

import numpy as np
import pytest

from annotation.models import AuditEvent, Volume, VolumeImportJob
from annotation.services import volume_import_job_cancel, volume_import_job_create, volume_import_job_run
from ezquant_web.api import ApplicationError


def _upload(tmp_path, name: str, data: bytes) -> str:
    """A file as the upload handler leaves it: a temporary name, not the user's."""
    path = tmp_path / f"tmp{abs(hash(name)) % 10 ** 6}.upload"
    path.write_bytes(data)
    return str(path)


def _create(project, ivy, tmp_path, file_name, data, **kwargs):
    return volume_import_job_create(project=project, user=ivy, upload_path=_upload(tmp_path, file_name, data),
                                    file_name=file_name, **kwargs)


def test_it_imports_an_upload_with_progress_and_removes_it(project, ivy, tiff_3d, tmp_path, data_dir,
                                                            django_capture_on_commit_callbacks, sample_3d):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        job = _create(project, ivy, tmp_path, "My stack (day 2).tif", tiff_3d.read_bytes(), name="day 2",
                      voxel_size=[3.0, 0.25, 0.25])
    assert job.status == "queued" and job.file_name == "My stack (day 2).tif"
    assert (data_dir / job.upload_path).name == "My stack (day 2).tif"
    assert len(queued) == 2  # the event and the task
    assert job.file_bytes == tiff_3d.stat().st_size

    # Listen as the page's socket would (annotation.events' group): each state, once committed.
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from annotation.events import import_job_group

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(import_job_group(job.id), channel)
    with django_capture_on_commit_callbacks(execute=True):
        assert volume_import_job_run(job_id=job.id) == "succeeded"
    states = []
    while True:
        try:
            states.append(async_to_sync(_receive)(layer, channel)["state"])
        except TimeoutError:
            break
    assert [s["status"] for s in states][:1] == ["running"] and states[-1]["status"] == "succeeded"
    assert [s["progress"] for s in states] == sorted(s["progress"] for s in states)
    assert states[-1]["file_name"] == "My stack (day 2).tif"
    job.refresh_from_db()
    volume = Volume.objects.get(id=job.volume_id)
    assert states[-1]["volume"] == volume.id and states[-1]["volume_name"] == "day 2"
    assert (volume.name, volume.shape, volume.voxel_size) == ("day 2", (8, 300, 300), (3.0, 0.25, 0.25))
    assert (job.progress, job.message) == (1.0, "done")
    assert job.timings["import"] >= 0
    assert not (data_dir / job.upload_path).parent.exists()
    from annotation.stores import volume_store

    np.testing.assert_array_equal(volume_store(volume).read_volume(0), sample_3d[0])
    assert AuditEvent.objects.filter(action="volume_import_job.create", object_id=job.id).exists()
    assert AuditEvent.objects.filter(action="volume.import", object_id=volume.id).exists()


async def _receive(layer, channel):
    import asyncio

    return await asyncio.wait_for(layer.receive(channel), timeout=0.2)


def test_it_fails_a_corrupt_file_naming_it(project, ivy, tiff_3d, tmp_path, data_dir):
    truncated = tiff_3d.read_bytes()[:5000]
    job = _create(project, ivy, tmp_path, "broken scan.tif", truncated)
    assert volume_import_job_run(job_id=job.id) == "failed"
    job.refresh_from_db()
    assert "'broken scan.tif'" in job.error and ".upload" not in job.error and "tmp" not in job.error
    assert "\n" not in job.error
    assert job.volume_id is None and Volume.objects.count() == 0
    assert not (data_dir / job.upload_path).parent.exists()
    assert not list(data_dir.glob("volumes/*"))  # the partial volume went with the failure


def test_it_refuses_a_name_it_cannot_import(project, ivy, tmp_path, data_dir):
    with pytest.raises(ApplicationError) as refused:
        _create(project, ivy, tmp_path, "cells.png", b"\x89PNG")
    assert "'cells.png'" in refused.value.message and refused.value.status == 400
    assert VolumeImportJob.objects.count() == 0
    assert not (data_dir / "imports").exists() or not any((data_dir / "imports").iterdir())


def _zarr_zip(tmp_path, image, *, inside="cells.ome.zarr", extra=()):
    import zarr
    from ome_zarr.writer import write_image

    folder = tmp_path / "src" / inside
    group = zarr.open_group(str(folder), mode="w")
    write_image(image, group, axes="zyx", scale_factors=(), scale={"z": 2.0, "y": 0.4, "x": 0.4},
                axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"})
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zipped.write(path, f"{inside}/{path.relative_to(folder).as_posix()}")
        for name, data in extra:
            zipped.writestr(name, data)
    return archive.read_bytes()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside ome_zarr.writer
def test_it_imports_a_zipped_ome_zarr_folder(project, ivy, tmp_path, sample_3d, data_dir):
    image = sample_3d[0][:3, :64, :80]
    job = _create(project, ivy, tmp_path, "cells.ome.zarr.zip", _zarr_zip(tmp_path, image))
    assert volume_import_job_run(job_id=job.id) == "succeeded", VolumeImportJob.objects.get(id=job.id).error
    job.refresh_from_db()
    volume = Volume.objects.get(id=job.volume_id)
    assert volume.shape == (3, 64, 80) and volume.name == "cells.ome.zarr.zip"
    np.testing.assert_allclose(volume.voxel_size, (2.0, 0.4, 0.4))
    assert not (data_dir / job.upload_path).parent.exists()


@pytest.mark.parametrize("entry, reason", [("../evil.txt", "outside its folder"), ("/etc/evil", "outside")])
def test_it_refuses_a_zip_that_leads_out_of_its_folder(project, ivy, tmp_path, data_dir, entry, reason):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(entry, b"x")
    job = _create(project, ivy, tmp_path, "bad.zip", archive.read_bytes())
    assert volume_import_job_run(job_id=job.id) == "failed"
    job.refresh_from_db()
    assert reason in job.error and "'bad.zip'" in job.error
    assert not (tmp_path / "evil.txt").exists() and not (data_dir / "evil.txt").exists()


def test_it_says_a_zip_without_an_image_or_no_zip_at_all(project, ivy, tmp_path):
    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("notes/readme.txt", b"hello")
    empty = _create(project, ivy, tmp_path, "notes.zip", archive.read_bytes())
    fake = _create(project, ivy, tmp_path, "fake.zip", b"this is not a zip")
    for job, text in ((empty, "'notes.zip' holds no OME-Zarr image"), (fake, "'fake.zip' is not a readable ZIP")):
        assert volume_import_job_run(job_id=job.id) == "failed"
        job.refresh_from_db()
        assert job.error.startswith(text), job.error


def test_it_cancels_a_queued_import_and_removes_its_file(project, ivy, tiff_3d, tmp_path, data_dir):
    job = _create(project, ivy, tmp_path, "stack.tif", tiff_3d.read_bytes())
    job = volume_import_job_cancel(job=job)
    assert job.status == "cancelled"
    assert not (data_dir / job.upload_path).parent.exists()
    assert volume_import_job_run(job_id=job.id) == "cancelled"
    with pytest.raises(ApplicationError) as refused:
        volume_import_job_cancel(job=job)
    assert refused.value.status == 409


def test_it_limits_the_imports_waiting(project, ivy, tiff_3d, tmp_path, settings):
    settings.EZQUANT_MAX_QUEUED_JOBS_PER_USER = 1
    _create(project, ivy, tmp_path, "a.tif", b"a")
    with pytest.raises(ApplicationError) as refused:
        _create(project, ivy, tmp_path, "b.tif", b"b")
    assert refused.value.status == 429


def test_it_removes_the_upload_of_an_import_whose_worker_died(project, ivy, tiff_3d, tmp_path, data_dir):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.services.imports import volume_import_uploads_remove
    from ezquant_web.jobs.runner import job_reap_stale

    job = _create(project, ivy, tmp_path, "stack.tif", tiff_3d.read_bytes())
    waiting = _create(project, ivy, tmp_path, "other.tif", tiff_3d.read_bytes())
    long_ago = timezone.now() - timedelta(hours=1)
    VolumeImportJob.objects.filter(id=job.id).update(status="running", heartbeat_at=long_ago, started_at=long_ago)
    assert job_reap_stale(older_than_s=60) == 1
    assert VolumeImportJob.objects.get(id=job.id).status == "failed"
    assert volume_import_uploads_remove() == 1
    assert not (data_dir / job.upload_path).exists()
    assert (data_dir / waiting.upload_path).is_file()  # a queued one keeps its file
    assert volume_import_uploads_remove() == 0
