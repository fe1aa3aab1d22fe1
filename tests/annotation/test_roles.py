"""What each role may do (``annotation.roles``), with the user cast: alice and bob students, ivy
the instructor, ada the admin, eve an outsider. Refusals are 403 with a reason for members and
404 for eve; the review, assignment and agreement workflows end to end through the API."""

import io

import numpy as np
import pytest
import tifffile
from django.urls import reverse

from annotation.models import Assignment, AuditEvent, Correction, LabelVersion, Nucleus

pytestmark = pytest.mark.django_db
CAST = ["alice", "bob", "ivy", "ada", "eve"]


def _tiff(array) -> io.BytesIO:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    buffer.seek(0)
    buffer.name = "x.tif"
    return buffer


def _client(client_for, request, name):
    return client_for(request.getfixturevalue(name))


def _largest(version, k=0):
    return Nucleus.objects.of(version).order_by("-volume_voxels")[k]


@pytest.mark.parametrize("user, expected", list(zip(CAST, [403, 403, 201, 201, 404], strict=True)))
def test_it_lets_only_staff_upload_and_segment(labels_v1, client_for, request, sample_3d, user, expected):
    client = _client(client_for, request, user)
    volume = labels_v1.volume
    uploads = [
        client.post(reverse("volume-upload", args=[volume.project_id]), {"file": _tiff(sample_3d[0])},
                    format="multipart"),
        client.post(reverse("label-version-upload", args=[volume.id]), {"file": _tiff(sample_3d[1])},
                    format="multipart"),
        client.post(reverse("segmentation-job-list", args=[volume.id]), {"params": {"diameter": 15.0}},
                    format="json"),
    ]
    assert [r.status_code for r in uploads] == [expected] * 3, [r.content[:200] for r in uploads]
    if expected == 403:
        assert "for the instructors and admins of this project; you are a student" in uploads[0].json()["message"]


@pytest.mark.parametrize("user, student, instructor", [
    ("alice", 403, 403), ("ivy", 201, 403), ("ada", 201, 201), ("eve", 404, 404)])
def test_it_lets_instructors_add_students_and_admins_add_anyone(project, client_for, django_user_model, request,
                                                                 user, student, instructor):
    from annotation.services import membership_add, project_create

    # sam and ian take another course with everyone: one adds only people one shares a project with.
    course = project_create(name="Other course", user=request.getfixturevalue("ada"))
    for name in ("sam", "ian", "alice", "ivy"):
        member = django_user_model.objects.filter(username=name).first() or \
            django_user_model.objects.create_user(name, password="x")
        membership_add(project=course, user=member)
    client = _client(client_for, request, user)
    url = reverse("project-member-add", args=[project.id])
    assert client.post(url, {"username": "sam"}, format="json").status_code == student
    assert client.post(url, {"username": "ian", "role": "instructor"}, format="json").status_code == instructor


def test_it_lets_a_student_edit_only_inside_an_open_assignment(labels_v1, client_for, alice, bob, ivy):
    volume = labels_v1.volume
    n = _largest(labels_v1)
    edit = {"label_version": "v1", "type": "delete", "nucleus_ids": [n.label_id]}
    url = reverse("correction-list", args=[volume.id])
    refused = client_for(alice).post(url, edit, format="json")
    assert refused.status_code == 403 and "not assigned to you" in refused.json()["message"]
    region = [0, volume.shape_z, 0, n.y_min, 0, volume.shape_x]  # everything above the nucleus
    made = client_for(ivy).post(reverse("assignment-create", args=[volume.project_id]),
                                {"volume": volume.id, "student": "alice", "region": region, "due": "2026-12-24"},
                                format="json")
    assert made.status_code == 201, made.json()
    outside = client_for(alice).post(url, edit, format="json")
    assert outside.status_code == 403 and "outside the region assigned to you" in outside.json()["message"]
    inside = Nucleus.objects.of(labels_v1).filter(y_max__lt=n.y_min - 2).first()
    ok = client_for(alice).post(url, {**edit, "nucleus_ids": [inside.label_id]}, format="json")
    assert ok.status_code == 201 and ok.json()["review_status"] == "pending"
    assert client_for(bob).post(url, {**edit, "label_version": "v2"}, format="json").status_code == 403
    # Submitted work is closed to edits until the instructor reopens it.
    assignment = made.json()["id"]
    assert client_for(bob).post(reverse("assignment-submit", args=[assignment])).status_code == 403
    assert client_for(alice).post(reverse("assignment-submit", args=[assignment])).json()["state"] == "submitted"
    other = LabelVersion.objects.get(name="v2").nuclei.filter(y_max__lt=n.y_min - 2).exclude(
        label_id=inside.label_id).first()
    closed = client_for(alice).post(url, {**edit, "label_version": "v2", "nucleus_ids": [other.label_id]},
                                    format="json")
    assert closed.status_code == 403
    assert client_for(alice).post(reverse("assignment-reopen", args=[assignment])).status_code == 403
    assert client_for(ivy).post(reverse("assignment-reopen", args=[assignment])).json()["state"] == "reopened"
    assert client_for(alice).post(url, {**edit, "label_version": "v2", "nucleus_ids": [other.label_id]},
                                  format="json").status_code == 201
    queue = client_for(alice).get(reverse("my-assignment-list")).json()
    assert [(a["id"], a["state"], a["due"]) for a in queue] == [(assignment, "reopened", "2026-12-24")]


