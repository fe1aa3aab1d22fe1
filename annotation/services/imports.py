"""Volume imports as background jobs: an upload from the project page becomes a volume in a
worker, with its progress on the job row (``annotation.models.VolumeImportJob``).

The request only stores the file (``volume_import_job_create``): it moves the upload under
``EZQUANT_DATA_DIR/imports/<uuid>/``, named as the file on the user's machine, so that every
message of the import names the user's file and not a temporary one; then a worker runs
``volume_import_job_run`` through the shared job machinery (``ezquant_web.jobs.runner.run_job``:
claim, progress, heartbeat, cancel, result committed with ``succeeded``). A ``.zip`` holds an
OME-Zarr image (the folder zipped); it is unpacked first (refused: entries that lead out of
the folder, links, more than ``EZQUANT_MAX_UPLOAD_BYTES`` + ``EZQUANT_MAX_IMAGE_BYTES``
unpacked). The upload's folder is removed when the job ends, whatever the end; a volume
directory whose row was not committed is removed too.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import uuid
import zipfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import Project, Volume, VolumeImportJob
from annotation.services.audit import audit_record
from annotation.services.volumes import VOLUMES_DIR, volume_row_create
from ezquant_web.errors import ApplicationError
from ezquant_web.jobs.events import job_publish
from ezquant_web.jobs.runner import job_cancel, run_job

logger = logging.getLogger(__name__)

__all__ = ["IMPORT_SUFFIXES", "volume_import_job_cancel", "volume_import_job_create", "volume_import_job_run",
           "volume_import_uploads_remove"]

IMPORTS_DIR = "imports"
#: What an upload may be: a TIFF (OME-TIFF and ImageJ TIFF included) or a zipped OME-Zarr folder.
IMPORT_SUFFIXES = (".tif", ".tiff", ".zip")
# Fractions of the bar: unpacking a zip, then the planes, then the rows.
_UNPACKED = 0.1


def _data_dir() -> Path:
    return Path(settings.EZQUANT_DATA_DIR)


def _file_name(name: str) -> str:
    """The user's file name as sent, without any folder (browsers send the bare name; a client
    may not), control characters or leading dots; at most 200 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable()).strip().lstrip(".")
    return base[-200:]


def volume_import_job_create(*, project: Project, user: AbstractBaseUser | None, upload_path: str | os.PathLike,
                             file_name: str, name: str = "", channel: int | None = None,
                             voxel_size: list[float] | None = None) -> VolumeImportJob:
    """Queue the import of the uploaded file at ``upload_path`` (moved, not copied) as a new
    volume of ``project``; ``file_name`` is its name on the user's machine.

    400 for a name that is not ``.tif``, ``.tiff`` or ``.zip``; 429 when the project or the
    user already has as many jobs waiting as allowed (``EZQUANT_MAX_QUEUED_JOBS_PER_*``).
    The task is enqueued once the row commits.
    """
    from annotation.tasks import volume_import_job_task

    shown = _file_name(file_name)
    if not shown or not shown.lower().endswith(IMPORT_SUFFIXES):
        raise ApplicationError(f"{file_name!r} cannot be imported: upload a TIFF or OME-TIFF file (.tif, .tiff) or "
                               "an OME-Zarr folder zipped (.zip)", extra={"field": "file"})
    if voxel_size is not None:  # checked now, not minutes later in the worker (400, StorageError)
        from annotation.storage.meta import check_voxel_range, voxel_size3

        check_voxel_range(voxel_size3(voxel_size, ndim=len(voxel_size) if len(voxel_size) in (2, 3) else 3))
    _check_queue_limits(project=project, user=user)
    relative = f"{IMPORTS_DIR}/{uuid.uuid4().hex}"
    folder = _data_dir() / relative
    folder.mkdir(parents=True)
    try:
        staged = folder / shown
        shutil.move(os.fspath(upload_path), staged)
        with transaction.atomic():
            job = VolumeImportJob.objects.create(
                project=project, created_by=user, file_name=shown, file_bytes=staged.stat().st_size,
                upload_path=f"{relative}/{shown}",
                params={"name": (name or "").strip()[:200], "channel": channel,
                        "voxel_size": list(voxel_size) if voxel_size is not None else None})
            audit_record(user=user, project_id=project.id, action="volume_import_job.create", obj=job,
                         file_name=shown, file_bytes=job.file_bytes)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job_publish(job)
    transaction.on_commit(lambda: volume_import_job_task.enqueue(job_id=job.id))
    return job


def _check_queue_limits(*, project: Project, user: AbstractBaseUser | None) -> None:
    waiting = VolumeImportJob.objects.filter(status=VolumeImportJob.Status.QUEUED)
    per_project = settings.EZQUANT_MAX_QUEUED_JOBS_PER_PROJECT
    if waiting.filter(project=project).count() >= per_project:
        raise ApplicationError(f"this project already has {per_project} imports waiting, the most allowed: wait for "
                               "some to finish", status=429, extra={"limit": per_project})
    per_user = settings.EZQUANT_MAX_QUEUED_JOBS_PER_USER
    if user is not None and waiting.filter(created_by=user).count() >= per_user:
        raise ApplicationError(f"you already have {per_user} imports waiting, the most allowed: wait for some to "
                               "finish", status=429, extra={"limit": per_user})


def volume_import_job_cancel(*, job: VolumeImportJob) -> VolumeImportJob:
    """Cancel an import: a queued one at once, a running one at its next plane; 409 once over.
    A cancelled job that never ran has its upload removed here."""
    job = job_cancel(VolumeImportJob, job=job)
    if job.status == VolumeImportJob.Status.CANCELLED:
        _remove_upload(job)
    return job


