"""The only module of the annotation app that talks to the channel layer: what the open viewers
of a volume hear about its label versions.

Every new label version of a volume (an edit, an undo or redo, a review's revert, an upload, a
segmentation) is told to the volume's group (``ws/volumes/<id>/live/``, ``consumers.py``) once
the transaction that made it commits (``transaction.on_commit``): a viewer never hears of a
version the database may still roll back. The version rows are created by several services
(``volumes``, ``corrections``, ``reviews``, ``segmentation.services``); a ``post_save``
receiver on :class:`~annotation.models.LabelVersion` (connected in ``apps.py``) hears them all,
so a new way of making versions is heard without a line here.

The message (``label_version_state``)::

    {"type": "label_version", "volume": 7, "name": "v5", "number": 5, "parent": "v4",
     "source": "edit", "by": "bob", "created_at": "...", "n_labels": 41,
     "what": "bob split nucleus 12 into 12, 42", "correction": {"id": 9, "type": "split",
     "action": "edit" | "undo" | "redo" | "revert", "nucleus_ids": [12], "new_ids": [12, 42],
     "bbox": [...]} | null}

Presence (who has the volume open) is the consumer's own traffic on the same group: see
``consumers.VolumeConsumer``.

A volume import (``VolumeImportJob``) is a kind of job: the shared machinery sends its state
(:mod:`ezquant_web.jobs.events`) with the fields :func:`import_job_fields` adds, on its own
group (``ws/import-jobs/<id>/``); ``AnnotationConfig.ready()`` registers it.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

__all__ = ["import_job_fields", "import_job_group", "import_job_groups", "label_version_publish", "label_version_saved",
           "label_version_state", "volume_live_group"]


def volume_live_group(volume_id: int) -> str:
    return f"volume.{volume_id}.live"


def import_job_group(job_id: int) -> str:
    return f"importjob.{job_id}"


def import_job_fields(job) -> dict[str, Any]:
    """A volume import's own state fields (its ``volume`` read with it)."""
    return {"project": job.project_id, "file_name": job.file_name, "file_bytes": job.file_bytes,
            "volume": job.volume_id, "volume_name": job.volume.name if job.volume_id else None}


def import_job_groups(state: dict[str, Any]) -> list[str]:
    return [import_job_group(state["id"])]


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids) or "none"


def _what(version, correction, action: str, by: str | None) -> str:
    """One sentence saying who made the version and how."""
    who = by or "the server"
    if correction is not None:
        kind = correction.correction_type
        if action == "undo":
            return f"{who} undid a {kind} of nucleus {_ids(correction.new_ids)}"
        if action == "revert":
            author = correction.created_by.get_username() if correction.created_by_id else "someone"
            return (f"{who} rejected {author}'s {kind} of nucleus {_ids(correction.nucleus_ids or correction.new_ids)} "
                    "and took it back out of the labels")
        # The kind's own phrase (segmentation.core.editing.EditKind.done).
        phrase = correction.kind.done or f"made a {kind} correction of nucleus {{after}}"
        done = phrase.format(before=_ids(correction.nucleus_ids),
                             after=_ids(correction.new_ids or correction.nucleus_ids))
        return f"{who} {'redid: ' if action == 'redo' else ''}{done}"
    if version.source == "segmentation":
        return f"a segmentation{' by ' + by if by else ''} made new labels" + (
            f" ({version.model_version.split(' ')[0]})" if version.model_version else "")
    if version.source == "upload":
        return f"{who} uploaded labels"
    return f"{who} made a new label version ({version.source})"


def label_version_state(version) -> dict[str, Any]:
    """What a viewer is told of a new label version (module docstring); reads its correction."""
    from annotation.models import Correction

    correction, action = None, ""
    found = Correction.objects.filter(result_version=version).first()
    if found is not None:
        correction, action = found, ("redo" if found.redo_of_id else "edit")
    else:
        found = Correction.objects.filter(undone_version=version).first()
        if found is not None:
            correction, action = found, "undo"
        else:
            found = Correction.objects.filter(reverted_version=version).first()
            if found is not None:
                correction, action = found, "revert"
    by = version.created_by.get_username() if version.created_by_id else None
    return {
        "type": "label_version",
        "volume": version.volume_id,
        "name": version.name,
        "number": version.number,
        "parent": version.parent.name if version.parent_id else None,
        "source": version.source,
        "by": by,
        "created_at": version.created_at.isoformat() if version.created_at else None,
        "n_labels": version.n_labels,
        "what": _what(version, correction, action, by),
        "correction": None if correction is None else {
            "id": correction.id, "type": correction.correction_type, "action": action,
            "nucleus_ids": correction.nucleus_ids, "new_ids": correction.new_ids, "bbox": correction.bbox},
    }


def _send(version_id: int) -> None:
    from annotation.models import LabelVersion

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        version = LabelVersion.objects.select_related("created_by", "parent").filter(id=version_id).first()
        if version is None:
            return
        state = label_version_state(version)
        async_to_sync(layer.group_send)(volume_live_group(state["volume"]),
                                        {"type": "label_version.event", "state": state})
    except Exception:  # a lost event must never fail an edit: the rows stay the truth
        logger.exception("could not publish label version %s", version_id)


def label_version_publish(version) -> None:
    """Tell the volume's open viewers of ``version`` once the transaction commits. The message
    is built then, so it names the correction that the same transaction recorded."""
    version_id = version.id
    transaction.on_commit(lambda: _send(version_id))


def label_version_saved(sender, instance, created: bool, **kwargs) -> None:
    """``post_save`` receiver of ``LabelVersion``: versions are only ever created."""
    if created and not kwargs.get("raw"):
        label_version_publish(instance)