def test_it_reviews_students_work(labels_v1, client_for, alice, bob, ivy):
    from annotation.services import assignment_create

    volume = labels_v1.volume
    for student in (alice, bob):
        assignment_create(project=volume.project, volume=volume, student=student, assigned_by=ivy)
    url = reverse("correction-list", args=[volume.id])
    a, b, c = (_largest(labels_v1, k) for k in range(3))
    by_alice = client_for(alice).post(url, {"label_version": "v1", "type": "delete", "nucleus_ids": [a.label_id]},
                                      format="json").json()
    by_bob = client_for(bob).post(url, {"label_version": "v2", "type": "delete", "nucleus_ids": [b.label_id]},
                                  format="json").json()
    # Students see their own work only; the instructor sees the queue.
    assert [x["id"] for x in client_for(alice).get(url).json()["results"]] == [by_alice["id"]]
    assert client_for(alice).get(reverse("correction-detail", args=[by_bob["id"]])).status_code == 403
    assert client_for(alice).get(reverse("review-queue", args=[volume.project_id])).status_code == 403
    queue = client_for(ivy).get(reverse("review-queue", args=[volume.project_id])).json()
    assert [x["id"] for x in queue["results"]] == [by_alice["id"], by_bob["id"]]
    assert client_for(bob).post(reverse("correction-approve", args=[by_alice["id"]])).status_code == 403
    assert client_for(ivy).post(reverse("correction-reject", args=[by_alice["id"]])).status_code == 400  # no comment
    approved = client_for(ivy).post(reverse("correction-approve", args=[by_alice["id"]]))
    assert approved.json()["review_status"] == "approved" and approved.json()["reviewed_by"] == "ivy"
    assert client_for(ivy).post(reverse("correction-approve", args=[by_alice["id"]])).status_code == 409
    # Amend bob's: ivy deletes a different nucleus instead of his, and says why.
    amended = client_for(ivy).post(reverse("correction-amend", args=[by_bob["id"]]),
                                   {"label_version": "v3", "type": "delete", "nucleus_ids": [c.label_id],
                                    "comment": "that one was real; this one is debris"}, format="json")
    assert amended.status_code == 201, amended.json()
    assert (amended.json()["review_status"], amended.json()["amends"]) == ("approved", by_bob["id"])
    seen_by_bob = client_for(bob).get(reverse("correction-detail", args=[by_bob["id"]])).json()
    assert (seen_by_bob["review_status"], seen_by_bob["review_comment"]) == (
        "amended", "that one was real; this one is debris")
    from annotation.selectors import training_corrections

    assert [x.id for x in training_corrections(project=volume.project)] == [by_alice["id"], amended.json()["id"]]
    assert client_for(ivy).get(reverse("review-queue", args=[volume.project_id])).json()["count"] == 0


def test_it_measures_agreement_with_the_instructor(labels_v1, client_for, alice, ivy, sample_3d):
    from annotation.services import assignment_create

    volume = labels_v1.volume
    assignment_create(project=volume.project, volume=volume, student=alice, assigned_by=ivy)
    n = _largest(labels_v1)
    z = round(n.centroid_z)
    ys, xs = np.nonzero(sample_3d[1][z] == n.label_id)
    top, bottom = (int(ys.argmin()), int(ys.argmax()))  # alice trims the top, ivy the bottom
    url = reverse("correction-list", args=[volume.id])
    mine = client_for(alice).post(url, {"label_version": "v1", "type": "modify", "nucleus_ids": [n.label_id],
                                        "z": z, "stroke": {"points": [[ys[top], xs[top]]], "radius": 2.5,
                                                           "erase": True}}, format="json")
    assert mine.status_code == 201, mine.json()
    theirs = client_for(ivy).post(reverse("correction-amend", args=[mine.json()["id"]]),
                                  {"label_version": "v2", "type": "modify", "nucleus_ids": [n.label_id], "z": z,
                                   "stroke": {"points": [[ys[bottom], xs[bottom]]], "radius": 2.5,
                                              "erase": True}},
                                  format="json")
    assert theirs.status_code == 201, theirs.json()
    assert client_for(alice).get(reverse("agreement", args=[volume.project_id])).status_code == 403
    table = client_for(ivy).get(reverse("agreement", args=[volume.project_id])).json()
    [row] = table["students"]
    assert (row["student"], row["compared"], row["f1"]) == ("alice", 1, 1.0)
    assert 0.5 < row["iou"] < 1.0  # the same nucleus, trimmed at different ends
    assert table["pairs"][0]["users"] == ["alice", "ivy"]


def test_it_keeps_an_append_only_audit_trail(labels_v1, client_for, ivy, alice):
    volume = labels_v1.volume
    n = _largest(labels_v1)
    client_for(ivy).post(reverse("correction-list", args=[volume.id]),
                         {"label_version": "v1", "type": "delete", "nucleus_ids": [n.label_id]}, format="json")
    events = client_for(ivy).get(reverse("audit-list", args=[volume.project_id])).json()["results"]
    actions = [(e["user"], e["action"], e["label_version"]) for e in events]
    assert actions[0] == ("ivy", "correction.create", "v1")
    assert ("ivy", "label_version.segmentation", "v1") in actions and ("ada", "project.create", "") in actions
    assert client_for(alice).get(reverse("audit-list", args=[volume.project_id])).status_code == 403
    event = AuditEvent.objects.first()
    event.action = "forged"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    assert LabelVersion.objects.count() == 2 and Correction.objects.count() == 1
    assert not Assignment.objects.exists() and np.isfinite(n.centroid_x)
