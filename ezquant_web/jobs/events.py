"""The only module that sends job states on the channel layer.

Every event is sent after the surrounding transaction commits (``transaction.on_commit``), so
a client never hears of a state the database may still roll back. Outside a transaction (the
worker's autocommit writes) the callback runs at once. A state is the common fields of the row
(:func:`job_state`) and those of its kind; its kind names the groups that hear it
(:mod:`ezquant_web.jobs.kinds`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from ezquant_web.jobs.kinds import job_kind

if TYPE_CHECKING:
    from ezquant_web.jobs.models import Job

logger = logging.getLogger(__name__)

__all__ = ["job_groups", "job_publish", "job_state"]


def job_state(job: Job) -> dict[str, Any]:
    """What a client is told about a job: the message format of the README's "Jobs" section."""
    state = {
        "type": "job",
        "kind": job.kind,
        "id": job.id,
        "status": job.status,
        "progress": round(float(job.progress), 4),
        "message": job.message,
        "error": job.error,
    }
    state.update(job_kind(job).fields(job))
    return state


def job_groups(state: dict[str, Any]) -> list[str]:
    """The channel groups that hear a job's ``state`` (its kind's ``groups``)."""
    return job_kind(state["kind"]).groups(state)


def _send(state: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    event = {"type": "job.event", "state": state}
    try:
        for group in job_groups(state):
            async_to_sync(layer.group_send)(group, event)
    except Exception:  # a lost event must never fail the job: the row stays the truth
        logger.exception("could not publish the state of %s job %s", state["kind"], state["id"])


def job_publish(job: Job) -> None:
    """Tell the job's listeners its current state, once the transaction commits."""
    state = job_state(job)
    transaction.on_commit(lambda: _send(state))
