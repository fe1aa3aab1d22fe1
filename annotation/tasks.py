"""Background entry points (django-tasks): thin, they call services."""

from django_tasks import task


@task(takes_context=True)
def volume_import_job_task(context, job_id: int) -> None:
    from annotation.services.imports import volume_import_job_run

    # The job row names the worker that ran it: the one django-tasks-db claimed the task for.
    worker_ids = context.task_result.worker_ids
    volume_import_job_run(job_id=job_id, worker_id=worker_ids[-1] if worker_ids else None)
