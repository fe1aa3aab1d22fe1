"""WebSockets of segmentation and training jobs (on the shared base,
:class:`ezquant_web.jobs.consumers.JobStateConsumer`: authorise, join the group, send the
current state, relay events).

``ws/jobs/<job_id>/``: one job. ``ws/volumes/<volume_id>/jobs/``: every job of a volume.
Anonymous connections are closed with 4401, non-members of the project with 4403.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

from ezquant_web.jobs.consumers import JobStateConsumer
from ezquant_web.jobs.events import job_state
from segmentation import events


@database_sync_to_async
def _job_state(user, job_id: int):
    from segmentation.selectors import segmentation_job_visible

    job = segmentation_job_visible(user=user).filter(id=job_id).first()
    return None if job is None else job_state(job)


@database_sync_to_async
def _volume_states(user, volume_id: int):
    from django.core.exceptions import ObjectDoesNotExist

    from annotation.selectors import volume_get
    from segmentation.selectors import segmentation_job_list

    try:
        volume_get(user=user, volume_id=volume_id)  # a volume of one of the user's projects
    except ObjectDoesNotExist:
        return None
    return [job_state(job) for job in segmentation_job_list(user=user, volume_id=volume_id)[:50]]


class JobConsumer(JobStateConsumer):
    """Segmentation jobs: ``ws/jobs/<job_id>/`` and ``ws/volumes/<volume_id>/jobs/``."""

    def group_for(self, kwargs) -> str:
        if "job_id" in kwargs:
            return events.job_group(int(kwargs["job_id"]))
        return events.volume_group(int(kwargs["volume_id"]))

    async def states_for(self, user, kwargs) -> list | None:
        if "job_id" in kwargs:
            state = await _job_state(user, int(kwargs["job_id"]))
            return None if state is None else [state]
        return await _volume_states(user, int(kwargs["volume_id"]))


@database_sync_to_async
def _training_states(user, kwargs):
    from segmentation.selectors import training_job_list, training_job_visible

    if "job_id" in kwargs:
        job = training_job_visible(user=user).filter(id=int(kwargs["job_id"])).first()
        return None if job is None else [job_state(job)]
    project_id = int(kwargs["project_id"])
    from annotation import roles

    if not roles.is_staff(user=user, project_id=project_id):
        return None
    return [job_state(job) for job in training_job_list(user=user, project_id=project_id)[:20]]


class TrainingConsumer(JobStateConsumer):
    """``ws/training-jobs/<job_id>/`` and ``ws/projects/<project_id>/training/``: training jobs'
    states (with the loss curve) for the project's instructors and admins; 4403 for others."""

    def group_for(self, kwargs) -> str:
        if "job_id" in kwargs:
            return events.training_job_group(int(kwargs["job_id"]))
        return events.training_group(int(kwargs["project_id"]))

    async def states_for(self, user, kwargs) -> list | None:
        return await _training_states(user, kwargs)
