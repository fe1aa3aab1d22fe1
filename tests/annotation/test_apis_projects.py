"""/api/v1/projects/: list, create, detail, add a member."""

import pytest
from django.urls import reverse

from annotation.models import Membership, Project


@pytest.mark.django_db
def test_it_lists_only_the_users_projects(project, client_for, alice, eve):
    response = client_for(alice).get(reverse("project-list"))
    assert response.status_code == 200
    assert [p["name"] for p in response.json()] == ["Nuclei 101"]
    assert response.json()[0]["created_by"] == "ada" and response.json()[0]["role"] == "student"
    assert client_for(eve).get(reverse("project-list")).json() == []


@pytest.mark.django_db
def test_it_creates_a_project(client_for, bob):
    response = client_for(bob).post(reverse("project-create"), {"name": "Bob's zebrafish"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["slug"] == "bobs-zebrafish"
    assert Membership.objects.get(project_id=response.json()["id"]).user == bob


@pytest.mark.django_db
def test_it_refuses_a_duplicate_name_and_a_missing_one(project, client_for, bob):
    response = client_for(bob).post(reverse("project-create"), {"name": "Nuclei 101"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"message": "a project named 'Nuclei 101' already exists", "extra": {}}
    response = client_for(bob).post(reverse("project-create"), {}, format="json")
    assert response.status_code == 400
    assert response.json()["message"] == "Validation error" and "name" in response.json()["extra"]["fields"]
    assert Project.objects.count() == 1


@pytest.mark.django_db
def test_it_shows_a_project_to_members(project, client_for, alice):
    response = client_for(alice).get(reverse("project-detail", args=[project.id]))
    assert response.status_code == 200 and response.json()["description"] == "teaching set"


@pytest.mark.django_db
def test_it_adds_a_member(project, client_for, ada, ivy, eve):
    url = reverse("project-member-add", args=[project.id])
    response = client_for(ada).post(url, {"username": "eve", "role": "student"}, format="json")  # staff: anyone
    assert response.status_code == 201
    assert response.json()["username"] == "eve"
    assert client_for(eve).get(reverse("project-detail", args=[project.id])).status_code == 200
    assert client_for(ivy).post(url, {"username": "eve"}, format="json").status_code == 400  # a member already
    assert client_for(ada).post(url, {"username": "nobody"}, format="json").status_code == 400


@pytest.mark.django_db
def test_it_adds_people_one_shares_a_project_with(project, client_for, ivy, alice):
    other = client_for(ivy).post(reverse("project-create"), {"name": "Ivy's course"}, format="json").json()
    url = reverse("project-member-add", args=[other["id"]])
    assert client_for(ivy).post(url, {"username": "alice"}, format="json").status_code == 201


@pytest.mark.django_db
def test_it_does_not_tell_who_has_an_account(project, client_for, eve):
    # eve makes a project of her own (she is its admin) and tries names: taken or not, one answer.
    own = client_for(eve).post(reverse("project-create"), {"name": "Probe"}, format="json").json()
    url = reverse("project-member-add", args=[own["id"]])
    names = ("alice", "ada", "nobody")
    answers = [client_for(eve).post(url, {"username": name}, format="json") for name in names]
    assert {r.status_code for r in answers} == {400}
    messages = {r.json()["message"].replace(repr(name), "NAME") for r, name in zip(answers, names, strict=True)}
    assert messages == {"no account NAME that you can add: you can add the people you share a project with; "
                        "a site administrator (staff) can add anyone"}
    assert not Membership.objects.filter(project_id=own["id"]).exclude(user=eve).exists()


@pytest.mark.django_db
def test_it_refuses_outsiders_and_anonymous_users(project, client_for, eve):
    assert client_for(eve).get(reverse("project-detail", args=[project.id])).status_code == 404
    url = reverse("project-member-add", args=[project.id])
    assert client_for(eve).post(url, {"username": "eve"}, format="json").status_code == 404
    assert not project.memberships.filter(user=eve).exists()
    assert client_for().get(reverse("project-list")).status_code == 401
    assert client_for().post(reverse("project-create"), {"name": "x"}, format="json").status_code == 401
