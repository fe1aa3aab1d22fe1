"""``manage.py jobs_worker``: run segmentation jobs (``make worker``); start one per machine
(or several), all pointing at the same DATABASE_URL.

django-tasks-db's worker loop (its atomic claim, its SIGTERM handling: the first signal lets
the running job finish, a second one ends it and the job is marked failed), with the reaper of
jobs whose worker died beside it.
"""

from django.core.management.base import BaseCommand

from segmentation.worker import make_worker, start_nightly_retraining, start_reaper


class Command(BaseCommand):
    help = "Run a segmentation job worker (django-tasks-db worker loop plus the stale-job reaper)"

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls when idle")
        parser.add_argument("--worker-id", default=None)
        parser.add_argument("--reap-interval", type=float, default=60.0)

    def handle(self, *, interval, worker_id, reap_interval, **options):
        start_reaper(interval=reap_interval)
        start_nightly_retraining()
        worker = make_worker(worker_id=worker_id, interval=interval)
        worker.configure_signals()
        self.stdout.write(f"job worker {worker.worker_id} started", ending="\n")
        self.stdout.flush()
        worker.run()
