"""Fixtures shared by the web tests: the cast of users every endpoint is tested with, a data
folder per test, the project they share and API clients.

alice and bob are students, ivy an instructor, ada an administrator and eve an outsider who
should be refused everywhere. The project "Nuclei 101" is ada's (she created it, role admin);
ivy is its instructor, alice and bob its students; eve is in no project. Nothing here imports
Django at module level, so ``pytest tests/core -p no:django`` still runs without any Django
settings; nothing mocks the database or the storage.
"""

import multiprocessing
from pathlib import Path

import pytest

_CORE_TESTS = Path(__file__).parent / "core"


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


@pytest.fixture(autouse=True)
def data_dir(request, tmp_path):
    """EZQUANT_DATA_DIR in the test's own folder; open stores and cached tiles forgotten afterwards.

    The core tests (no Django by design) and the storage tests run with ``-p no:django`` are
    left alone: the setting is set only when pytest-django is there."""
    path = tmp_path / "data"
    web = request.config.pluginmanager.hasplugin("django") and _CORE_TESTS not in request.path.parents
    if web:
        request.getfixturevalue("settings").EZQUANT_DATA_DIR = path
    yield path
    if web:
        from annotation.stores import volume_store_at
        from annotation.tile_views import tile_cache

        volume_store_at.cache_clear()
        tile_cache.clear()


@pytest.fixture
def project(ivy, alice, bob, ada):
    """"Nuclei 101": ada its admin, ivy its instructor, alice and bob its students."""
    from annotation.models import Membership
    from annotation.services import membership_add, project_create

    project = project_create(name="Nuclei 101", user=ada, description="teaching set")
    membership_add(project=project, user=ivy, role=Membership.Role.INSTRUCTOR)
    membership_add(project=project, user=alice)
    membership_add(project=project, user=bob)
    return project


@pytest.fixture
def client_for(db):
    """``client_for(user)``: a DRF test client logged in (session) as ``user``; ``None``: anonymous."""
    from rest_framework.test import APIClient

    def make(user=None):
        client = APIClient()
        if user is not None:
            client.force_login(user)
        return client
    return make


def shrink_nucleus(volume, edit, new_id, voxel_size):
    """A toy edit kind's ``apply``: the nucleus loses its outermost layer of pixels on every plane."""
    import numpy as np
    from scipy import ndimage as ndi

    out = volume.copy()
    own = volume == edit.nucleus_ids[0]
    out[own & ~ndi.binary_erosion(own, structure=np.ones((1, 3, 3)))] = 0
    return out


@pytest.fixture
def shrink():
    """The toy kind "shrink" registered for one test (core and web tests of the edit-kind registry)."""
    from segmentation.core.editing import EDIT_KINDS, EditKind, register_edit_kind

    kind = register_edit_kind(EditKind(
        "shrink", "Shrink", "the nucleus loses one layer of pixels", nuclei=(1, 1), drawings=(), apply=shrink_nucleus,
        consistent=lambda before, after: before == after == 1, rule="'shrink' keeps one nucleus",
        done="shrank nucleus {before}"))
    yield kind
    del EDIT_KINDS["shrink"]


@pytest.fixture
def at_once():
    """``run(target, *args)``: ``target(worker, barrier, *args)`` in two forked processes (worker
    0 and 1) that pass ``barrier.wait()`` together; returns their exit codes once both end (90 s
    at most). Fork: the children get the test module's functions without importing it again."""
    def run(target, *args, timeout: float = 90):
        ctx = multiprocessing.get_context("fork")
        barrier = ctx.Barrier(2)
        procs = [ctx.Process(target=target, args=(worker, barrier, *args)) for worker in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout)
        return [p.exitcode for p in procs]
    return run
