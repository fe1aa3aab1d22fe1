"""The corrections API: POST an edit of the latest version, list and read records, undo and
redo; 409 for an edit of a stale version, 400 with the reason for a bad one."""

import pytest
from django.urls import reverse

from annotation.models import Correction, LabelVersion, Nucleus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def assigned(labels_v1, ivy, alice, bob):
    """The stack is assigned to both students: they may edit it."""
    from annotation.services import assignment_create

    volume = labels_v1.volume
    return [assignment_create(project=volume.project, volume=volume, student=s, assigned_by=ivy) for s in (alice, bob)]


def _post(client, volume, body):
    return client.post(reverse("correction-list", args=[volume.id]), body, format="json")


def test_it_records_an_edit_and_moves_the_head(labels_v1, client_for, alice):
    volume = labels_v1.volume
    n = Nucleus.objects.of(labels_v1).order_by("-volume_voxels").first()
    client = client_for(alice)
    response = _post(client, volume, {"label_version": "v1", "type": "split", "nucleus_ids": [n.label_id],
                                      "z": n.z_min, "line": [[n.y_min - 2, n.centroid_x], [n.y_max + 2, n.centroid_x]]})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["type"], body["label_version"], body["result_version"], body["created_by"]) == (
        "split", "v1", "v2", "alice")
    assert body["nucleus_ids"] == [n.label_id] and len(body["new_ids"]) == 2 and body["undone"] is False
    assert body["model_version"] == "ezq_nuclei_v1" and len(body["bbox"]) == 6
    assert body["review_status"] == "pending"  # a student's edit waits for review
    assert client.get(reverse("volume-detail", args=[volume.id])).json()["latest_label_version"] == "v2"
    listed = client.get(reverse("correction-list", args=[volume.id])).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]
    assert client.get(reverse("correction-detail", args=[body["id"]])).json() == body
    nuclei = client.get(reverse("nucleus-list", args=[volume.id, "v2"]), {"page_size": 1000}).json()
    assert nuclei["count"] == Nucleus.objects.of(labels_v1).count() + 1


def test_it_answers_409_to_an_edit_of_a_stale_version(labels_v1, client_for, alice, bob):
    volume = labels_v1.volume
    first, second = Nucleus.objects.of(labels_v1).order_by("label_id")[:2]
    assert _post(client_for(alice), volume, {"label_version": "v1", "type": "delete",
                                             "nucleus_ids": [first.label_id]}).status_code == 201
    response = _post(client_for(bob), volume, {"label_version": "v1", "type": "delete",
                                               "nucleus_ids": [second.label_id]})
    assert response.status_code == 409
    assert response.json()["extra"] == {"label_version": "v1", "current_label_version": "v2"}
    assert "no longer the latest" in response.json()["message"]
    assert LabelVersion.objects.count() == 2


def test_it_undoes_and_redoes(labels_v1, client_for, alice):
    volume = labels_v1.volume
    client = client_for(alice)
    n = Nucleus.objects.of(labels_v1).first()
    made = _post(client, volume, {"label_version": "v1", "type": "delete", "nucleus_ids": [n.label_id]}).json()
    stale = client.post(reverse("correction-undo", args=[made["id"]]), {"label_version": "v1"}, format="json")
    assert stale.status_code == 409
    undo = client.post(reverse("correction-undo", args=[made["id"]]), {"label_version": "v2"}, format="json")
    assert undo.status_code == 201, undo.json()
    assert undo.json()["result_version"] == "v3" and undo.json()["correction"]["undone_version"] == "v3"
    assert LabelVersion.objects.get(name="v3").nuclei.filter(label_id=n.label_id).exists()
    redo = client.post(reverse("correction-redo", args=[made["id"]]), {"label_version": "v3"}, format="json")
    assert redo.status_code == 201
    assert redo.json()["result_version"] == "v4" and redo.json()["correction"]["redo_of"] == made["id"]
    assert not LabelVersion.objects.get(name="v4").nuclei.filter(label_id=n.label_id).exists()
    assert Correction.objects.count() == 2


@pytest.mark.parametrize("body, status, field", [
    ({"type": "delete", "nucleus_ids": [1]}, 400, "label_version"),
    ({"label_version": "v1", "type": "paint"}, 400, "type"),
    ({"label_version": "v1", "type": "add", "polygon": [[1, 2, 3]]}, 400, "polygon"),
    ({"label_version": "v1", "type": "modify", "nucleus_ids": [1], "stroke": {"points": [[5, 5]], "size": 3}},
     400, None),
])
def test_it_refuses_malformed_edits(labels_v1, client_for, alice, body, status, field):
    response = _post(client_for(alice), labels_v1.volume, body)
    assert response.status_code == status
    if field:
        assert field in response.json()["extra"]["fields"]
    assert LabelVersion.objects.count() == 1


def test_it_refuses_eve_an_edit(labels_v1, client_for, eve):
    response = _post(client_for(eve), labels_v1.volume, {"label_version": "v1", "type": "delete", "nucleus_ids": [1]})
    assert response.status_code == 404 and LabelVersion.objects.count() == 1


def test_it_draws_the_uncertainty_heat_map(labels_v1, client_for, alice, sample_3d):
    import io

    import numpy as np
    from PIL import Image

    response = client_for(alice).get(reverse("uncertainty-tile", kwargs={
        "volume_id": labels_v1.volume_id, "version": "v1", "level": 0, "z": 4, "ty": 0, "tx": 0, "fmt": "png"}))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    rgba = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))
    labels = sample_3d[1][4, :256, :256]
    scored = {n.label_id for n in Nucleus.objects.of(labels_v1).filter(uncertainty__isnull=False)}
    opaque = rgba[..., 3] > 0
    assert np.array_equal(opaque, np.isin(labels, sorted(scored)))  # scored nuclei coloured, the rest clear
    assert opaque.any() and (~opaque & (labels > 0)).any()
