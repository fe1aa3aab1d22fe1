import asyncio
import logging
import secrets

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from annotation import selectors
from annotation.models import Volume

logger = logging.getLogger(__name__)

# How long /healthz waits for its own message to come back through the channel layer.
_CHANNEL_TIMEOUT_S = 2.0


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/home.html", {"version": settings.VERSION})


@login_required
@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    """The user's projects and their volumes, each linked to its viewer."""
    volumes = Volume.objects.annotate(n_label_versions=Count("label_versions")).order_by("id")
    projects = selectors.project_list(user=request.user).prefetch_related(Prefetch("volumes", queryset=volumes))
    return render(request, "frontend/projects.html", {"version": settings.VERSION, "projects": projects})


@login_required
@require_GET
def volume_viewer(request: HttpRequest, volume_id: int) -> HttpResponse:
    """The viewer of one volume: the page is a shell, the browser does the rest through the
    REST API and the tiles (``frontend/src/viewer``). 404 for a volume the user may not see,
    as in the API."""
    try:
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
    except Volume.DoesNotExist:
        raise Http404("no such volume") from None
    versions = [v.name for v in selectors.label_version_list(volume=volume)]
    config = {
        "volume": {
            "id": volume.id, "name": volume.name, "project": volume.project.name, "shape": list(volume.shape),
            "dtype": volume.dtype, "voxel_size": list(volume.voxel_size),
            "contrast_limits": list(volume.contrast_limits), "level_shapes": [list(s) for s in volume.level_shapes],
        },
        "label_versions": versions,
        "head": versions[-1] if versions else None,
        "api": reverse("volume-detail", kwargs={"volume_id": volume.id}).rsplit("volumes/", 1)[0],
        "websocket": f"/ws/volumes/{volume.id}/jobs/",
        "csrf_token": get_token(request),
        "user": request.user.get_username(),
    }
    return render(request, "frontend/viewer.html", {"version": settings.VERSION, "volume": volume,
                                                    "viewer_config": config})


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
