"""What a volume's viewers are told of its label versions when no ASGI server's loop runs the
request (the test client, a command, a job worker): sent on the process' background loop, after
the answer, in the order the versions were made; nothing for a version rolled back. The socket's
own path, on the server's loop, is tests/annotation/test_consumers.py."""

import threading

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from annotation import events
from annotation.models import Nucleus
from annotation.services import correction_create, correction_redo, correction_undo

pytestmark = pytest.mark.django_db(transaction=True)


def _listen(group):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return layer, channel


def _waiting(layer, channel) -> list[dict]:
    """The messages queued for ``channel`` now, oldest first (without waiting for more)."""
    queue = layer.channels.get(channel)
    out = []
    while queue is not None and not queue.empty():
        out.append(queue.get_nowait()[1])
    return out


def test_it_tells_each_version_in_order_from_the_background_loop(labels_v1, ivy):
    volume = labels_v1.volume
    layer, channel = _listen(events.volume_live_group(volume.id))
    nuclei = list(Nucleus.objects.of(labels_v1).order_by("label_id")[:2])
    first = correction_create(volume=volume, user=ivy, label_version="v1",
                              edit={"correction_type": "delete", "nucleus_ids": [nuclei[0].label_id]})
    correction_undo(correction=first, user=ivy, label_version="v2")
    correction_redo(correction=first, user=ivy, label_version="v3")
    second = correction_create(volume=volume, user=ivy, label_version="v4",
                               edit={"correction_type": "delete", "nucleus_ids": [nuclei[1].label_id]})
    events.label_versions_sent()
    messages = _waiting(layer, channel)
    assert [m["type"] for m in messages] == ["label_version.event"] * 4
    states = [m["state"] for m in messages]
    assert [(s["name"], s["parent"], s["correction"]["action"]) for s in states] == [
        ("v2", "v1", "edit"), ("v3", "v2", "undo"), ("v4", "v3", "redo"), ("v5", "v4", "edit")]
    assert states[3]["correction"]["id"] == second.id
    assert states[0]["what"] == f"ivy deleted nucleus {nuclei[0].label_id}"
    # Sent by the background thread, not by the thread that committed.
    assert any(t.name == "label-version-events" and t.is_alive() for t in threading.enumerate())
    assert events._loop() is events._BACKGROUND[1]


def test_it_sends_nothing_for_a_version_rolled_back(labels_v1, sample_3d, ivy):
    from django.db import transaction

    from annotation.services import label_version_create

    layer, channel = _listen(events.volume_live_group(labels_v1.volume.id))
    with pytest.raises(RuntimeError), transaction.atomic():
        label_version_create(volume=labels_v1.volume, labels=sample_3d[1], user=ivy, source="upload")
        raise RuntimeError("roll back")
    label_version_create(volume=labels_v1.volume, labels=sample_3d[1], user=ivy, source="upload")
    events.label_versions_sent()
    assert [m["state"]["name"] for m in _waiting(layer, channel)] == ["v3"]