def _remove_upload(job: VolumeImportJob) -> None:
    shutil.rmtree(_data_dir() / Path(job.upload_path).parent, ignore_errors=True)


def volume_import_uploads_remove() -> int:
    """Remove the uploads of import jobs that have ended but whose worker could not remove them
    (it died: the reaper marked the job failed). Run beside the reaper; returns how many."""
    removed = 0
    for job in VolumeImportJob.objects.filter(status__in=VolumeImportJob.FINISHED).only("id", "upload_path"):
        folder = _data_dir() / Path(job.upload_path).parent
        if job.upload_path and folder.is_dir() and folder.parent == _data_dir() / IMPORTS_DIR:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def volume_import_job_run(*, job_id: int, worker_id: str | None = None) -> str:
    """Run one import to its end (``ezquant_web.jobs.runner.run_job``); the status it ended with.

    The upload is removed when the job has ended (not when another worker holds it), and a
    volume directory written for a job that did not succeed is removed with it.
    """
    written: list[Path] = []
    status = run_job(VolumeImportJob, job_id=job_id, worker_id=worker_id,
                     work=lambda job, progress, timings: _import_work(job, progress, timings, written))
    job = VolumeImportJob.objects.filter(id=job_id).first()
    if job is not None and job.is_finished:
        _remove_upload(job)
        for dest in written:
            if status != VolumeImportJob.Status.SUCCEEDED and not Volume.objects.filter(
                    path=dest.relative_to(_data_dir()).as_posix()).exists():
                shutil.rmtree(dest, ignore_errors=True)  # no row names it
    return status


def _import_work(job: VolumeImportJob, progress, timings: dict, written: list[Path]):
    import time

    from annotation.storage import StorageError, import_image

    src = _data_dir() / job.upload_path
    if not src.is_file():
        raise ApplicationError(f"the upload of {job.file_name!r} is gone from the server (a job run twice?): "
                               "upload it again")
    t = time.perf_counter()
    start = 0.0
    if src.suffix.lower() == ".zip":
        src = _unpack(src, job.file_name, progress)
        start = _UNPACKED
    timings["unpack"] = round(time.perf_counter() - t, 3)
    relative = f"{VOLUMES_DIR}/{uuid.uuid4().hex}"
    dest = _data_dir() / relative
    written.append(dest)
    params = job.params or {}
    t = time.perf_counter()
    try:
        store = import_image(src, dest, channel=params.get("channel"), voxel_size=params.get("voxel_size"),
                             max_voxels=settings.EZQUANT_MAX_VOXELS, max_bytes=settings.EZQUANT_MAX_IMAGE_BYTES,
                             streamed_above=settings.EZQUANT_BLOCK_VOXELS,
                             progress=lambda f, message: progress(start + (0.98 - start) * f, message))
    except StorageError as exc:  # the file's fault: said to the user as it is, naming their file
        raise ApplicationError(str(exc).replace(repr(src.name), repr(job.file_name))) from None
    timings["import"] = round(time.perf_counter() - t, 3)
    name = params.get("name") or job.file_name

    def commit() -> dict:
        volume = volume_row_create(project=job.project, path=relative, meta=store.meta, name=name,
                                   user=job.created_by)
        return {"volume": volume}

    return commit


def _unpack(archive: Path, file_name: str, progress) -> Path:
    """Unpack a zipped OME-Zarr folder beside ``archive``; the image's folder, named as the
    archive without ``.zip`` (so messages name the user's file)."""
    folder = archive.parent / "unpacked"
    limit = settings.EZQUANT_MAX_UPLOAD_BYTES + settings.EZQUANT_MAX_IMAGE_BYTES
    try:
        with zipfile.ZipFile(archive) as zipped:
            entries = zipped.infolist()
            total = 0
            for entry in entries:
                parts = Path(entry.filename.replace("\\", "/")).parts
                if entry.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise ApplicationError(f"{file_name!r} holds an entry outside its folder ({entry.filename!r}); "
                                           "zip the OME-Zarr folder itself")
                if stat.S_ISLNK(entry.external_attr >> 16):
                    raise ApplicationError(f"{file_name!r} holds a link ({entry.filename!r}); links are not unpacked")
                total += entry.file_size
            if total > limit:
                raise ApplicationError(f"{file_name!r} unpacks to {total:,} bytes, more than the limit of {limit:,}",
                                       extra={"limit_bytes": limit})
            done = 0
            for i, entry in enumerate(entries):
                zipped.extract(entry, folder)
                done += entry.file_size
                if i % 50 == 0 or i == len(entries) - 1:
                    progress(_UNPACKED * done / max(total, 1), f"unpacking {i + 1} of {len(entries)} files")
    except ApplicationError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ApplicationError(f"{file_name!r} is not a readable ZIP archive: {reason}") from None
    root = _zarr_root(folder)
    if root is None:
        raise ApplicationError(f"{file_name!r} holds no OME-Zarr image (no zarr.json, .zgroup or .zattrs in it, or "
                               "in one folder inside it): zip the image's .zarr folder")
    image = archive.parent / (file_name[:-4] if file_name.lower().endswith(".zip") else file_name)
    if image.exists():
        image = archive.parent / f"{image.name}.image"
    os.rename(root, image)
    return image


def _zarr_root(folder: Path) -> Path | None:
    """The shallowest folder at or below ``folder`` (two levels at most) that is a zarr group."""
    marks = ("zarr.json", ".zgroup", ".zattrs")
    for depth in range(3):
        for candidate in sorted(folder.glob("/".join(["*"] * depth)) if depth else [folder]):
            if candidate.is_dir() and any((candidate / m).is_file() for m in marks):
                return candidate
    return None
