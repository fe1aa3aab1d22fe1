"""Who may reach what: every route of ``annotation/urls.py`` refuses eve (a member of no project)
and anonymous callers.

The rule (``annotation.selectors``): a project and all it holds exist only for its members; to
anyone else the API answers 404, as for something that does not exist. Two routes are not about
one project: the project list (eve gets an empty list) and project creation (any signed-in
user may start a project of their own; it gives no access to others').
"""

import io

import numpy as np
import pytest
import tifffile
from django.urls import URLPattern, reverse

from annotation import urls
from annotation.models import Assignment, Correction, LabelVersion, Membership, Project, Volume


def _tiff() -> io.BytesIO:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((8, 300, 300), np.uint16))
    buffer.seek(0)
    buffer.name = "x.tif"
    return buffer


# name -> (method, kwargs builder, body builder)
ROUTES = {
    "project-list": ("get", lambda c: {}, None),
    "project-create": ("post", lambda c: {}, lambda: {"name": "Eve's"}),
    "project-detail": ("get", lambda c: {"project_id": c.volume.project_id}, None),
    "project-member-add": ("post", lambda c: {"project_id": c.volume.project_id}, lambda: {"username": "eve"}),
    "volume-list": ("get", lambda c: {"project_id": c.volume.project_id}, None),
    "volume-upload": ("post", lambda c: {"project_id": c.volume.project_id}, lambda: {"file": _tiff()}),
    "volume-detail": ("get", lambda c: {"volume_id": c.volume_id}, None),
    "volume-curation": ("get", lambda c: {"volume_id": c.volume_id}, None),
    "label-version-list": ("get", lambda c: {"volume_id": c.volume_id}, None),
    "label-version-upload": ("post", lambda c: {"volume_id": c.volume_id}, lambda: {"file": _tiff()}),
    "label-version-detail": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1"}, None),
    "nucleus-list": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1"}, None),
    "nucleus-review-queue": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1"}, None),
    "nucleus-csv": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1"}, None),
    "nucleus-mesh": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1", "label_id": 2}, None),
    "label-version-export-tiff": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1"}, None),
    "label-version-export-zarr": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1"}, None),
    "image-tile": ("get", lambda c: {"volume_id": c.volume_id, "level": 0, "z": 0, "ty": 0, "tx": 0,
                                     "fmt": "png"}, None),
    "label-tile": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1", "level": 0, "z": 0, "ty": 0, "tx": 0,
                                     "fmt": "png"}, None),
    "uncertainty-tile": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1", "level": 0, "z": 0, "ty": 0,
                                           "tx": 0, "fmt": "png"}, None),
    "image-ortho-tile": ("get", lambda c: {"volume_id": c.volume_id, "plane": "xz", "level": 0, "z": 0, "ty": 0,
                                           "tx": 0, "fmt": "png"}, None),
    "label-ortho-tile": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1", "plane": "xz", "level": 0,
                                           "z": 0, "ty": 0, "tx": 0, "fmt": "png"}, None),
    "uncertainty-ortho-tile": ("get", lambda c: {"volume_id": c.volume_id, "version": "v1", "plane": "xz",
                                                 "level": 0, "z": 0, "ty": 0, "tx": 0, "fmt": "png"}, None),
    "correction-list": ("get", lambda c: {"volume_id": c.volume_id}, None),
    "correction-detail": ("get", lambda c: {"correction_id": c.id}, None),
    "correction-undo": ("post", lambda c: {"correction_id": c.id}, lambda: {"label_version": "v2"}),
    "correction-redo": ("post", lambda c: {"correction_id": c.id}, lambda: {"label_version": "v2"}),
    "correction-approve": ("post", lambda c: {"correction_id": c.id}, lambda: {}),
    "correction-reject": ("post", lambda c: {"correction_id": c.id}, lambda: {"comment": "no"}),
    "correction-amend": ("post", lambda c: {"correction_id": c.id},
                         lambda: {"label_version": "v2", "type": "delete", "nucleus_ids": [2]}),
    "project-member-list": ("get", lambda c: {"project_id": c.volume.project_id}, None),
    "review-queue": ("get", lambda c: {"project_id": c.volume.project_id}, None),
    "agreement": ("get", lambda c: {"project_id": c.volume.project_id}, None),
    "audit-list": ("get", lambda c: {"project_id": c.volume.project_id}, None),
    "project-assignment-list": ("get", lambda c: {"project_id": c.volume.project_id}, None),
    "assignment-create": ("post", lambda c: {"project_id": c.volume.project_id},
                          lambda: {"volume": Volume.objects.get().id, "student": "eve"}),
    "my-assignment-list": ("get", lambda c: {}, None),
    "assignment-submit": ("post", lambda c: {"assignment_id": c.volume.assignments.get().id}, lambda: {}),
    "assignment-complete": ("post", lambda c: {"assignment_id": c.volume.assignments.get().id}, lambda: {}),
    "assignment-reopen": ("post", lambda c: {"assignment_id": c.volume.assignments.get().id}, lambda: {}),
    "volume-import-job-create": ("post", lambda c: {"project_id": c.volume.project_id}, lambda: {"file": _tiff()}),
    "volume-import-job-detail": ("get", lambda c: {"job_id": _import_job(c).id}, None),
    "volume-import-job-cancel": ("post", lambda c: {"job_id": _import_job(c).id}, lambda: {}),
}


