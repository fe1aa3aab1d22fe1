"""WebSocket of job progress: authorise, join the group, send the current state, relay events.

``ws/jobs/<job_id>/``: one job. ``ws/volumes/<volume_id>/jobs/``: every job of a volume.
Anonymous connections are closed with 4401, non-members of the project with 4403. Each message
is a job's state (``events.job_state``), first the persisted one, then each change.

A refusal accepts the handshake and then closes with its code: a close before the accept is
an HTTP 403 answer to the handshake, which no browser shows to the page (it sees 1006).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from segmentation import events

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _job_state(user, job_id: int):
    from segmentation.selectors import segmentation_job_visible

    job = segmentation_job_visible(user=user).filter(id=job_id).first()
    return None if job is None else events.job_state(job)


@database_sync_to_async
def _volume_states(user, volume_id: int):
    from django.core.exceptions import ObjectDoesNotExist

    from annotation.selectors import volume_get
    from segmentation.selectors import segmentation_job_list

    try:
        volume_get(user=user, volume_id=volume_id)  # a volume of one of the user's projects
    except ObjectDoesNotExist:
        return None
    return [events.job_state(job) for job in segmentation_job_list(user=user, volume_id=volume_id)[:50]]


class JobConsumer(AsyncJsonWebsocketConsumer):
    """Segmentation jobs: ``ws/jobs/<job_id>/`` and ``ws/volumes/<volume_id>/jobs/``."""

    groups: list[str] = []

    def group_for(self, kwargs) -> str:
        if "job_id" in kwargs:
            return events.job_group(int(kwargs["job_id"]))
        return events.volume_group(int(kwargs["volume_id"]))

    async def states_for(self, user, kwargs) -> list | None:
        """The persisted states to send first, or ``None`` when the user may not listen."""
        if "job_id" in kwargs:
            state = await _job_state(user, int(kwargs["job_id"]))
            return None if state is None else [state]
        return await _volume_states(user, int(kwargs["volume_id"]))

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        kwargs = self.scope["url_route"]["kwargs"]
        # Join first, read second: an event sent in between is received as well, and each
        # message carries a job's whole state, so a repeat does no harm.
        group = self.group_for(kwargs)
        await self.channel_layer.group_add(group, self.channel_name)
        states = await self.states_for(user, kwargs)
        if states is None:
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.refuse(CLOSE_FORBIDDEN)
            return
        self.groups = [group]
        await self.accept()
        for state in states:
            await self.send_json(state)

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def job_event(self, event):
        await self.send_json(event["state"])

    async def receive_json(self, content, **kwargs):
        pass  # the socket only listens; cancel is POST .../cancel/


@database_sync_to_async
def _training_states(user, kwargs):
    from segmentation.selectors import training_job_list, training_job_visible

    if "job_id" in kwargs:
        job = training_job_visible(user=user).filter(id=int(kwargs["job_id"])).first()
        return None if job is None else [events.job_state(job)]
    project_id = int(kwargs["project_id"])
    from annotation import roles

    if not roles.is_staff(user=user, project_id=project_id):
        return None
    return [events.job_state(job) for job in training_job_list(user=user, project_id=project_id)[:20]]


class TrainingConsumer(JobConsumer):
    """``ws/training-jobs/<job_id>/`` and ``ws/projects/<project_id>/training/``: training jobs'
    states (with the loss curve) for the project's instructors and admins; 4403 for others."""

    def group_for(self, kwargs) -> str:
        if "job_id" in kwargs:
            return events.training_job_group(int(kwargs["job_id"]))
        return events.training_group(int(kwargs["project_id"]))

    async def states_for(self, user, kwargs) -> list | None:
        return await _training_states(user, kwargs)
