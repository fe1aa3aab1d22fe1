"""Writes of segmentation jobs: submit, run (in a worker), cancel, reap the dead.

The job row is the truth. A worker claims a queued row with a conditional update that must
change exactly one row, so two workers never run one job whatever the task library does; the
engine's progress goes into the row (rate-limited) and out through ``events.py``; the label
version and the ``succeeded`` status are committed together, so a job that fails, is cancelled
or whose worker dies leaves no label version row behind.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import LabelVersion, Volume
from ezquant_web.api import ApplicationError
from segmentation import events
from segmentation.models import SegmentationJob

logger = logging.getLogger(__name__)

__all__ = ["JobCancelled", "segmentation_job_cancel", "segmentation_job_claim", "segmentation_job_create",
           "segmentation_job_reap_stale", "segmentation_job_run"]

Status = SegmentationJob.Status

# At most this many progress writes (and events) per second; the first and last always go.
_PROGRESS_INTERVAL_S = 0.2
# How often a running job re-reads its row for a cancel request (or for having been reaped).
_CANCEL_CHECK_INTERVAL_S = 0.5
# A running job's heartbeat is refreshed this often (at most; a quarter of the stale limit when
# that is shorter) by a thread beside the engine, so a long network pass with no progress
# report is not taken for a dead worker by the reaper.
HEARTBEAT_INTERVAL_S = 5.0


class JobCancelled(Exception):
    """Raised from the progress callback to stop the engine: the job was cancelled (or is no
    longer this worker's to run)."""


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def segmentation_job_create(*, volume: Volume, user: AbstractBaseUser | None, params: dict[str, Any]) -> SegmentationJob:
    """Queue a segmentation of ``volume`` with ``params`` (a ``SegmentationParams`` dict).

    Bad parameters raise :class:`ApplicationError` (400) before anything is written. The task
    is enqueued once the transaction commits, so a worker never looks for a row it cannot see.
    """
    from segmentation.core.errors import InvalidParameterError
    from segmentation.core.params import SegmentationParams
    from segmentation.tasks import segmentation_job_task

    if not isinstance(params, dict):
        raise ApplicationError("params must be a JSON object")
    try:
        checked = SegmentationParams.from_dict(params).to_dict()
    except InvalidParameterError as exc:
        raise ApplicationError(str(exc), extra={"field": "params"}) from None
    except (TypeError, ValueError) as exc:  # an unknown key, a value of the wrong type
        raise ApplicationError(f"invalid params: {exc}", extra={"field": "params"}) from None
    from annotation.services import audit_record

    with transaction.atomic():
        job = SegmentationJob.objects.create(project_id=volume.project_id, volume=volume, created_by=user,
                                             params=checked)
        audit_record(user=user, project_id=volume.project_id, action="segmentation_job.create", obj=job,
                     volume=volume.id, params=checked)
    events.job_publish(job)
    transaction.on_commit(lambda: segmentation_job_task.enqueue(job_id=job.id))
    return job


def segmentation_job_claim(*, job_id: int, worker_id: str) -> bool:
    """Take a queued job for this worker: True for exactly one caller, however many try."""
    now = timezone.now()
    claimed = SegmentationJob.objects.filter(id=job_id, status=Status.QUEUED, cancel_requested=False).update(
        status=Status.RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now, progress=0.0,
        message="starting", error="")
    return claimed == 1


class _Progress:
    """The engine's ``progress(fraction, message)``: persists to the row and publishes at most
    every ``_PROGRESS_INTERVAL_S``, and raises :class:`JobCancelled` once a cancel is asked."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.last_write = 0.0
        self.last_check = time.monotonic()
        self.fraction = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        # Progress never goes back, whatever a stage reports.
        self.fraction = max(self.fraction, min(max(float(fraction), 0.0), 1.0))
        if now - self.last_check >= _CANCEL_CHECK_INTERVAL_S:
            self.last_check = now
            row = SegmentationJob.objects.filter(id=self.job_id).values("status", "cancel_requested").first()
            if row is None or row["cancel_requested"] or row["status"] != Status.RUNNING:
                raise JobCancelled("cancelled")
        if now - self.last_write >= _PROGRESS_INTERVAL_S:
            self.write(message)

    def write(self, message: str) -> None:
        self.last_write = time.monotonic()
        updated = SegmentationJob.objects.filter(id=self.job_id, status=Status.RUNNING).update(
            progress=self.fraction, message=message[:200], heartbeat_at=timezone.now())
        if updated:
            events.job_publish(SegmentationJob.objects.select_related("label_version").get(id=self.job_id))


def _finish(job_id: int, status: str, **fields: Any) -> bool:
    """End a running job; False when it was no longer running (reaped meanwhile)."""
    updated = SegmentationJob.objects.filter(id=job_id, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields)
    job = SegmentationJob.objects.select_related("label_version").get(id=job_id)
    events.job_publish(job)
    return updated == 1


def _model_version(info: dict[str, Any]) -> str:
    model = info.get("model") or {}
    parts = [str(model.get("name") or "")]
    if model.get("version"):
        parts.append(str(model["version"]))
    if model.get("sha256"):
        parts.append(str(model["sha256"])[:12])
    return " ".join(p for p in parts if p)[:200]


def segmentation_job_run(*, job_id: int, worker_id: str | None = None) -> str:
    """Claim and run one job to its end; returns the status it ended with.

    A job another worker holds (or that was cancelled before it started) is left alone. Any
    exception ends the job ``failed`` with its text, and nothing of its result is committed;
    an interrupt (SystemExit, KeyboardInterrupt from a worker shutting down) does too and is
    raised again.
    """
    worker_id = worker_id or _worker_id()
    if not segmentation_job_claim(job_id=job_id, worker_id=worker_id):
        SegmentationJob.objects.filter(id=job_id, status=Status.QUEUED, cancel_requested=True).update(
            status=Status.CANCELLED, finished_at=timezone.now())
        return SegmentationJob.objects.filter(id=job_id).values_list("status", flat=True).first() or "missing"
    SegmentationJob.objects.filter(id=job_id).update(attempts=F("attempts") + 1)
    job = SegmentationJob.objects.select_related("volume").get(id=job_id)
    events.job_publish(job)
    progress = _Progress(job_id)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    stop_heartbeat = threading.Event()
    threading.Thread(target=_heartbeat, args=(job_id, stop_heartbeat), daemon=True,
                     name=f"heartbeat-job-{job_id}").start()
    try:
        if job.volume is None:
            raise ApplicationError("the volume was deleted")
        result, timings = _segment(job, progress)
        t = time.perf_counter()
        with transaction.atomic():
            # The label version and "succeeded" commit together; a job that is no longer
            # running (cancelled at the last moment, reaped) rolls the version back.
            version = _label_version(job, result)
            timings["save"] = round(time.perf_counter() - t, 3)
            timings["total"] = round(time.perf_counter() - t0, 3)
            if not _finish(job_id, Status.SUCCEEDED, progress=1.0, message="done", label_version=version,
                           model_version=_model_version(result.info), timings=timings):
                raise JobCancelled("the job stopped being this worker's before it finished")
        return Status.SUCCEEDED
    except JobCancelled:
        cancelled = SegmentationJob.objects.filter(id=job_id, cancel_requested=True).exists()
        _finish(job_id, Status.CANCELLED if cancelled else Status.FAILED, message="cancelled" if cancelled else "",
                error="" if cancelled else "stopped: the job was taken from this worker", timings=timings)
        return Status.CANCELLED if cancelled else Status.FAILED
    except BaseException as exc:
        if isinstance(exc, ApplicationError):  # a rule, said to the user as it is
            text = exc.message
        else:
            logger.exception("segmentation job %s failed", job_id)
            text = f"{type(exc).__name__}: {exc}".rstrip(": ")
        try:
            _finish(job_id, Status.FAILED, error=text[:2000], message="failed", timings=timings)
        except Exception:
            logger.exception("could not mark job %s failed", job_id)
        if not isinstance(exc, Exception):
            raise
        return Status.FAILED
    finally:
        stop_heartbeat.set()


def _heartbeat(job_id: int, stop: threading.Event) -> None:
    try:
        interval = min(HEARTBEAT_INTERVAL_S, settings.EZQUANT_JOB_STALE_SECONDS / 4)
        while not stop.wait(interval):
            SegmentationJob.objects.filter(id=job_id, status=Status.RUNNING).update(heartbeat_at=timezone.now())
    except Exception:  # the database went away: the reaper will judge
        logger.exception("heartbeat of job %s stopped", job_id)
    finally:
        connection.close()  # this thread's own connection


def _segment(job: SegmentationJob, progress: _Progress):
    from annotation.stores import volume_store
    from segmentation.core.engine import SegmentationEngine
    from segmentation.core.params import SegmentationParams

    # torch is imported here, in the worker, never by the web process at start-up.
    import torch

    timings: dict[str, float] = {}
    t = time.perf_counter()
    try:
        image = volume_store(job.volume).read_volume(0)
    except Exception as exc:
        raise ApplicationError(f"the volume could not be read: {exc}") from exc
    if job.volume.shape_z == 1:
        image = image[0]
    timings["read"] = round(time.perf_counter() - t, 3)
    params = SegmentationParams.from_dict(job.params)
    engine = SegmentationEngine(gpu_available=torch.cuda.is_available())
    t = time.perf_counter()
    progress(0.0, "reading volume")
    result = engine.segment(image, params, progress=progress)
    timings["segment"] = round(time.perf_counter() - t, 3)
    progress.write("saving labels")
    return result, timings


def _label_version(job: SegmentationJob, result) -> LabelVersion:
    from annotation.services import label_version_create

    uncertainty = result.uncertainty().as_dict()
    return label_version_create(volume=job.volume, labels=result.labels, user=job.created_by,
                                source=LabelVersion.Source.SEGMENTATION,
                                model_version=_model_version(result.info), uncertainty=uncertainty)


def segmentation_job_cancel(*, job: SegmentationJob, user: AbstractBaseUser | None) -> SegmentationJob:
    """Cancel a job: a queued one at once, a running one within about a second (its worker
    sees ``cancel_requested`` at its next progress report). A finished job cannot be."""
    now = timezone.now()
    if SegmentationJob.objects.filter(id=job.id, status=Status.QUEUED).update(
            status=Status.CANCELLED, cancel_requested=True, finished_at=now, message="cancelled"):
        pass
    elif not SegmentationJob.objects.filter(id=job.id, status=Status.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        raise ApplicationError(f"the job has already {job.status}" if job.status != Status.QUEUED
                               else "the job could not be cancelled", status=409)
    from annotation.services import audit_record

    job = SegmentationJob.objects.select_related("label_version").get(id=job.id)
    audit_record(user=user, project_id=job.project_id, action="segmentation_job.cancel", obj=job, status=job.status)
    events.job_publish(job)
    return job


def segmentation_job_reap_stale(*, older_than_s: float | None = None) -> int:
    """Mark failed every running job whose worker has given no sign of life for
    ``older_than_s`` seconds (``EZQUANT_JOB_STALE_SECONDS``): its worker was killed or its
    machine lost. No label version exists for such a job (it is committed with ``succeeded``).
    Returns how many were reaped."""
    limit = settings.EZQUANT_JOB_STALE_SECONDS if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=limit)
    stale = list(SegmentationJob.objects.filter(status=Status.RUNNING, heartbeat_at__lt=cutoff)
                 .values_list("id", flat=True))
    reaped = 0
    for job_id in stale:
        if SegmentationJob.objects.filter(id=job_id, status=Status.RUNNING, heartbeat_at__lt=cutoff).update(
                status=Status.FAILED, finished_at=timezone.now(),
                error=f"the worker stopped answering (no heartbeat for {limit:.0f} s)", message="failed"):
            reaped += 1
            events.job_publish(SegmentationJob.objects.select_related("label_version").get(id=job_id))
    return reaped
