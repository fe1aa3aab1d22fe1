import asyncio
import logging
import secrets

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

# How long /healthz waits for its own message to come back through the channel layer.
_CHANNEL_TIMEOUT_S = 2.0


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/home.html", {"version": settings.VERSION})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("SELECT 1 did not return 1")


async def _channel_round_trip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured (CHANNEL_LAYERS)")
    channel = await layer.new_channel("healthz")
    nonce = secrets.token_hex(8)
    await layer.send(channel, {"type": "healthz.ping", "nonce": nonce})
    message = await asyncio.wait_for(layer.receive(channel), _CHANNEL_TIMEOUT_S)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned another message")


def _check_channel_layer() -> None:
    async_to_sync(_channel_round_trip)()


_CHECKS = {"database": _check_database, "channel_layer": _check_channel_layer}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness in one: 200 when every dependency answers, 503 otherwise.

    The body says which check failed but not why: the reason (host names, credentials in an
    error message) goes to the log, not to whoever asks.
    """
    body: dict[str, str] = {"status": "ok", "version": settings.VERSION}
    for name, check in _CHECKS.items():
        try:
            check()
        except Exception:
            logger.exception("health check %s failed", name)
            body[name] = "error"
            body["status"] = "error"
        else:
            body[name] = "ok"
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)