def _import_job(correction):
    """A queued import of the project (ivy's): its row, as volume_import_job_create leaves it."""
    from annotation.models import VolumeImportJob

    job = VolumeImportJob.objects.filter(project_id=correction.volume.project_id).first()
    return job or VolumeImportJob.objects.create(project_id=correction.volume.project_id, file_name="x.tif",
                                                 upload_path="imports/x/x.tif", params={})

# Reads only instructors and admins may make (students get 403, with the reason).
STAFF_READS = {"project-member-list", "review-queue", "agreement", "audit-list", "volume-import-job-detail"}


@pytest.fixture
def edited(labels_v1, ivy, alice):
    """v2: v1 with its first nucleus deleted (ivy's correction), and the volume assigned to alice."""
    from annotation.services import assignment_create, correction_create

    volume = labels_v1.volume
    assignment_create(project=volume.project, volume=volume, student=alice, assigned_by=ivy)
    first = labels_v1.nuclei.order_by("label_id").first().label_id
    return correction_create(volume=volume, user=ivy, label_version="v1",
                             edit={"correction_type": "delete", "nucleus_ids": [first]}, approved=True)


def _call(client, name, correction):
    method, kwargs, body = ROUTES[name]
    url = reverse(name, kwargs=kwargs(correction))
    if method == "get":
        return client.get(url)
    return client.post(url, body(), format="multipart")


def test_it_covers_every_route():
    names = {p.name for p in urls.urlpatterns if isinstance(p, URLPattern)}
    assert names == set(ROUTES)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_it_refuses_eve_everywhere(edited, client_for, eve, name):
    volume = edited.volume
    response = _call(client_for(eve), name, edited)
    if name in ("project-list", "my-assignment-list"):
        assert response.status_code == 200 and response.json() == []
    elif name == "project-create":
        assert response.status_code == 201  # her own project, nothing else
    else:
        assert response.status_code == 404, response.content[:200]
        assert response.json() == {"message": "Not found.", "extra": {}}
    assert not Membership.objects.filter(user=eve, project=volume.project).exists()
    assert (Volume.objects.count(), LabelVersion.objects.count(), Correction.objects.count()) == (1, 2, 1)
    assert not Correction.objects.get().undone and Correction.objects.get().review_status == "approved"
    assert Assignment.objects.get().state == "assigned"
    assert set(Project.objects.filter(memberships__user=eve).values_list("name", flat=True)) <= {"Eve's"}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_it_refuses_anonymous_callers_everywhere(edited, client_for, name):
    response = _call(client_for(), name, edited)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert (Project.objects.count(), Volume.objects.count(), LabelVersion.objects.count()) == (1, 1, 2)


@pytest.mark.django_db
@pytest.mark.parametrize("user", ["alice", "bob", "ivy", "ada"])
def test_it_lets_every_member_read(edited, client_for, user, django_user_model):
    client = client_for(django_user_model.objects.get(username=user))
    student = user in ("alice", "bob")
    for name, (method, _, _) in ROUTES.items():
        if method == "get":
            # A student reads everything but the staff's pages and other people's corrections.
            refused = student and (name in STAFF_READS or name == "correction-detail")
            assert _call(client, name, edited).status_code == (403 if refused else 200), name
