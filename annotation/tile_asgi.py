"""Tiles under ASGI without Django's middleware: the same answers, a third of the time.

Under ASGI every Django request passes each middleware's ``process_request`` and
``process_response`` through ``sync_to_async``: about ten thread hops, ~3 ms per request on the
bench machine, more than reading and encoding a 256 x 256 tile (~2 ms). A viewer asks for dozens
of tiles per pan, so :class:`TileRouter` sits in front of Django in ``ezquant_web/asgi.py`` and
answers the tile routes itself (XY, XZ and YZ):

* it resolves the path with Django's own URL configuration, so the routes stay declared once
  (``annotation/urls.py``); anything else, and any method but GET, goes on to Django untouched;
* it does what the middleware would have done for such a request: checks the Host header
  against ``ALLOWED_HOSTS`` (400 otherwise), reads the session cookie and authenticates with
  ``django.contrib.auth.get_user`` (session hash checked as usual), adds
  ``X-Content-Type-Options: nosniff``; CSRF does not apply to GET;
* the work (authentication, the one query, the zarr read and the encoding) runs in one hop to
  a small pool of threads kept for tiles. Database connections in those threads are closed or
  kept by ``close_old_connections()`` around each tile, as Django does around each request,
  so ``CONN_MAX_AGE`` and health checks apply as everywhere else.

:func:`annotation.tile_views.answer_tile` gives the answers, so the Django views and this router
cannot disagree.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from types import SimpleNamespace

from django.conf import settings
from django.db import close_old_connections
from django.http import QueryDict
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve

from annotation import tile_views

__all__ = ["TileRouter"]

_TILE_VIEWS = {tile_views.image_tile: "image", tile_views.label_tile: "labels",
               tile_views.uncertainty_tile: "uncertainty"}


def _allowed_host(host: str) -> bool:
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:  # as HttpRequest.get_host
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def _session_user_id(cookies: str | None):
    """A callable giving the id of the user signed in with the session cookie, or ``None``."""

    def user_id() -> int | None:
        key = parse_cookie(cookies or "").get(settings.SESSION_COOKIE_NAME)
        if not key:
            return None
        from django.contrib.auth import get_user

        store = import_module(settings.SESSION_ENGINE).SessionStore(key)
        user = get_user(SimpleNamespace(session=store))
        return user.id if user.is_authenticated else None

    return user_id


def _answer(kwargs: dict, query: str, headers: dict[str, str]) -> tile_views.TileAnswer:
    close_old_connections()
    try:
        if not _allowed_host(headers.get("host", "")):
            return tile_views.TileAnswer(400, {"Content-Type": "application/json"},
                                         b'{"message": "Invalid Host header.", "extra": {}}')
        tile = tile_views.TileRequest(
            volume_id=kwargs["volume_id"], version=kwargs.get("version"), level=kwargs["level"], z=kwargs["z"],
            ty=kwargs["ty"], tx=kwargs["tx"], fmt=kwargs["fmt"], layer=kwargs["layer"],
            plane=kwargs.get("plane", "xy"))
        return tile_views.answer_tile(tile, query=QueryDict(query), authorization=headers.get("authorization"),
                                      session_user_id=_session_user_id(headers.get("cookie")),
                                      if_none_match=headers.get("if-none-match"))
    finally:
        close_old_connections()


class TileRouter:
    """ASGI middleware: GET requests for tiles are answered here, everything else by ``app``."""

    def __init__(self, app, *, threads: int | None = None) -> None:
        self.app = app
        self._threads = threads or min(8, (os.cpu_count() or 1) + 2)
        self._executor: ThreadPoolExecutor | None = None

    def _match(self, scope) -> dict | None:
        if scope["type"] != "http" or scope.get("method") != "GET":
            return None
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if "/tiles/" not in path and "/uncertainty/" not in path:  # cheap test first: most requests are not tiles
            return None
        try:
            match = resolve(path)
        except Resolver404:
            return None
        layer = _TILE_VIEWS.get(match.func)
        return None if layer is None else {**match.kwargs, "layer": layer}

    async def __call__(self, scope, receive, send) -> None:
        kwargs = self._match(scope)
        if kwargs is None:
            return await self.app(scope, receive, send)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="tiles")
        headers = {}
        for name, value in scope.get("headers", []):
            name = name.decode("latin-1").lower()
            value = value.decode("latin-1")
            if name in headers:  # a repeated header: cookies join with "; ", others with ", "
                value = headers[name] + ("; " if name == "cookie" else ", ") + value
            headers[name] = value
        query = scope.get("query_string", b"").decode("utf-8", "replace")
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self._executor, _answer, kwargs, query, headers)
        out = [(b"content-length", str(len(answer.body)).encode()), (b"x-content-type-options", b"nosniff")]
        out += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        await send({"type": "http.response.body", "body": answer.body})
