"""The only module that talks to the channel layer: job state to WebSocket clients.

Every event is sent after the surrounding transaction commits (``transaction.on_commit``), so
a client never hears of a state the database may still roll back. Outside a transaction (the
worker's autocommit writes) the callback runs at once.

Groups: a segmentation job is heard on its own group (``ws/jobs/<id>/``) and its volume's
(``ws/volumes/<id>/jobs/``); a training job on its own (``ws/training-jobs/<id>/``) and its
project's (``ws/projects/<id>/training/``); a volume import (``annotation.models.VolumeImportJob``)
on its own (``ws/import-jobs/<id>/``).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from annotation.models import VolumeImportJob
from segmentation.models import Job, SegmentationJob, TrainingJob

logger = logging.getLogger(__name__)

__all__ = ["RELATED", "import_job_group", "job_group", "job_publish", "job_state", "training_group",
           "training_job_group", "volume_group"]

#: What ``job_state`` reads beside the row, per kind (select_related).
RELATED: dict[type[Job], tuple[str, ...]] = {SegmentationJob: ("label_version",), TrainingJob: ("model_version",),
                                             VolumeImportJob: ("volume",)}
# Loss points sent with each training event: the tail of the curve (the row keeps all of it).
_LOSS_POINTS = 200


def job_group(job_id: int) -> str:
    return f"segjob.{job_id}"


def volume_group(volume_id: int) -> str:
    return f"segjobs.volume.{volume_id}"


def training_job_group(job_id: int) -> str:
    return f"trainjob.{job_id}"


def training_group(project_id: int) -> str:
    return f"trainjobs.project.{project_id}"


def import_job_group(job_id: int) -> str:
    return f"importjob.{job_id}"


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
    if isinstance(job, TrainingJob):
        metrics = job.metrics or {}
        state.update(project=job.project_id, loss=(metrics.get("loss") or [])[-_LOSS_POINTS:],
                     steps=metrics.get("steps"),
                     model_version=job.model_version.number if job.model_version_id else None)
    elif isinstance(job, VolumeImportJob):
        state.update(project=job.project_id, file_name=job.file_name, file_bytes=job.file_bytes,
                     volume=job.volume_id, volume_name=job.volume.name if job.volume_id else None)
    else:
        state.update(volume=job.volume_id, model_version=job.model_version,
                     label_version=job.label_version.name if job.label_version_id else None,
                     kept_nuclei=job.kept_nuclei, from_scratch=job.from_scratch)
    return state


def _groups(state: dict[str, Any]) -> list[str]:
    if state["kind"] == TrainingJob.kind:
        return [training_job_group(state["id"]), training_group(state["project"])]
    if state["kind"] == VolumeImportJob.kind:
        return [import_job_group(state["id"])]
    return [job_group(state["id"])] + ([volume_group(state["volume"])] if state["volume"] is not None else [])


def _send(state: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    event = {"type": "job.event", "state": state}
    try:
        for group in _groups(state):
            async_to_sync(layer.group_send)(group, event)
    except Exception:  # a lost event must never fail the job: the row stays the truth
        logger.exception("could not publish the state of %s job %s", state["kind"], state["id"])


def job_publish(job: Job) -> None:
    """Tell the job's listeners its current state, once the transaction commits."""
    state = job_state(job)
    transaction.on_commit(lambda: _send(state))
