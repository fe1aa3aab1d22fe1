"""The only module that talks to the channel layer: job state to WebSocket clients.

Every event is sent after the surrounding transaction commits (``transaction.on_commit``), so
a client never hears of a state the database may still roll back. Outside a transaction (the
worker's autocommit writes) the callback runs at once. Two groups hear of a job: the job's own
(``ws/jobs/<id>/``) and its volume's (``ws/volumes/<id>/jobs/``).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from segmentation.models import SegmentationJob

logger = logging.getLogger(__name__)

__all__ = ["job_group", "job_state", "job_publish", "volume_group"]


def job_group(job_id: int) -> str:
    return f"segjob.{job_id}"


def volume_group(volume_id: int) -> str:
    return f"segjobs.volume.{volume_id}"


def job_state(job: SegmentationJob) -> dict[str, Any]:
    """What a client is told about a job: the message format of the README's "Jobs" section."""
    return {
        "type": "job",
        "id": job.id,
        "volume": job.volume_id,
        "status": job.status,
        "progress": round(float(job.progress), 4),
        "message": job.message,
        "error": job.error,
        "label_version": job.label_version.name if job.label_version_id else None,
        "model_version": job.model_version,
    }


def _send(state: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    event = {"type": "job.event", "state": state}
    try:
        async_to_sync(layer.group_send)(job_group(state["id"]), event)
        if state["volume"] is not None:
            async_to_sync(layer.group_send)(volume_group(state["volume"]), event)
    except Exception:  # a lost event must never fail the job: the row stays the truth
        logger.exception("could not publish the state of job %s", state["id"])


def job_publish(job: SegmentationJob) -> None:
    """Tell the job's listeners its current state, once the transaction commits."""
    state = job_state(job)
    transaction.on_commit(lambda: _send(state))
