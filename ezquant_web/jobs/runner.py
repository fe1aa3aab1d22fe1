"""How any job runs: claim, progress, heartbeat, cancel, finish, reap (the job row is the truth).

A worker claims a queued row with a conditional update that must change exactly one row, so two
workers never run one job whatever the task library does. The work reports progress through a
callback that writes the row (rate-limited), publishes through ``events.py`` and raises
:class:`JobCancelled` once a cancel is asked; a thread beside it refreshes the heartbeat. The
result and the ``succeeded`` status are committed in one transaction, so a job that fails, is
cancelled or whose worker dies leaves no result behind. :func:`run_job` does all of it for one
model class (a registered kind, :mod:`ezquant_web.jobs.kinds`: ``SegmentationJob``,
``TrainingJob``, ``VolumeImportJob``); the apps' services say what the work is.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any, Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from ezquant_web.errors import ApplicationError
from ezquant_web.jobs import events
from ezquant_web.jobs.kinds import job_kind, job_models
from ezquant_web.jobs.models import Job

logger = logging.getLogger(__name__)

__all__ = ["FAIR_WINDOW_S", "HEARTBEAT_INTERVAL_S", "JobCancelled", "Progress", "job_cancel", "job_claim",
           "job_claim_next", "job_fair_order", "job_queue_stuck", "job_reap_stale", "process_worker_id", "run_job"]

Status = Job.Status

# At most this many progress writes (and events) per second; the first and last always go.
_PROGRESS_INTERVAL_S = 0.2
# How often a running job re-reads its row for a cancel request (or for having been reaped).
_CANCEL_CHECK_INTERVAL_S = 0.5
# A running job's heartbeat is refreshed this often (at most; a quarter of the stale limit when
# that is shorter) by a thread beside the work, so a long network pass with no progress
# report is not taken for a dead worker by the reaper.
HEARTBEAT_INTERVAL_S = 5.0


class JobCancelled(Exception):
    """Raised from the progress callback to stop the work: the job was cancelled (or is no
    longer this worker's to run)."""


def process_worker_id(prefix: str = "") -> str:
    """This process's name as a worker: ``host:pid`` after ``prefix`` (``"embedded:"``), at most
    64 characters (django-tasks-db's worker id column)."""
    return f"{prefix}{socket.gethostname()}:{os.getpid()}"[:64]


def _fresh(model: type[Job], job_id: int) -> Job:
    return model.objects.select_related(*job_kind(model).related).get(id=job_id)


# A project's share of the workers: its jobs running now, or started within this many seconds,
# count against it when the next job is chosen (job_fair_order).
FAIR_WINDOW_S = 600.0


def job_fair_order(model: type[Job]) -> list[int]:
    """The queued jobs' ids in the order workers should take them: fair across projects.

    Each next job is the oldest queued job of the project with the fewest jobs running or
    started in the last ``FAIR_WINDOW_S`` seconds (counting those already placed before it),
    the project whose oldest queued job is older on a tie. One project that queues 90 jobs
    thus takes its turn with the others instead of holding the workers until all 90 are done.
    """
    queued = list(model.objects.filter(status=Status.QUEUED, cancel_requested=False).order_by("id")
                  .values_list("id", "project_id"))
    if not queued:
        return []
    by_project: dict[int, list[int]] = {}
    for job_id, project_id in queued:
        by_project.setdefault(project_id, []).append(job_id)
    cutoff = timezone.now() - timedelta(seconds=FAIR_WINDOW_S)
    busy = dict.fromkeys(by_project, 0)
    for project_id in model.objects.filter(project_id__in=list(by_project)).filter(
            Q(status=Status.RUNNING) | Q(started_at__gte=cutoff)).values_list("project_id", flat=True):
        busy[project_id] += 1
    # (share used, oldest waiting id, project): a heap gives the next project in O(log n).
    heap = [(busy[p], ids[0], p) for p, ids in by_project.items()]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        used, job_id, project_id = heapq.heappop(heap)
        order.append(job_id)
        waiting = by_project[project_id]
        waiting.pop(0)
        if waiting:
            heapq.heappush(heap, (used + 1, waiting[0], project_id))
    return order


def job_claim_next(model: type[Job], *, worker_id: str) -> int | None:
    """Claim the fairest queued job (:func:`job_fair_order`) for this worker; its id, or
    ``None`` when there is none left. Another worker may win a job first: then the next."""
    for job_id in job_fair_order(model):
        if job_claim(model, job_id=job_id, worker_id=worker_id):
            return job_id
    return None


def job_claim(model: type[Job], *, job_id: int, worker_id: str) -> bool:
    """Take a queued job for this worker: True for exactly one caller, however many try."""
    now = timezone.now()
    claimed = model.objects.filter(id=job_id, status=Status.QUEUED, cancel_requested=False).update(
        status=Status.RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now, progress=0.0,
        message="starting", error="")
    return claimed == 1


class Progress:
    """The work's ``progress(fraction, message[, metrics])``: persists to the row and publishes
    at most every ``_PROGRESS_INTERVAL_S``, and raises :class:`JobCancelled` once a cancel is
    asked. ``on_metrics(metrics)`` (optional) returns fields to write with the progress (a
    training job's loss curve)."""

    def __init__(self, model: type[Job], job_id: int, on_metrics: Callable[[dict], dict] | None = None):
        self.model, self.job_id, self.on_metrics = model, job_id, on_metrics
        self.last_write = 0.0
        self.last_check = time.monotonic()
        self.fraction = 0.0
        self.fields: dict[str, Any] = {}

    def __call__(self, fraction: float, message: str, metrics: dict | None = None) -> None:
        now = time.monotonic()
        # Progress never goes back, whatever a stage reports.
        self.fraction = max(self.fraction, min(max(float(fraction), 0.0), 1.0))
        if metrics and self.on_metrics is not None:
            self.fields.update(self.on_metrics(metrics))
        if now - self.last_check >= _CANCEL_CHECK_INTERVAL_S:
            self.last_check = now
            row = self.model.objects.filter(id=self.job_id).values("status", "cancel_requested").first()
            if row is None or row["cancel_requested"] or row["status"] != Status.RUNNING:
                raise JobCancelled("cancelled")
        if now - self.last_write >= _PROGRESS_INTERVAL_S:
            self.write(message)

    def write(self, message: str) -> None:
        self.last_write = time.monotonic()
        updated = self.model.objects.filter(id=self.job_id, status=Status.RUNNING).update(
            progress=self.fraction, message=message[:200], heartbeat_at=timezone.now(), **self.fields)
        if updated:
            events.job_publish(_fresh(self.model, self.job_id))


def _finish(model: type[Job], job_id: int, status: str, **fields: Any) -> bool:
    """End a running job; False when it was no longer running (reaped meanwhile)."""
    updated = model.objects.filter(id=job_id, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields)
    events.job_publish(_fresh(model, job_id))
    return updated == 1


def _heartbeat(model: type[Job], job_id: int, stop: threading.Event) -> None:
    try:
        interval = min(HEARTBEAT_INTERVAL_S, settings.EZQUANT_JOB_STALE_SECONDS / 4)
        while not stop.wait(interval):
            model.objects.filter(id=job_id, status=Status.RUNNING).update(heartbeat_at=timezone.now())
    except Exception:  # the database went away: the reaper will judge
        logger.exception("heartbeat of %s job %s stopped", model.kind, job_id)
    finally:
        connection.close()  # this thread's own connection


#: ``work(job, progress, timings) -> commit``; ``commit()`` runs inside the transaction that
#: marks the job succeeded, writes the result and returns the fields to store with the status.
Work = Callable[[Job, Progress, dict], Callable[[], dict]]


def run_job(model: type[Job], *, job_id: int, work: Work, worker_id: str | None = None,
            on_metrics: Callable[[dict], dict] | None = None, claimed: bool = False) -> str:
    """Claim and run one job to its end; returns the status it ended with.

    A job another worker holds (or that was cancelled before it started) is left alone;
    ``claimed``: this worker has claimed it already (:func:`job_claim_next`). Any
    exception ends the job ``failed`` with its text, and nothing of its result is committed;
    an interrupt (SystemExit, KeyboardInterrupt from a worker shutting down) does too and is
    raised again.
    """
    worker_id = worker_id or process_worker_id()
    if not claimed and not job_claim(model, job_id=job_id, worker_id=worker_id):
        model.objects.filter(id=job_id, status=Status.QUEUED, cancel_requested=True).update(
            status=Status.CANCELLED, finished_at=timezone.now())
        return model.objects.filter(id=job_id).values_list("status", flat=True).first() or "missing"
    model.objects.filter(id=job_id).update(attempts=F("attempts") + 1)
    job = _fresh(model, job_id)
    events.job_publish(job)
    progress = Progress(model, job_id, on_metrics)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    stop_heartbeat = threading.Event()
    threading.Thread(target=_heartbeat, args=(model, job_id, stop_heartbeat), daemon=True,
                     name=f"heartbeat-{model.kind}-{job_id}").start()
    try:
        commit = work(job, progress, timings)
        t = time.perf_counter()
        with transaction.atomic():
            # The result and "succeeded" commit together; a job that is no longer running
            # (cancelled at the last moment, reaped) rolls the result back.
            fields = commit()
            timings["save"] = round(time.perf_counter() - t, 3)
            timings["total"] = round(time.perf_counter() - t0, 3)
            if not _finish(model, job_id, Status.SUCCEEDED, progress=1.0, message="done", timings=timings,
                           **progress.fields, **fields):
                raise JobCancelled("the job stopped being this worker's before it finished")
        return Status.SUCCEEDED
    except JobCancelled:
        cancelled = model.objects.filter(id=job_id, cancel_requested=True).exists()
        _finish(model, job_id, Status.CANCELLED if cancelled else Status.FAILED,
                message="cancelled" if cancelled else "",
                error="" if cancelled else "stopped: the job was taken from this worker", timings=timings,
                **progress.fields)
        return Status.CANCELLED if cancelled else Status.FAILED
    except BaseException as exc:
        if isinstance(exc, ApplicationError):  # a rule, said to the user as it is
            text = exc.message
        else:
            logger.exception("%s job %s failed", model.kind, job_id)
            text = f"{type(exc).__name__}: {exc}".rstrip(": ")
        try:
            _finish(model, job_id, Status.FAILED, error=text[:2000], message="failed", timings=timings,
                    **progress.fields)
        except Exception:
            logger.exception("could not mark %s job %s failed", model.kind, job_id)
        if not isinstance(exc, Exception):
            raise
        return Status.FAILED
    finally:
        stop_heartbeat.set()


def job_cancel(model: type[Job], *, job: Job) -> Job:
    """Cancel a job: a queued one at once, a running one within about a second (its worker
    sees ``cancel_requested`` at its next progress report). A finished job cannot be (409)."""
    now = timezone.now()
    if model.objects.filter(id=job.id, status=Status.QUEUED).update(
            status=Status.CANCELLED, cancel_requested=True, finished_at=now, message="cancelled"):
        pass
    elif not model.objects.filter(id=job.id, status=Status.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        raise ApplicationError(f"the job has already {job.status}" if job.status != Status.QUEUED
                               else "the job could not be cancelled", status=409)
    job = _fresh(model, job.id)
    events.job_publish(job)
    return job


def job_reap_stale(*, older_than_s: float | None = None) -> int:
    """Mark failed every running job, of any kind, whose worker has given no sign of life for
    ``older_than_s`` seconds (``EZQUANT_JOB_STALE_SECONDS``): its worker was killed or its
    machine lost. Such a job has no result (that is committed with ``succeeded``). Returns how
    many were reaped."""
    limit = settings.EZQUANT_JOB_STALE_SECONDS if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=limit)
    reaped = 0
    for model in job_models():
        stale = list(model.objects.filter(status=Status.RUNNING, heartbeat_at__lt=cutoff)
                     .values_list("id", flat=True))
        for job_id in stale:
            if model.objects.filter(id=job_id, status=Status.RUNNING, heartbeat_at__lt=cutoff).update(
                    status=Status.FAILED, finished_at=timezone.now(),
                    error=f"the worker stopped answering (no heartbeat for {limit:.0f} s)", message="failed"):
                reaped += 1
                events.job_publish(_fresh(model, job_id))
    return reaped


def job_queue_stuck(*, older_than_s: float | None = None) -> Job | None:
    """The oldest queued job, of any kind, when the queue has not moved for ``older_than_s``
    seconds (``EZQUANT_JOB_QUEUE_STUCK_SECONDS``): it has waited that long and no job started,
    gave a heartbeat or finished since (no worker runs, or the one there is stuck). ``None``
    when the queue moves or nothing has waited that long."""
    limit = settings.EZQUANT_JOB_QUEUE_STUCK_SECONDS if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=limit)
    waiting = [job for job in (model.objects.filter(status=Status.QUEUED, cancel_requested=False,
                                                      created_at__lt=cutoff).order_by("created_at").first()
                               for model in job_models()) if job is not None]
    if not waiting:
        return None
    moved = Q(started_at__gte=cutoff) | Q(heartbeat_at__gte=cutoff) | Q(finished_at__gte=cutoff)
    if any(model.objects.filter(moved).exists() for model in job_models()):
        return None
    return min(waiting, key=lambda job: job.created_at)
