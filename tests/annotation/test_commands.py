"""manage.py create_project and add_member, run as a user would run them."""

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Membership

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    import io

    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_creates_projects_and_members(ada, bob):
    project_id = int(_run("create_project", "Zebrafish", "--user", "ada").strip())
    assert Membership.objects.get(project_id=project_id, user=ada).role == "admin"
    assert "bob is now a instructor" in _run("add_member", "Zebrafish", "bob", "--role", "instructor")
    created = _run("add_member", "Zebrafish", "newcomer", "--create")
    password = created.split("password: ")[1].strip()
    from django.contrib.auth import authenticate

    assert authenticate(username="newcomer", password=password) is not None
    for args, message in [(("create_project", "Zebrafish", "--user", "ada"), "already exists"),
                          (("create_project", "X", "--user", "nobody"), "no user named"),
                          (("add_member", "Nope", "bob"), "no project named"),
                          (("add_member", "Zebrafish", "bob"), "already a member"),
                          (("add_member", "Zebrafish", "ghost"), "--create")]:
        with pytest.raises(CommandError, match=message):
            call_command(*args)
