"""The base of every job WebSocket: authorise, join the group, send the persisted states, relay.

A kind's socket derives :class:`JobStateConsumer` and says which group a URL joins
(``group_for``) and which states a user may read first (``states_for``: ``None`` refuses).
Anonymous connections are closed with 4401, users who may not listen with 4403. Each message is
a job's state (``ezquant_web.jobs.events.job_state``), first the persisted one, then each change.

A refusal accepts the handshake and then closes with its code: a close before the accept is
an HTTP 403 answer to the handshake, which no browser shows to the page (it sees 1006).
"""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

__all__ = ["CLOSE_FORBIDDEN", "CLOSE_UNAUTHENTICATED", "JobStateConsumer"]

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class JobStateConsumer(AsyncJsonWebsocketConsumer):
    """Job states on one group; a subclass names the group and the first states."""

    groups: list[str] = []

    def group_for(self, kwargs) -> str:  # pragma: no cover - each socket names its own
        """The channel group the URL's ``kwargs`` listen to."""
        raise NotImplementedError

    async def states_for(self, user, kwargs) -> list | None:  # pragma: no cover - each socket reads its own
        """The persisted states to send first, or ``None`` when the user may not listen."""
        raise NotImplementedError

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
