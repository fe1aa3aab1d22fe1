"""WebSockets of the annotation app. ``ws/import-jobs/<id>/``: a volume import's progress
(``ImportJobConsumer``, on the job sockets' base ``ezquant_web.jobs.consumers.JobStateConsumer``).

The live socket of a volume's open viewers, ``ws/volumes/<volume_id>/live/``: the label versions
others make as they commit (``events.label_version_state``) and who else has the volume open.

Authorise (4401 anonymous, 4403 not a member of the volume's project, as the job socket),
join the volume's group, then relay. The first message is ``{"type": "hello", "you": {...},
"latest": "v4"}``: the latest version when the socket opened, so a viewer that reconnects after
a drop learns what it missed.

Presence needs no table: each socket announces itself to the group when it opens
(``presence.join``), every socket already there answers the newcomer alone
(``presence.here``), and a closing socket says ``presence.leave``. A socket whose server
process died says nothing, so the browser pings every 15 s, each ping is announced again
(``presence.here`` to the group) and viewers forget a socket not heard from for 45 s. The
client sees ``{"type": "presence", "action": "join" | "here" | "leave", "user": "bob",
"socket": "<id>"}``; its own socket is never reported to it.
"""

from __future__ import annotations

import secrets

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from annotation import events
from ezquant_web.jobs.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, JobStateConsumer


@database_sync_to_async
def _latest_version(user, volume_id: int) -> tuple[bool, str | None]:
    """(may the user open the volume, its latest version's name)."""
    from annotation import selectors
    from annotation.models import Volume

    try:
        volume = selectors.volume_get(user=user, volume_id=volume_id)
    except Volume.DoesNotExist:
        return False, None
    latest = volume.label_versions.order_by("-number").values_list("name", flat=True).first()
    return True, latest


class VolumeConsumer(AsyncJsonWebsocketConsumer):
    """``ws/volumes/<volume_id>/live/``: label versions and presence (module docstring)."""

    group = ""
    username = ""
    # A socket's public id: never the channel name, which would let a client write to others.
    socket_id = ""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        volume_id = int(self.scope["url_route"]["kwargs"]["volume_id"])
        group = events.volume_live_group(volume_id)
        # Join first, read second: a version committed in between is heard as well.
        await self.channel_layer.group_add(group, self.channel_name)
        allowed, latest = await _latest_version(user, volume_id)
        if not allowed:
            await self.channel_layer.group_discard(group, self.channel_name)
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.group, self.username, self.socket_id = group, user.get_username(), secrets.token_hex(8)
        await self.accept()
        await self.send_json({"type": "hello", "volume": volume_id, "latest": latest,
                              "you": {"user": self.username, "socket": self.socket_id}})
        await self._announce("presence.join", reply_to=self.channel_name)

    async def _refuse(self, code: int) -> None:
        await self.accept()  # then close: a refusal before the accept reaches the page as 1006
        await self.close(code=code)

    async def _announce(self, kind: str, **extra) -> None:
        await self.channel_layer.group_send(self.group, {"type": kind, "user": self.username,
                                                         "socket": self.socket_id, **extra})

    async def disconnect(self, code):
        if not self.group:
            return
        await self._announce("presence.leave")
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping" and self.group:
            await self._announce("presence.here")
            await self.send_json({"type": "pong"})

    # -- group events -------------------------------------------------------------------------

    async def _tell(self, event, action: str) -> None:
        if event["socket"] != self.socket_id:
            await self.send_json({"type": "presence", "action": action, "user": event["user"],
                                  "socket": event["socket"]})

    async def presence_join(self, event):
        if event["socket"] == self.socket_id or not self.socket_id:
            return
        await self._tell(event, "join")
        # Tell the newcomer, alone, that this socket is here.
        await self.channel_layer.send(event["reply_to"], {"type": "presence.here", "user": self.username,
                                                          "socket": self.socket_id})

    async def presence_here(self, event):
        await self._tell(event, "here")

    async def presence_leave(self, event):
        await self._tell(event, "leave")

    async def label_version_event(self, event):
        await self.send_json(event["state"])


@database_sync_to_async
def _import_states(user, job_id: int) -> list | None:
    from annotation import roles
    from annotation.models import VolumeImportJob
    from ezquant_web.jobs.events import job_state

    job = (VolumeImportJob.objects.filter(id=job_id, project__memberships__user=user,
                                          project__memberships__role__in=roles.STAFF)
           .select_related("volume").first())
    return None if job is None else [job_state(job)]


class ImportJobConsumer(JobStateConsumer):
    """``ws/import-jobs/<job_id>/``: an import's state, then each change (the project's
    instructors and admins; 4403 for others), as the job socket of a segmentation."""

    def group_for(self, kwargs) -> str:
        return events.import_job_group(int(kwargs["job_id"]))

    async def states_for(self, user, kwargs) -> list | None:
        return await _import_states(user, int(kwargs["job_id"]))
