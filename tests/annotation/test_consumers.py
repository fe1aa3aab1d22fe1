"""The live socket of a volume (``ws/volumes/<id>/live/``): who else has it open, and the label
versions others make, told once they commit; eve gets 4403 and anonymous callers 4401."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from annotation.models import Nucleus
from annotation.services import correction_create, correction_undo
from ezquant_web.routing import websocket_urlpatterns


def _communicator(volume, user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"ws/volumes/{volume.id}/live/")
    communicator.scope["user"] = user
    return communicator


async def _open(volume, user):
    communicator = _communicator(volume, user)
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "hello" and hello["you"]["user"] == user.username
    return communicator, hello


async def _next(communicator, kind: str, timeout: float = 10) -> dict:
    """The next message of ``kind`` (presence, label_version), skipping others."""
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


@pytest.mark.django_db(transaction=True)
def test_it_tells_who_joins_and_leaves_and_each_committed_edit(labels_v1, alice, bob, ivy):
    async_to_sync(_live)(labels_v1, alice, bob, ivy)


async def _live(labels_v1, alice, bob, ivy):
    volume = labels_v1.volume
    first, hello = await _open(volume, alice)
    assert hello["latest"] == "v1"
    second, _ = await _open(volume, bob)

    joined = await _next(first, "presence")
    assert (joined["action"], joined["user"]) == ("join", "bob")
    here = await _next(second, "presence")
    assert (here["action"], here["user"]) == ("here", "alice")

    # ivy deletes a nucleus (in a thread, as a request would): both viewers hear it, once committed.
    nucleus = await database_sync_to_async(lambda: Nucleus.objects.of(labels_v1)
                                           .order_by("label_id").first())()
    correction = await database_sync_to_async(correction_create)(
        volume=volume, user=ivy, label_version="v1",
        edit={"correction_type": "delete", "nucleus_ids": [nucleus.label_id]})
    for communicator in (first, second):
        event = await _next(communicator, "label_version")
        assert (event["volume"], event["name"], event["parent"], event["source"], event["by"]) == \
            (volume.id, "v2", "v1", "edit", "ivy")
        assert event["correction"] == {"id": correction.id, "type": "delete", "action": "edit",
                                       "nucleus_ids": [nucleus.label_id], "new_ids": [],
                                       "bbox": correction.bbox}
        assert event["what"] == f"ivy deleted nucleus {nucleus.label_id}"

    # An undo is told as one too.
    await database_sync_to_async(correction_undo)(correction=correction, user=ivy, label_version="v2")
    undo = await _next(first, "label_version")
    assert (undo["name"], undo["correction"]["action"]) == ("v3", "undo")
    assert undo["what"].startswith("ivy undid a delete")

    # A ping refreshes presence for the others (a socket not heard from is forgotten).
    await second.send_json_to({"type": "ping"})
    assert (await _next(second, "pong"))["type"] == "pong"
    refreshed = await _next(first, "presence")
    assert (refreshed["action"], refreshed["user"]) == ("here", "bob")

    await second.disconnect()
    left = await _next(first, "presence")
    assert (left["action"], left["user"], left["socket"]) == ("leave", "bob", joined["socket"])
    await first.disconnect()


@pytest.mark.django_db(transaction=True)
def test_it_says_nothing_of_a_rolled_back_version(labels_v1, alice, sample_3d, ivy):
    async_to_sync(_rolled_back)(labels_v1, alice, sample_3d, ivy)


async def _rolled_back(labels_v1, alice, sample_3d, ivy):
    from django.db import transaction

    from annotation.services import label_version_create

    communicator, _ = await _open(labels_v1.volume, alice)

    def make_and_roll_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            label_version_create(volume=labels_v1.volume, labels=sample_3d[1], user=ivy, source="upload")
            raise RuntimeError("roll back")
        label_version_create(volume=labels_v1.volume, labels=sample_3d[1], user=ivy, source="upload")

    await database_sync_to_async(make_and_roll_back)()
    event = await _next(communicator, "label_version")
    # Only the committed one (v2 was written to disk and rolled back: an orphan number).
    assert (event["name"], event["source"], event["what"]) == ("v3", "upload", "ivy uploaded labels")
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
def test_it_refuses_eve_and_anonymous(labels_v1, eve):
    async_to_sync(_refuses)(labels_v1, eve)


async def _refuses(labels_v1, eve):
    for user, code in ((eve, 4403), (AnonymousUser(), 4401)):
        communicator = _communicator(labels_v1.volume, user)
        connected, _ = await communicator.connect()
        assert connected, "refusals accept the handshake, then close with a code"
        message = await communicator.receive_output(timeout=5)
        assert (message["type"], message.get("code")) == ("websocket.close", code)


@pytest.mark.django_db(transaction=True)
def test_it_tells_a_rejection_that_takes_an_edit_back_out(labels_v1, alice, ivy):
    async_to_sync(_revert)(labels_v1, alice, ivy)


async def _revert(labels_v1, alice, ivy):
    from annotation.services import assignment_create, correction_review

    volume = labels_v1.volume
    await database_sync_to_async(assignment_create)(project=volume.project, volume=volume, student=alice,
                                                    assigned_by=ivy)
    nucleus = await database_sync_to_async(lambda: Nucleus.objects.of(labels_v1)
                                           .order_by("label_id").first())()
    correction = await database_sync_to_async(correction_create)(
        volume=volume, user=alice, label_version="v1",
        edit={"correction_type": "delete", "nucleus_ids": [nucleus.label_id]})
    communicator, hello = await _open(volume, ivy)
    assert hello["latest"] == "v2"
    await database_sync_to_async(correction_review)(correction=correction, reviewer=ivy, verdict="reject",
                                                    comment="that one is a real nucleus")
    event = await _next(communicator, "label_version")
    assert (event["name"], event["source"], event["by"], event["correction"]["action"]) == ("v3", "revert", "ivy",
                                                                                           "revert")
    assert event["what"] == f"ivy rejected alice's delete of nucleus {nucleus.label_id} and took it back out of " \
                            "the labels"
    await communicator.disconnect()


def _import_in_thread(job_id):
    from django.db import connection

    from annotation.services import volume_import_job_run

    try:
        return volume_import_job_run(job_id=job_id)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_it_streams_an_imports_progress_to_staff_only(project, ivy, alice, eve, tiff_3d, tmp_path):
    async_to_sync(_import_progress)(project, ivy, alice, eve, tiff_3d, tmp_path)


async def _import_progress(project, ivy, alice, eve, tiff_3d, tmp_path):
    import asyncio
    import shutil

    from asgiref.sync import sync_to_async

    from annotation.services import volume_import_job_create

    upload = tmp_path / "tmp123.upload"
    shutil.copy(tiff_3d, upload)
    job = await database_sync_to_async(volume_import_job_create)(project=project, user=ivy, upload_path=upload,
                                                                 file_name="stack.tif")
    path = f"ws/import-jobs/{job.id}/"
    for user in (alice, eve):
        refused = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
        refused.scope["user"] = user
        assert (await refused.connect())[0]
        assert (await refused.receive_output(timeout=5)).get("code") == 4403
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = ivy
    assert (await communicator.connect())[0]
    first = await communicator.receive_json_from(timeout=5)
    assert (first["kind"], first["status"], first["file_name"]) == ("import", "queued", "stack.tif")
    task = asyncio.ensure_future(sync_to_async(_import_in_thread, thread_sensitive=False)(job.id))
    states = [first]
    while states[-1]["status"] not in ("succeeded", "failed", "cancelled"):
        states.append(await communicator.receive_json_from(timeout=60))
    assert await task == "succeeded"
    assert states[-1]["progress"] == 1.0 and states[-1]["volume_name"] == "stack.tif"
    assert [s["progress"] for s in states] == sorted(s["progress"] for s in states)
    await communicator.disconnect()
