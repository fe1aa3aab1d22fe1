"""The only module of the annotation app that talks to the channel layer: what the open viewers
of a volume hear about its label versions.

Every new label version of a volume (an edit, an undo or redo, a review's revert, an upload, a
segmentation) is told to the volume's group (``ws/volumes/<id>/live/``, ``consumers.py``) once
the transaction that made it commits (``transaction.on_commit``): a viewer never hears of a
version the database may still roll back. The version rows are created by several services
(``volumes``, ``corrections``, ``reviews``, ``segmentation.services``); a ``post_save``
receiver on :class:`~annotation.models.LabelVersion` (connected in ``apps.py``) hears them all,
so a new way of making versions is heard without a line here.

The request does not wait for the channel layer: on commit, the message is built (it reads the
rows, in the committing thread) and handed to an event loop that sends the volume's messages one
after another, in the order they were handed over, while the request answers. The loop is the
ASGI server's own when the thread serves one of its requests (as ``async_to_sync`` would pick:
the in-memory layer's queues belong to that loop), else one background thread's loop per
process (the test client, commands, a job worker). Sending there cost a request 14-17 ms
(``async_to_sync`` made a thread and a loop per message). A message not sent when the process
ends is lost, as one the layer fails to send always was: the rows stay the truth, and a viewer
reloads the latest version when it reconnects.

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

import asyncio
import collections
import logging
import os
import threading
import weakref
from typing import Any

from asgiref.sync import SyncToAsync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

__all__ = ["import_job_fields", "import_job_group", "import_job_groups", "label_version_publish", "label_version_saved",
           "label_version_state", "label_versions_sent", "volume_live_group"]


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
    from django.db.models import Q

    from annotation.models import Correction

    # One query for the three ways a correction names a version (each 3-5 ms of ORM work on a
    # loaded machine when asked one at a time), in that order of precedence.
    found = sorted(Correction.objects.filter(Q(result_version=version) | Q(undone_version=version)
                                             | Q(reverted_version=version)).select_related("created_by").order_by(),
                   key=lambda c: -c.id)  # as .first() under the model's ordering, newest first
    correction, action = None, ""
    for field, name in (("result_version_id", None), ("undone_version_id", "undo"), ("reverted_version_id", "revert")):
        match = next((c for c in found if getattr(c, field) == version.id), None)
        if match is not None:
            correction, action = match, name or ("redo" if match.redo_of_id else "edit")
            break
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


class _InOrder:
    """Messages sent on one event loop one after another, in the order submitted (from any
    thread): one drain task at a time awaits each ``group_send`` before the next, so a volume's
    viewers hear its versions in the order they were made, on the Redis layer too."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: collections.deque = collections.deque()
        self.draining: asyncio.Future | None = None

    def submit(self, layer, group: str, message: dict) -> None:
        self.loop.call_soon_threadsafe(self._push, layer, group, message)

    def _push(self, layer, group: str, message: dict) -> None:  # on the loop, as the rest
        self.pending.append((layer, group, message))
        if self.draining is None:
            self.draining = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.pending:
                layer, group, message = self.pending.popleft()
                try:
                    await layer.group_send(group, message)
                except Exception:  # a lost event must never stop the next: the rows stay the truth
                    logger.exception("could not publish label version %s", message["state"]["name"])
        finally:
            self.draining = None

    async def sent(self) -> None:
        """Once every message submitted before this call is sent."""
        while self.draining is not None:
            await asyncio.shield(self.draining)


_SENDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SENDERS_LOCK = threading.Lock()
_BACKGROUND: tuple[int, asyncio.AbstractEventLoop] | None = None


def _loop() -> asyncio.AbstractEventLoop:
    """The ASGI server's loop when this thread runs one of its requests (asgiref's
    ``SyncToAsync`` marks its threads so, for ``async_to_sync``), else this process' background
    loop (started on first use, and again in a forked child)."""
    global _BACKGROUND
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid():
        loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
        if loop is not None and not loop.is_closed():
            return loop
    with _SENDERS_LOCK:
        if _BACKGROUND is None or _BACKGROUND[0] != os.getpid() or _BACKGROUND[1].is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="label-version-events", daemon=True).start()
            _BACKGROUND = (os.getpid(), loop)
        return _BACKGROUND[1]


def _sender(loop: asyncio.AbstractEventLoop) -> _InOrder:
    with _SENDERS_LOCK:
        sender = _SENDERS.get(loop)
        if sender is None:
            sender = _SENDERS[loop] = _InOrder(loop)
        return sender


def _send(version) -> None:
    """On commit: build the message (reading the committed rows) and hand it over (module docstring)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        state = label_version_state(version)
        _sender(_loop()).submit(layer, volume_live_group(state["volume"]),
                                {"type": "label_version.event", "state": state})
    except Exception:  # a lost event must never fail an edit: the rows stay the truth
        logger.exception("could not publish label version %s", version.id)


def label_versions_sent(timeout: float = 10.0) -> None:
    """Wait until the messages this thread's loop was handed (:func:`_loop`) are sent: for a
    command or a test that reads the layer next. Not from a thread running an event loop."""
    loop = _loop()
    asyncio.run_coroutine_threadsafe(_sender(loop).sent(), loop).result(timeout)


def label_version_publish(version) -> None:
    """Tell the volume's open viewers of ``version`` once the transaction commits. The message
    is built then, so it names the correction that the same transaction recorded; the version
    is the row as created (versions never change), with the parent and user it was made with."""
    transaction.on_commit(lambda: _send(version))


def label_version_saved(sender, instance, created: bool, **kwargs) -> None:
    """``post_save`` receiver of ``LabelVersion``: versions are only ever created."""
    if created and not kwargs.get("raw"):
        label_version_publish(instance)
