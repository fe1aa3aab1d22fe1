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
from annotation.models import LabelVersion, Membership, Project, Volume


def _tiff() -> io.BytesIO:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((8, 300, 300), np.uint16))
    buffer.seek(0)
    buffer.name = "x.tif"
    return buffer


# name -> (method, kwargs builder, body builder)
ROUTES = {
    "project-list": ("get", lambda v: {}, None),
    "project-create": ("post", lambda v: {}, lambda: {"name": "Eve's"}),
    "project-detail": ("get", lambda v: {"project_id": v.project_id}, None),
    "project-member-add": ("post", lambda v: {"project_id": v.project_id}, lambda: {"username": "eve"}),
    "volume-list": ("get", lambda v: {"project_id": v.project_id}, None),
    "volume-upload": ("post", lambda v: {"project_id": v.project_id}, lambda: {"file": _tiff()}),
    "volume-detail": ("get", lambda v: {"volume_id": v.id}, None),
    "label-version-list": ("get", lambda v: {"volume_id": v.id}, None),
    "label-version-upload": ("post", lambda v: {"volume_id": v.id}, lambda: {"file": _tiff()}),
    "label-version-detail": ("get", lambda v: {"volume_id": v.id, "version": "v1"}, None),
    "nucleus-list": ("get", lambda v: {"volume_id": v.id, "version": "v1"}, None),
    "nucleus-csv": ("get", lambda v: {"volume_id": v.id, "version": "v1"}, None),
    "label-version-export-tiff": ("get", lambda v: {"volume_id": v.id, "version": "v1"}, None),
    "label-version-export-zarr": ("get", lambda v: {"volume_id": v.id, "version": "v1"}, None),
    "image-tile": ("get", lambda v: {"volume_id": v.id, "level": 0, "z": 0, "ty": 0, "tx": 0, "fmt": "png"}, None),
    "label-tile": ("get", lambda v: {"volume_id": v.id, "version": "v1", "level": 0, "z": 0, "ty": 0, "tx": 0,
                                     "fmt": "png"}, None),
}


def _call(client, name, volume):
    method, kwargs, body = ROUTES[name]
    url = reverse(name, kwargs=kwargs(volume))
    if method == "get":
        return client.get(url)
    return client.post(url, body(), format="multipart")


def test_it_covers_every_route():
    names = {p.name for p in urls.urlpatterns if isinstance(p, URLPattern)}
    assert names == set(ROUTES)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_it_refuses_eve_everywhere(labels_v1, client_for, eve, name):
    volume = labels_v1.volume
    response = _call(client_for(eve), name, volume)
    if name == "project-list":
        assert response.status_code == 200 and response.json() == []
    elif name == "project-create":
        assert response.status_code == 201  # her own project, nothing else
    else:
        assert response.status_code == 404, response.content[:200]
        assert response.json() == {"message": "Not found.", "extra": {}}
    assert not Membership.objects.filter(user=eve, project=volume.project).exists()
    assert (Volume.objects.count(), LabelVersion.objects.count()) == (1, 1)
    assert set(Project.objects.filter(memberships__user=eve).values_list("name", flat=True)) <= {"Eve's"}


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_it_refuses_anonymous_callers_everywhere(labels_v1, client_for, name):
    response = _call(client_for(), name, labels_v1.volume)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert (Project.objects.count(), Volume.objects.count(), LabelVersion.objects.count()) == (1, 1, 1)


@pytest.mark.django_db
@pytest.mark.parametrize("user", ["alice", "bob", "ivy", "ada"])
def test_it_lets_every_member_read(labels_v1, client_for, user, django_user_model):
    client = client_for(django_user_model.objects.get(username=user))
    for name, (method, _, _) in ROUTES.items():
        if method == "get":
            assert _call(client, name, labels_v1.volume).status_code == 200, name
