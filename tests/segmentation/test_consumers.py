"""The job WebSocket (``ws/jobs/<id>/``, ``ws/volumes/<id>/jobs/``): members get the persisted
state, then every change until the end; eve gets 4403 and anonymous callers 4401."""

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from annotation.models import LabelVersion
from ezquant_web.routing import websocket_urlpatterns
from segmentation.core.modelzoo import DEFAULT_MODEL
from segmentation.services import segmentation_job_create, segmentation_job_run

from .conftest import FAST_PARAMS


def _communicator(path, user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    return communicator


async def _close_code(communicator) -> int | None:
    """The code a refused connection is closed with after its handshake was accepted (a close
    before the accept would reach a browser as an HTTP 403 with no code at all)."""
    connected, _ = await communicator.connect()
    assert connected, "refusals accept the handshake, then close with a code"
    message = await communicator.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message.get("code")


def _run_in_thread(job_id):
    from django.db import connection

    try:
        return segmentation_job_run(job_id=job_id)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["ws/jobs/{job}/", "ws/volumes/{volume}/jobs/"])
def test_it_streams_progress_and_the_end(volume_2d, alice, ivy, path):
    async_to_sync(_streams)(volume_2d, alice, ivy, path)


async def _streams(volume_2d, alice, ivy, path):
    job = await database_sync_to_async(segmentation_job_create)(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    communicator = _communicator(path.format(job=job.id, volume=volume_2d.id), alice)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert (first["type"], first["id"], first["status"], first["progress"]) == ("job", job.id, "queued", 0.0)

    # The worker in another thread, as the embedded worker runs beside the event loop.
    run = sync_to_async(_run_in_thread, thread_sensitive=False)(job.id)
    task = asyncio.ensure_future(run)
    states = []
    while not states or states[-1]["status"] not in ("succeeded", "failed", "cancelled"):
        states.append(await communicator.receive_json_from(timeout=60))
    assert await task == "succeeded"
    await communicator.disconnect()

    progress = [s["progress"] for s in states if s["status"] == "running"]
    assert len(progress) >= 2 and progress == sorted(progress)
    assert states[-1]["progress"] == 1.0 and states[-1]["label_version"] == "v1"
    assert states[-1]["model_version"].startswith(DEFAULT_MODEL)
    assert await database_sync_to_async(LabelVersion.objects.count)() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["ws/jobs/{job}/", "ws/volumes/{volume}/jobs/"])
def test_it_refuses_eve_and_anonymous(volume_2d, ivy, eve, path):
    async_to_sync(_refuses)(volume_2d, ivy, eve, path)


async def _refuses(volume_2d, ivy, eve, path):
    job = await database_sync_to_async(segmentation_job_create)(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    for user, code in ((eve, 4403), (AnonymousUser(), 4401)):
        communicator = _communicator(path.format(job=job.id, volume=volume_2d.id), user)
        assert await _close_code(communicator) == code
    missing = _communicator("ws/jobs/999999/", ivy)
    assert await _close_code(missing) == 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["ws/training-jobs/{job}/", "ws/projects/{project}/training/"])
def test_it_streams_trainings_to_staff_only(volume_2d, alice, ivy, ada, eve, path):
    async_to_sync(_training_roles)(volume_2d, alice, ivy, ada, eve, path)


async def _training_roles(volume_2d, alice, ivy, ada, eve, path):
    from segmentation.models import TrainingJob

    job = await database_sync_to_async(TrainingJob.objects.create)(project=volume_2d.project, created_by=ada,
                                                                   params={}, correction_ids=[1])
    where = path.format(job=job.id, project=volume_2d.project_id)
    for user, expected in ((alice, 4403), (eve, 4403), (AnonymousUser(), 4401)):
        assert await _close_code(_communicator(where, user)) == expected
    for user in (ivy, ada):  # instructors watch, admins watch (and start and cancel through the API)
        communicator = _communicator(where, user)
        assert (await communicator.connect())[0] is True
        state = await communicator.receive_json_from(timeout=5)
        assert (state["kind"], state["id"], state["status"], state["loss"]) == ("training", job.id, "queued", [])
        await communicator.disconnect()
