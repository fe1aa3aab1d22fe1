"""The job worker: django-tasks-db's worker loop, with the stale-job reaper beside it.

``manage.py jobs_worker`` (``make worker``) runs it in its own process, on any number of
machines sharing one database; with ``EZQUANT_EMBEDDED_WORKER`` the ASGI process runs it in a
thread (``start_embedded_worker``). Every worker first reaps jobs whose worker died, then does
so every ``_REAP_INTERVAL_S``.

The embedded worker survives its errors: the loop is run again after any exception (the
database went away, or stayed locked past its timeout, as a slow edit once made it), after 1 s
and then doubling up to 60 s (:func:`run_worker_forever`); and a supervisor thread starts the
worker thread again if it dies all the same. ``/healthz`` reports a dead one
(:func:`embedded_worker_alive`).
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

_REAP_INTERVAL_S = 60.0
# After an error the worker loop starts again after this long, doubling up to the maximum; a
# loop that ran this long without an error starts from the first delay again.
_RETRY_FIRST_S = 1.0
_RETRY_MAX_S = 60.0
_RETRY_RESET_S = 60.0
# How often the supervisor looks whether the embedded worker thread is still alive.
_SUPERVISE_INTERVAL_S = 5.0
_embedded: threading.Thread | None = None
_embedded_id: str = ""
_embedded_lock = threading.Lock()


def _reap_forever(stop: threading.Event, interval: float) -> None:
    from annotation.services.imports import volume_import_uploads_remove
    from segmentation.services import segmentation_job_reap_stale

    while True:
        try:
            close_old_connections()
            reaped = segmentation_job_reap_stale()
            if reaped:
                logger.warning("reaped %d job(s) whose worker had died", reaped)
            removed = volume_import_uploads_remove()
            if removed:
                logger.warning("removed the uploads of %d import job(s) whose worker had died", removed)
        except Exception:
            logger.exception("reaping stale jobs failed")
        if stop.wait(interval):
            break
    connection.close()


def _nightly_due(now, at: str, last_day) -> bool:
    hour, minute = (int(v) for v in at.split(":"))
    return now.date() != last_day and (now.hour, now.minute) >= (hour, minute)


def retrain_due_projects() -> list[int]:
    """Queue a training for every project with enough new approved corrections (20) and no
    training started today; returns the jobs' ids. Several workers may call it: the job row
    check and ``training_job_create``'s lock keep it to one job a day per project."""
    from django.utils import timezone

    from annotation.selectors import project_all
    from ezquant_web.errors import ApplicationError
    from segmentation.models import TrainingJob
    from segmentation.services import retraining_needed, training_job_create

    today = timezone.localdate()
    queued = []
    for project in project_all():
        if TrainingJob.objects.filter(project=project, created_at__date=today).exists():
            continue
        if retraining_needed(project=project) is None:
            continue
        try:
            queued.append(training_job_create(project=project, user=None).id)
        except ApplicationError as exc:  # one already running, nothing approved: try tomorrow
            logger.info("nightly retraining of %s skipped: %s", project.name, exc.message)
    return queued


def _nightly_forever(stop: threading.Event, at: str) -> None:
    from django.utils import timezone

    last_day = None
    while not stop.wait(60.0):
        now = timezone.localtime()
        if not _nightly_due(now, at, last_day):
            continue
        last_day = now.date()
        try:
            close_old_connections()
            for job_id in retrain_due_projects():
                logger.warning("nightly retraining queued as training job %s", job_id)
        except Exception:
            logger.exception("nightly retraining failed")
    connection.close()


def start_nightly_retraining() -> threading.Event | None:
    """With ``EZQUANT_RETRAIN_NIGHTLY_AT`` ("02:00", local time) set, queue the day's retraining
    then (a daemon thread, checked every minute); ``None`` when it is not set."""
    from django.conf import settings

    at = settings.EZQUANT_RETRAIN_NIGHTLY_AT
    if not at:
        return None
    stop = threading.Event()
    threading.Thread(target=_nightly_forever, args=(stop, at), daemon=True, name="nightly-retraining").start()
    return stop


