"""The ASGI application daphne serves: static files over HTTP, WebSockets behind the checks."""

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator

from ezquant_web.asgi import application


async def _get(path: str) -> tuple[int, bytes]:
    # asgiref's communicator, not channels' HttpCommunicator: Django ends a response with a
    # body message that has no "body" key (allowed by the ASGI spec), which the latter rejects.
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": path, "query_string": b"",
             "headers": [(b"host", b"localhost")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    body = b""
    while True:
        message = await communicator.receive_output(5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            return start["status"], body


def test_it_serves_the_stylesheet_through_the_asgi_app():
    status, body = async_to_sync(_get)("/static/frontend/site.css")
    assert status == 200
    assert b":root" in body


@pytest.mark.django_db  # channels' consumers close stale database connections, touching the db
def test_it_refuses_a_websocket_from_another_site():
    async def connect():
        communicator = WebsocketCommunicator(application, "/ws/anything",
                                             headers=[(b"host", b"localhost"), (b"origin", b"https://evil.example")])
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(connect)() is False


def test_it_serves_static_files_with_debug_off(settings):
    # DEBUG is off by default (and under pytest-django): make run must still serve the pages'
    # files. Django's static handler serves them whatever DEBUG is (SERVE_STATIC=1).
    settings.DEBUG = False
    assert settings.SERVE_STATIC
    status, body = async_to_sync(_get)("/static/frontend/site.css")
    assert status == 200 and b":root" in body
    status, _ = async_to_sync(_get)("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css")
    assert status == 200
