"""Background entry points (django-tasks): thin, they call services."""

from django_tasks import task


@task(takes_context=True)
def segmentation_job_task(context, job_id: int) -> None:
    from segmentation.services import segmentation_job_run_next

    # Not necessarily job_id: the fairest queued job across projects (ezquant_web.jobs.runner.job_fair_order).
    # The job row names the worker that ran it: the one django-tasks-db claimed the task for.
    worker_ids = context.task_result.worker_ids
    segmentation_job_run_next(worker_id=worker_ids[-1] if worker_ids else None)


@task(takes_context=True)
def training_job_task(context, job_id: int) -> None:
    from segmentation.services import training_job_run

    worker_ids = context.task_result.worker_ids
    training_job_run(job_id=job_id, worker_id=worker_ids[-1] if worker_ids else None)
