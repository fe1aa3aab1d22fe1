"""TileRouter: tiles answered in front of Django's middleware, with the same answers."""

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotation.storage import decode_label_tile
from annotation.tile_asgi import TileRouter
from ezquant_web.asgi import application


async def _call(path, headers=(), method="GET", query=b"", app=application):
    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path, "query_string": query,
             "headers": [(b"host", b"localhost"), *headers], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000), "root_path": ""}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


def call(*args, **kwargs):
    return async_to_sync(_call)(*args, **kwargs)


def _image(volume, **kw):
    return reverse("image-tile", kwargs=dict(volume_id=volume.id, level=0, z=2, ty=0, tx=1, fmt="png", **kw))


def _label(version):
    return reverse("label-tile", kwargs=dict(volume_id=version.volume_id, version=version.name, level=0, z=2,
                                             ty=1, tx=0, fmt="png"))


@pytest.mark.django_db(transaction=True)  # the router queries from its own threads
def test_it_serves_the_same_tiles_as_the_django_views(labels_v1, alice, sample_3d):
    key = Token.objects.create(user=alice).key
    auth = [(b"authorization", f"Token {key}".encode())]
    status, headers, body = call(_image(labels_v1.volume), auth, query=b"lo=8000&hi=12000")
    django_response = Client().get(_image(labels_v1.volume), {"lo": "8000", "hi": "12000"},
                                   HTTP_AUTHORIZATION=f"Token {key}")
    assert status == 200 and body == django_response.content
    assert headers["etag"] == django_response["ETag"] and headers["content-type"] == "image/png"
    assert headers["cache-control"] == "private, max-age=31536000, immutable"
    assert headers["x-content-type-options"] == "nosniff" and int(headers["content-length"]) == len(body)
    status, _, body = call(_label(labels_v1), auth)
    assert status == 200
    assert (decode_label_tile(body) == sample_3d[1][2, 256:, :256]).all()
    status, _, body = call(_image(labels_v1.volume), auth + [(b"if-none-match", headers["etag"].encode())],
                           query=b"lo=8000&hi=12000")
    assert (status, body) == (304, b"")


@pytest.mark.django_db(transaction=True)
def test_it_signs_in_with_the_session_cookie(volume_3d, alice, eve):
    for user, expected in [(alice, 200), (eve, 404)]:
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}; other=1".encode()
        assert call(_image(volume_3d), [(b"cookie", cookie)])[0] == expected
    assert call(_image(volume_3d), [(b"cookie", b"sessionid=forged")])[0] == 401


@pytest.mark.django_db(transaction=True)
def test_it_refuses_like_the_views(volume_3d, eve, alice):
    eve_key = Token.objects.create(user=eve).key
    status, headers, body = call(_image(volume_3d))
    assert (status, headers["www-authenticate"]) == (401, "Token")
    assert call(_image(volume_3d), [(b"authorization", f"Token {eve_key}".encode())])[0] == 404
    key = Token.objects.create(user=alice).key
    auth = [(b"authorization", f"Token {key}".encode())]
    assert call(_image(volume_3d), auth, query=b"size=300")[0] == 400
    assert call(reverse("image-tile", kwargs=dict(volume_id=volume_3d.id, level=0, z=99, ty=0, tx=0, fmt="png")),
                auth)[0] == 404


@pytest.mark.django_db(transaction=True)
def test_it_checks_the_host_header(volume_3d, alice):
    key = Token.objects.create(user=alice).key
    scope_headers = [(b"authorization", f"Token {key}".encode())]
    app = TileRouter(application)

    async def with_host(host):
        scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": _image(volume_3d),
                 "query_string": b"", "headers": [(b"host", host), *scope_headers], "root_path": ""}
        communicator = ApplicationCommunicator(app, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        return (await communicator.receive_output(10))["status"]

    assert async_to_sync(with_host)(b"evil.example") == 400
    assert async_to_sync(with_host)(b"127.0.0.1:8000") == 200


@pytest.mark.django_db
def test_it_passes_everything_else_to_django(volume_3d):
    assert call("/static/frontend/site.css")[0] == 200
    assert call(_image(volume_3d), method="HEAD")[0] == 405  # Django (require_GET) answers
    assert call(f"/api/v1/volumes/{volume_3d.id}/tiles/0/0/0/0")[0] == 404  # no such route


@pytest.mark.django_db(transaction=True)
def test_it_serves_xz_and_yz_tiles_like_the_views(labels_v1, alice, eve):
    alice_key, eve_key = Token.objects.create(user=alice).key, Token.objects.create(user=eve).key
    for name, extra in [("image-ortho-tile", {}), ("label-ortho-tile", {"version": labels_v1.name}),
                        ("uncertainty-ortho-tile", {"version": labels_v1.name})]:
        for plane in ("xz", "yz"):
            url = reverse(name, kwargs=dict(volume_id=labels_v1.volume_id, plane=plane, level=0, z=40, ty=0, tx=1,
                                            fmt="png", **extra))
            status, headers, body = call(url, [(b"authorization", f"Token {alice_key}".encode())])
            django_response = Client().get(url, HTTP_AUTHORIZATION=f"Token {alice_key}")
            assert status == 200 and body == django_response.content and headers["etag"] == django_response["ETag"]
            assert call(url, [(b"authorization", f"Token {eve_key}".encode())])[0] == 404
