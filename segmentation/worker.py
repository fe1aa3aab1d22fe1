"""The job worker: django-tasks-db's worker loop, with the stale-job reaper beside it.

``manage.py jobs_worker`` (``make worker``) runs it in its own process, on any number of
machines sharing one database; with ``EZQUANT_EMBEDDED_WORKER`` the ASGI process runs it in a
thread (``start_embedded_worker``). Every worker first reaps jobs whose worker died, then does
so every ``_REAP_INTERVAL_S``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

_REAP_INTERVAL_S = 60.0
_embedded: threading.Thread | None = None


def _reap_forever(stop: threading.Event, interval: float) -> None:
    from segmentation.services import segmentation_job_reap_stale

    while True:
        try:
            close_old_connections()
            reaped = segmentation_job_reap_stale()
            if reaped:
                logger.warning("reaped %d job(s) whose worker had died", reaped)
        except Exception:
            logger.exception("reaping stale jobs failed")
        if stop.wait(interval):
            break
    connection.close()


def make_worker(*, worker_id: str | None = None, interval: float = 0.5, batch: bool = False,
                max_tasks: int | None = None):
    """django-tasks-db's ``Worker`` over every queue of the default backend."""
    from django_tasks_db.management.commands.db_worker import Worker

    return Worker(queue_names=["*"], interval=interval, batch=batch, backend_name="default", startup_delay=False,
                  max_tasks=max_tasks, worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}"[:64],
                  excluded_queue_names=[])


def start_reaper(*, interval: float = _REAP_INTERVAL_S) -> threading.Event:
    """Reap now and then every ``interval`` seconds in a daemon thread; set the event to stop."""
    stop = threading.Event()
    threading.Thread(target=_reap_forever, args=(stop, interval), daemon=True, name="job-reaper").start()
    return stop


def start_embedded_worker() -> threading.Thread:
    """The in-process worker of the embedded configuration (once per process)."""
    global _embedded
    if _embedded is not None and _embedded.is_alive():
        return _embedded

    def run() -> None:
        start_reaper()
        try:
            make_worker(worker_id=f"embedded:{socket.gethostname()}:{os.getpid()}"[:64]).run()
        finally:
            connection.close()

    _embedded = threading.Thread(target=run, daemon=True, name="embedded-job-worker")
    _embedded.start()
    logger.info("embedded job worker started")
    return _embedded
