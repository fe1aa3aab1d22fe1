"""The pages that exist before any feature: home, admin login, health check."""

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from ezquant_web import __version__


@pytest.mark.django_db
def test_it_renders_the_home_page(client):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Segment nuclei in 2D and 3D fluorescence microscopy" in html
    assert 'href="/admin/"' in html and 'href="/healthz"' in html
    assert "/static/frontend/site.css" in html


def test_it_finds_the_stylesheet():
    from django.contrib.staticfiles import finders

    assert finders.find("frontend/site.css")


@pytest.mark.django_db
def test_it_shows_the_admin_login_page(client):
    response = client.get("/admin/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert 'name="password"' in response.content.decode()


@pytest.mark.django_db
def test_it_lets_ada_into_the_admin_and_refuses_eve(client, ada, eve):
    from tests.conftest import PASSWORD

    client.login(username="ada", password=PASSWORD)
    assert client.get("/admin/").status_code == 200
    client.logout()
    client.login(username="eve", password=PASSWORD)
    assert client.get("/admin/").status_code == 302  # not staff: back to the login page


@pytest.mark.django_db
def test_it_reports_healthy_dependencies(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "version": __version__, "database": "ok", "channel_layer": "ok",
                               "job_queue": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_it_answers_503_when_the_database_is_unreachable(client):
    # No django_db mark: pytest-django refuses every connection attempt in this test, so the
    # real SELECT 1 fails the way an unreachable server does, inside connection.cursor().
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "version": __version__, "database": "error", "channel_layer": "ok",
                               "job_queue": "error"}


@pytest.mark.django_db
@override_settings(CHANNEL_LAYERS={"default": {
    "BACKEND": "channels_redis.core.RedisChannelLayer",
    # Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
}})
def test_it_answers_503_when_the_channel_layer_is_unreachable(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "ok"
    assert response.json()["channel_layer"] == "error"
    assert response.json()["status"] == "error"


def test_it_refuses_to_post_to_healthz(client):
    assert client.post("/healthz").status_code == 405


def test_it_passes_the_system_checks():
    call_command("check", fail_level="WARNING")
