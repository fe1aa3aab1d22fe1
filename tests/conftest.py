"""Fixtures shared by the web tests: the cast of users every endpoint is tested with.

alice and bob are students, ivy an instructor, ada an administrator and eve an outsider who
should be refused everywhere. Roles arrive with the annotation models; for now they are plain
users. Nothing here imports Django at module level, so ``pytest tests/core -p no:django``
still runs without any Django settings.
"""

import pytest


def pytest_configure(config):
    """No embedded job worker thread in the test process: tests run jobs themselves, in the
    thread and transaction they choose (importing ezquant_web.asgi would otherwise start one)."""
    if config.pluginmanager.hasplugin("django"):
        from django.conf import settings

        if settings.configured:
            settings.EZQUANT_EMBEDDED_WORKER = False

PASSWORD = "correct horse battery staple"


def _user(django_user_model, username: str, **extra):
    return django_user_model.objects.create_user(
        username=username, email=f"{username}@example.org", password=PASSWORD, **extra)


@pytest.fixture
def alice(db, django_user_model):
    """A student."""
    return _user(django_user_model, "alice")


@pytest.fixture
def bob(db, django_user_model):
    """Another student, in the same course as alice."""
    return _user(django_user_model, "bob")


@pytest.fixture
def ivy(db, django_user_model):
    """An instructor."""
    return _user(django_user_model, "ivy")


@pytest.fixture
def ada(db, django_user_model):
    """An administrator: staff and superuser."""
    return _user(django_user_model, "ada", is_staff=True, is_superuser=True)


@pytest.fixture
def eve(db, django_user_model):
    """An outsider, refused everywhere."""
    return _user(django_user_model, "eve")
