"""manage.py demo, run as ``make run`` runs it."""

import io
import json

import pytest
from django.core.management import call_command

from annotation.models import Assignment, LabelVersion, Project
from segmentation.core.modelzoo import default_model_for

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)  # the segmentation jobs' heartbeat threads write beside the test
def test_it_sets_up_the_demo_once(settings):
    first = _run("demo")
    project = Project.objects.get(name="Demo lab")
    roles = dict(project.memberships.values_list("user__username", "role"))
    assert roles == {"admin": "admin", "instructor": "instructor", "student": "student", "student2": "student"}
    volumes = list(project.volumes.order_by("id"))
    assert [v.shape_z for v in volumes] == [1, 24]
    for volume in volumes:  # segmented by the shipped model, with scores to rank by
        version = LabelVersion.objects.get(volume=volume)
        assert version.source == "segmentation"
        assert version.model_version.startswith(default_model_for(tuple(volume.shape)))
        assert version.nuclei.filter(uncertainty__isnull=False).count() > 10
    assert sorted(Assignment.objects.values_list("student__username", flat=True)) == ["student", "student2"]
    credentials = json.loads((settings.EZQUANT_DATA_DIR / "demo-credentials.json").read_text())
    from django.contrib.auth import authenticate

    for name in ("admin", "instructor", "student", "student2"):
        assert f"{name:<10} password {credentials[name]}" in first
        assert authenticate(username=name, password=credentials[name]) is not None
    assert _run("demo").splitlines()[-4:] == first.splitlines()[-4:]  # the second run changes nothing
    assert Project.objects.count() == 1 and LabelVersion.objects.count() == 2


def test_it_starts_without_a_demo_when_its_accounts_are_taken(django_user_model):
    django_user_model.objects.create_user("admin", password="x")  # e.g. made with createsuperuser
    err = io.StringIO()
    call_command("demo", stdout=io.StringIO(), stderr=err)  # no error: make run goes on to serve
    assert "the users admin exist already" in err.getvalue() and not Project.objects.exists()
