"""Who hears segmentation's jobs, and what their states carry beside the common fields.

The states are built and sent by the shared machinery (:mod:`ezquant_web.jobs.events`, the only
module that sends job states on the channel layer, after commit); ``SegmentationConfig.ready()``
registers the two kinds with the functions here (:func:`ezquant_web.jobs.kinds.register_job_kind`).

Groups: a segmentation job is heard on its own group (``ws/jobs/<id>/``) and its volume's
(``ws/volumes/<id>/jobs/``); a training job on its own (``ws/training-jobs/<id>/``) and its
project's (``ws/projects/<id>/training/``).
"""

from __future__ import annotations

from typing import Any

from segmentation.models import SegmentationJob, TrainingJob

__all__ = ["job_group", "segmentation_job_fields", "segmentation_job_groups", "training_group",
           "training_job_fields", "training_job_group", "training_job_groups", "volume_group"]

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


def segmentation_job_fields(job: SegmentationJob) -> dict[str, Any]:
    """A segmentation job's own state fields (``label_version`` read with it)."""
    return {"volume": job.volume_id, "model_version": job.model_version,
            "label_version": job.label_version.name if job.label_version_id else None,
            "kept_nuclei": job.kept_nuclei, "from_scratch": job.from_scratch}


def segmentation_job_groups(state: dict[str, Any]) -> list[str]:
    return [job_group(state["id"])] + ([volume_group(state["volume"])] if state["volume"] is not None else [])


def training_job_fields(job: TrainingJob) -> dict[str, Any]:
    """A training job's own state fields: the tail of its loss curve (``model_version`` read with it)."""
    metrics = job.metrics or {}
    return {"project": job.project_id, "loss": (metrics.get("loss") or [])[-_LOSS_POINTS:],
            "steps": metrics.get("steps"),
            "model_version": job.model_version.number if job.model_version_id else None}


def training_job_groups(state: dict[str, Any]) -> list[str]:
    return [training_job_group(state["id"]), training_group(state["project"])]
