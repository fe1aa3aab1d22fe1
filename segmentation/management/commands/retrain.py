"""``manage.py retrain --project NAME``: fine-tune the project's adapter on its approved corrections.

Queues a training job (a worker runs it), or with ``--wait`` runs it here and prints its scores.
``--if-needed`` does nothing unless ``--min-corrections`` (default 20) corrections were approved
since the project's last model version: what a nightly cron line (or the worker's nightly
schedule, ``EZQUANT_RETRAIN_NIGHTLY_AT``) calls. Mistakes end with exit status 1 and one line.
"""

import json

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Retrain a project's model adapter on its approved corrections (queued, or --wait to run it here)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="the project's name")
        parser.add_argument("--user", help="recorded as who started it")
        parser.add_argument("--params", default="{}", help="RetrainingParams fields as JSON, e.g. "
                                                           '\'{"training": {"steps": 100}}\'')
        parser.add_argument("--wait", action="store_true", help="run the job in this process and print its result")
        parser.add_argument("--if-needed", action="store_true", help="only when enough new approved corrections")
        parser.add_argument("--min-corrections", type=int, default=20)

    def handle(self, *args, **options):
        from django.contrib.auth import get_user_model

        from annotation.selectors import project_find
        from ezquant_web.errors import ApplicationError
        from segmentation.services import retraining_needed, training_job_create, training_job_run

        project = project_find(name=options["project"])
        if project is None:
            raise CommandError(f"no project named {options['project']!r}")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user named {options['user']!r}")
        try:
            params = json.loads(options["params"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not JSON: {exc}") from None
        if options["if_needed"]:
            new = retraining_needed(project=project, min_corrections=options["min_corrections"])
            if new is None:
                self.stdout.write(f"{project.name}: not needed (fewer than {options['min_corrections']} new approved "
                                  "corrections since the last model version)")
                return
        try:
            job = training_job_create(project=project, user=user, params=params)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if not options["wait"]:
            self.stdout.write(f"training job {job.id} queued")
            return
        status = training_job_run(job_id=job.id)
        job.refresh_from_db()
        if status != "succeeded":
            raise CommandError(f"training job {job.id} {status}: {job.error}")
        version = job.model_version
        self.stdout.write(json.dumps({"job": job.id, "model_version": version.number, "name": version.name,
                                      "adapter_bytes": version.adapter_bytes, "scores": version.scores}))