def make_worker(*, worker_id: str | None = None, interval: float = 0.5, batch: bool = False,
                max_tasks: int | None = None):
    """django-tasks-db's ``Worker`` over every queue of the default backend."""
    from django_tasks_db.management.commands.db_worker import Worker

    from ezquant_web.jobs.runner import process_worker_id  # the models: not at import, before apps are ready

    return Worker(queue_names=["*"], interval=interval, batch=batch, backend_name="default", startup_delay=False,
                  max_tasks=max_tasks, worker_id=worker_id or process_worker_id(),
                  excluded_queue_names=[])


def start_reaper(*, interval: float = _REAP_INTERVAL_S) -> threading.Event:
    """Reap now and then every ``interval`` seconds in a daemon thread; set the event to stop."""
    stop = threading.Event()
    threading.Thread(target=_reap_forever, args=(stop, interval), daemon=True, name="job-reaper").start()
    return stop


def run_worker_forever(*, worker_id: str, stop: threading.Event | None = None, make=make_worker,
                       first_delay: float = _RETRY_FIRST_S, max_delay: float = _RETRY_MAX_S) -> None:
    """Run ``make(worker_id=...).run()`` and run it again after any exception, waiting
    ``first_delay`` and then twice as long each time up to ``max_delay`` (back to the first
    delay after a loop that ran a minute). Returns when a loop returns (``max_tasks``,
    ``batch``) or ``stop`` is set."""
    stop = stop or threading.Event()
    delay = first_delay
    while not stop.is_set():
        started = time.monotonic()
        try:
            close_old_connections()
            make(worker_id=worker_id).run()
            return
        except Exception:  # DatabaseError above all: the thread must not die of it
            if time.monotonic() - started >= _RETRY_RESET_S:
                delay = first_delay
            logger.exception("the job worker stopped on an error; it starts again in %.0f s", delay)
        finally:
            try:
                connection.close()  # a broken connection is not reused by the next loop
            except Exception:
                logger.exception("closing the job worker's connection failed")
        if stop.wait(delay):
            return
        delay = min(delay * 2, max_delay)


def _embedded_main() -> None:
    run_worker_forever(worker_id=_embedded_id)


def _start_embedded_thread() -> threading.Thread:
    global _embedded
    _embedded = threading.Thread(target=_embedded_main, daemon=True, name="embedded-job-worker")
    _embedded.start()
    return _embedded


def embedded_worker_alive() -> bool | None:
    """Whether this process' embedded worker thread is alive; ``None`` when this process has
    none. A dead one is started again here (and by the supervisor), but the answer is still
    ``False``: it was dead when asked."""
    with _embedded_lock:
        if _embedded is None:
            return None
        if _embedded.is_alive():
            return True
        logger.error("the embedded job worker thread had died; starting it again")
        _start_embedded_thread()
        return False


def _supervise_forever(interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            embedded_worker_alive()
        except Exception:
            logger.exception("supervising the embedded job worker failed")


def start_embedded_worker() -> threading.Thread:
    """The in-process worker of the embedded configuration (once per process), with its reaper,
    its nightly retraining and a supervisor that starts the worker thread again if it dies."""
    global _embedded_id
    with _embedded_lock:
        if _embedded is not None and _embedded.is_alive():
            return _embedded
        first = _embedded is None
        from ezquant_web.jobs.runner import process_worker_id

        _embedded_id = process_worker_id("embedded:")
        thread = _start_embedded_thread()
    if first:
        start_reaper()
        start_nightly_retraining()
        threading.Thread(target=_supervise_forever, args=(_SUPERVISE_INTERVAL_S,), daemon=True,
                         name="embedded-job-worker-supervisor").start()
    logger.info("embedded job worker started")
    return thread
