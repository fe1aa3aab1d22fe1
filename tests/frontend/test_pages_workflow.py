"""The pages of the lab workflow: a project's page, the review queue, agreement, audit trail,
training, the students' queue on the projects page, and the password change.

"Nuclei 101" is ada's (admin); ivy is its instructor, alice and bob its students, eve is in no
project. One small generated stack with labels v1; alice and bob each have an assignment and a
correction waiting for review, and ivy corrected the nucleus alice did, so they can be compared.
Each page renders for who may see it and refuses who may not: a 403 page with the API's sentence
for the wrong role, 404 for eve, the sign-in page for anonymous visitors.
"""

import datetime
import json
import re

import numpy as np
import pytest
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

STAFF_PAGES = ["project-review-page", "project-agreement-page", "project-audit-page", "project-training-page"]
PAGES = ["project-page", *STAFF_PAGES]


@pytest.fixture
def sample():
    from segmentation.core import synthetic

    return synthetic.generate_3d(shape=(4, 96, 80), seed=2)


@pytest.fixture
def volume(project, ivy, sample, tmp_path):
    import tifffile

    from annotation.services import label_version_create, volume_import

    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.clip(np.round(sample.image * 100), 0, 65535).astype(np.uint16),
                     photometric="minisblack", metadata={"axes": "ZYX"})
    volume = volume_import(project=project, src_path=path, name="stack one", user=ivy, voxel_size=(2.0, 0.5, 0.5))
    label_version_create(volume=volume, labels=sample.labels, user=ivy, source="upload")
    return volume


def _nuclei(volume, k):
    from annotation.models import Nucleus

    return list(Nucleus.objects.of(volume.label_versions.get(name="v1"))
                .order_by("-volume_voxels")[:k])


@pytest.fixture
def work(volume, sample, ivy, alice, bob):
    """Alice (whole volume, overdue) trims the largest nucleus (v2); bob (a region) deletes the
    largest one apart from it (v3); ivy trims alice's nucleus at its other end (v4, approved as made)."""
    from annotation.services import assignment_create, correction_create

    project = volume.project
    yesterday = datetime.date.today() - datetime.timedelta(days=1)
    alices = assignment_create(project=project, volume=volume, student=alice, assigned_by=ivy, due=yesterday,
                               note="the top left")
    ranked = _nuclei(volume, 50)
    first = ranked[0]
    # bob's nucleus lies apart from alice's and ivy's, so his edit is compared with nobody's.
    second = next(n for n in ranked[1:] if n.y_min > first.y_max + 2 or n.y_max < first.y_min - 2
                  or n.x_min > first.x_max + 2 or n.x_max < first.x_min - 2)
    bobs = assignment_create(project=project, volume=volume, student=bob, assigned_by=ivy,
                             region=[0, 4, 0, 96, 0, 80])
    z = round(first.centroid_z)
    ys, xs = np.nonzero(sample.labels[z] == first.label_id)
    top, bottom = int(ys.argmin()), int(ys.argmax())

    def trim(user, at, version, approved):
        return correction_create(volume=volume, user=user, label_version=version, approved=approved, edit={
            "correction_type": "modify", "nucleus_ids": [first.label_id], "z": z,
            "stroke": [[float(ys[at]), float(xs[at])]], "radius": 2.5, "erase": True})

    by_alice = trim(alice, top, "v1", False)
    by_bob = correction_create(volume=volume, user=bob, label_version="v2",
                               edit={"correction_type": "delete", "nucleus_ids": [second.label_id]})
    by_ivy = trim(ivy, bottom, "v3", True)
    return {"alice": alices, "bob": bobs, "by_alice": by_alice, "by_bob": by_bob, "by_ivy": by_ivy}


def _get(client, user, name, project_id, **query):
    client.force_login(user)
    return client.get(reverse(name, args=[project_id]), query)


def _html(response) -> str:
    return response.content.decode()


# -- who may see what -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*PAGES, "password_change"])
def test_it_sends_anonymous_visitors_to_the_login_page(client, project, name):
    url = reverse(name) if name == "password_change" else reverse(name, args=[project.id])
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize("name", PAGES)
def test_it_answers_eve_404_as_the_api_does(client, eve, project, name):
    assert _get(client, eve, name, project.id).status_code == 404
    assert _get(client, eve, name, project.id + 1000).status_code == 404


@pytest.mark.parametrize("name, action", [
    ("project-review-page", "reviewing"), ("project-agreement-page", "reading agreement"),
    ("project-audit-page", "reading the audit trail"), ("project-training-page", "reading trainings")])
def test_it_shows_students_a_403_page_on_the_staff_pages(client, alice, project, name, action):
    response = _get(client, alice, name, project.id)
    assert response.status_code == 403
    html = _html(response)
    assert "This page is not for your role" in html
    assert f"{action.capitalize()} is for the instructors and admins of this project; you are a student" in html
    assert f'href="{reverse("project-page", args=[project.id])}"' in html


@pytest.mark.parametrize("user", ["alice", "bob", "ivy", "ada"])
def test_it_renders_each_page_for_who_may_see_it(client, request, work, user):
    staff = user in ("ivy", "ada")
    statuses = {name: _get(client, request.getfixturevalue(user), name, work["alice"].project_id).status_code
                for name in PAGES}
    assert statuses == {name: 200 if staff or name == "project-page" else 403 for name in PAGES}


def test_it_refuses_to_post_to_a_page(client, ivy, project):
    client.force_login(ivy)
    assert client.post(reverse("project-page", args=[project.id])).status_code == 405


# -- the project page and the projects page ---------------------------------------------------


def test_it_shows_alice_her_queue_and_her_corrections_with_their_verdicts(client, alice, work):
    from annotation.services import correction_review

    correction_review(correction=work["by_alice"], reviewer=work["by_ivy"].created_by, verdict="reject",
                      comment="you cut into the next nucleus", labels="keep")  # ivy edited that nucleus since
    html = _html(_get(client, alice, "project-page", work["alice"].project_id))
    assert "Your queue" in html and "Your corrections" in html
    assert reverse("assignment-submit", args=[work["alice"].id]) in html
    assert reverse("assignment-submit", args=[work["bob"].id]) not in html  # bob's own, not hers
    assert "overdue" in html and "the top left" in html
    assert "Rejected" in html and "you cut into the next nucleus" in html and "by ivy" in html
    assert f'href="/volumes/{work["by_alice"].volume_id}/?version=v2#z=' in html  # her edit, at its place
    assert "Members" not in html and "Assign work" not in html and "Review queue" not in html
    assert "Delete" not in html  # bob's correction is not hers to see


def test_it_shows_ivy_the_members_the_assignments_and_the_forms(client, ivy, work):
    project_id = work["alice"].project_id
    html = _html(_get(client, ivy, "project-page", project_id))
    for name in STAFF_PAGES:
        assert f'href="{reverse(name, args=[project_id])}"' in html
    assert "<strong>2</strong> corrections waiting for a verdict" in html
    assert reverse("assignment-create", args=[project_id]) in html
    assert reverse("project-member-add", args=[project_id]) in html
    assert re.search(r'<select name="student" required>\s*<option value="alice">alice</option>\s*'
                     r'<option value="bob">bob</option>', html)
    assert "planes 0–3, y 0–95, x 0–79" in html  # bob's region
    # Instructors add students only (annotation.roles): no other role is offered.
    assert '<option value="student">Student</option>' in html
    assert '<option value="instructor">' not in html and '<option value="admin">' not in html
    assert "Your queue" not in html


def test_it_offers_ada_every_role_and_the_complete_and_reopen_buttons(client, ada, work):
    from annotation.services import assignment_set_state

    assignment_set_state(assignment=work["alice"], user=work["alice"].student, state="submitted", staff=False)
    html = _html(_get(client, ada, "project-page", work["alice"].project_id))
    assert '<option value="instructor">Instructor</option>' in html and '<option value="admin">Admin</option>' in html
    assert reverse("assignment-complete", args=[work["alice"].id]) in html
    assert reverse("assignment-reopen", args=[work["alice"].id]) in html
    assert reverse("assignment-complete", args=[work["bob"].id]) not in html  # bob's is still open


def test_it_lists_alices_work_on_the_projects_page_open_first_with_the_overdue_marked(client, alice, work):
    from annotation.services import assignment_create

    done = assignment_create(project=work["alice"].project, volume=work["alice"].volume, student=alice,
                             assigned_by=work["by_ivy"].created_by, note="an older one")
    from annotation.services import assignment_set_state

    assignment_set_state(assignment=done, user=alice, state="submitted", staff=False)
    client.force_login(alice)
    html = _html(client.get(reverse("project-list-page")))
    assert "My work" in html
    section = html[html.index('id="my-work"'):html.index("</section>", html.index('id="my-work"'))]
    assert section.index("the top left") < section.index("an older one")  # open first
    assert "overdue" in section and 'class="badge state-submitted"' in section
    assert f'href="{reverse("project-page", args=[work["alice"].project_id])}"' in html
    assert reverse("project-create") in html and 'data-then="/projects/{id}/"' in html


def test_it_shows_no_queue_to_who_has_none(client, ivy, work):
    client.force_login(ivy)
    html = _html(client.get(reverse("project-list-page")))
    assert "My work" not in html and "Create a project" in html


# -- review -----------------------------------------------------------------------------------


def test_it_lists_the_pending_corrections_with_before_and_after_at_their_place(client, ivy, work):
    from annotation.selectors import correction_planes

    by_alice, by_bob = work["by_alice"], work["by_bob"]
    html = _html(_get(client, ivy, "project-review-page", by_alice.volume.project_id))
    planes = correction_planes(corrections=[by_alice, by_bob])
    for c in (by_alice, by_bob):
        assert f'id="correction-{c.id}"' in html
        _, _, y0, y1, x0, x1 = c.bbox
        place = f"#z={planes[c.id]}&amp;y={(y0 + y1) // 2}&amp;x={(x0 + x1) // 2}&amp;r="
        assert f'href="/volumes/{c.volume_id}/?version={c.label_version.name}{place}' in html
        assert f'href="/volumes/{c.volume_id}/?version={c.result_version.name}{place}' in html
        for name in ("correction-approve", "correction-reject", "correction-amend"):
            assert reverse(name, args=[c.id]) in html
    assert f'id="correction-{work["by_ivy"].id}"' not in html  # an instructor's own edit needs no review
    assert html.index(f'id="correction-{by_alice.id}"') < html.index(f'id="correction-{by_bob.id}"')  # oldest first
    assert 'data-require="comment"' in html  # reject asks for the comment before sending
    # The verdict and the amendment are both made on the latest labels.
    assert html.count('<input type="hidden" name="label_version" value="v4">') == 4
    # A rejection takes the edit out of the labels unless the reviewer chooses otherwise.
    assert html.count('<input type="radio" name="labels" value="revert" checked>') == 2
    assert 'value="revert_anyway"' in html and 'value="keep"' in html
    # ivy trimmed alice's nucleus since: the page warns before the verdict.
    assert f'data-later="{work["by_ivy"].id}"' in html and "Later" in html
    assert html.count('<canvas class="thumb"') == 4
    assert f'data-labels="/api/v1/volumes/{by_bob.volume_id}/labels/v2/tiles/"' in html
    assert "Modify" in html and "by <strong>alice</strong>" in html and "Delete" in html


def test_it_says_what_each_verdict_did_to_the_labels_and_counts_progress(client, ivy, alice, work):
    from annotation.services import correction_review

    correction_review(correction=work["by_bob"], reviewer=ivy, verdict="reject", comment="that one was real")
    correction_review(correction=work["by_alice"], reviewer=ivy, verdict="reject", comment="too deep", labels="keep")
    html = _html(_get(client, ivy, "project-review-page", work["alice"].project_id))
    assert "Recent verdicts" in html
    assert f'data-correction="{work["by_bob"].id}" data-review-labels="reverted"' in html
    assert "taken out of the latest labels in v5" in html and "the labels kept as they were" in html
    html = _html(_get(client, alice, "project-page", work["alice"].project_id))
    assert "labels kept" in html and "uncertain nuclei checked" in html
    html = _html(_get(client, ivy, "project-page", work["alice"].project_id))
    assert html.count("uncertain nuclei checked") == 2  # alice's and bob's assignments


def test_it_says_when_nothing_waits_for_review(client, ada, project):
    html = _html(_get(client, ada, "project-review-page", project.id))
    assert "Nothing is waiting for review" in html


def test_it_shows_an_edit_on_the_plane_where_it_is(work, volume):
    from annotation.selectors import correction_planes

    by_alice, by_bob = work["by_alice"], work["by_bob"]
    planes = correction_planes(corrections=[by_alice, by_bob])
    assert planes[by_alice.id] == by_alice.geometry["z"]  # the plane she drew on
    [gone] = [n for n in _nuclei(volume, 50) if n.label_id == by_bob.nucleus_ids[0]]
    assert planes[by_bob.id] == round(gone.centroid_z)  # the middle of the deleted nucleus
    assert correction_planes(corrections=[]) == {}


def test_it_chooses_a_thumbnail_level_that_fits_the_edit():
    from types import SimpleNamespace

    from frontend.views import _thumbnail

    volume = SimpleNamespace(n_levels=3, level_shapes=[(5, 1000, 800), (5, 500, 400), (5, 250, 200)])
    near = _thumbnail(volume, [2, 3, 100, 120, 200, 230], 2)
    assert (near["z"], near["level"]) == (2, 0)
    assert near["crop"] == "77,143,177,253"  # the box with a margin around it
    wide = _thumbnail(volume, [0, 5, 0, 600, 0, 500], 1)
    assert (wide["z"], wide["level"]) == (1, 2)  # coarsest level there is; the crop clipped to it
    assert wide["crop"] == "0,227,0,200"  # y to 600 + a margin of 308, x clipped to the level


def test_it_opens_the_viewer_at_the_version_asked_for(client, ivy, work):
    client.force_login(ivy)
    url = reverse("volume-viewer", args=[work["by_alice"].volume_id])

    def head(query):
        html = _html(client.get(url, query))
        start = html.index('<script id="viewer-config" type="application/json">')
        return json.loads(html[html.index(">", start) + 1:html.index("</script>", start)])["head"]

    assert head({}) == "v4"
    assert head({"version": "v1"}) == "v1"
    assert head({"version": "v99"}) == "v4"  # unknown: the latest, as without it


# -- agreement, audit -------------------------------------------------------------------------


def test_it_shows_agreement_per_student_and_who_is_not_compared_yet(client, ivy, work):
    html = _html(_get(client, ivy, "project-agreement-page", work["alice"].project_id))
    row = re.search(r"<tr[^>]*>\s*<td>alice</td>\s*<td>1</td>\s*<td>([0-9.]+)</td>\s*<td>([0-9.]+)</td>", html)
    assert row, html
    assert float(row.group(1)) == 1.0 and 0.5 < float(row.group(2)) < 1.0
    assert "Not compared yet: bob." in html
    assert "alice and ivy" in html and "stack one" in html


def test_it_lists_the_audit_trail_newest_first_a_page_at_a_time(client, ada, work, monkeypatch):
    monkeypatch.setattr("frontend.views._PAGE_SIZE", 3)
    url_args = work["alice"].project_id
    html = _html(_get(client, ada, "project-audit-page", url_args))
    actions = re.findall(r"<td><code>([a-z_.]+)</code></td>", html)
    assert actions == ["correction.create"] * 3  # ivy's, bob's, alice's
    assert "page 1 of" in html and 'href="?page=2"' in html
    older = re.findall(r"<td><code>([a-z_.]+)</code></td>", _html(_get(client, ada, "project-audit-page", url_args,
                                                                        page=2)))
    assert "assignment.create" in older


# -- training ---------------------------------------------------------------------------------


@pytest.fixture
def trained(work, ada):
    """A failed training of ivy's approved correction, with its loss curve, and a model version
    scored against the base model: better at AP@0.5, worse at AP@0.75, fewer splits."""
    from segmentation.models import ModelVersion, TrainingJob
    from segmentation.services import training_job_create

    project = work["alice"].project
    job = training_job_create(project=project, user=ada, params={"training": {"steps": 4}})
    TrainingJob.objects.filter(id=job.id).update(status="failed", error="RuntimeError: out of memory",
                                                 metrics={"loss": [[1, 0.9], [2, 0.7]], "steps": 4})
    scores = {"evaluated": True, "better": False, "reference_model": "ezq_nuclei_v1",
              "candidate": {"ap50": 0.8, "ap75": 0.5, "splits": 1, "merges": 2},
              "reference": {"ap50": 0.7, "ap75": 0.6, "splits": 3, "merges": 2},
              "delta": {"ap50": 0.1, "ap75": -0.1, "splits": -2, "merges": 0}}
    version = ModelVersion.objects.create(
        project=project, number=1, name="ezq_nuclei_v1.lora-abc", base_model="ezq_nuclei_v1", base_sha256="0" * 64,
        adapter_path="models/nuclei-101/ezq_nuclei_v1.lora-abc.pt", adapter_sha256="1" * 64, adapter_bytes=2048,
        correction_ids=[work["by_ivy"].id], held_out_ids=[], params={}, scores=scores, created_by=ada)
    return job, version


def test_it_shows_ada_the_jobs_the_scores_and_every_button(client, ada, trained):
    job, version = trained
    html = _html(_get(client, ada, "project-training-page", job.project_id))
    assert reverse("training-job-list", args=[job.project_id]) in html and 'name="params.training.steps"' in html
    assert reverse("training-job-resume", args=[job.id]) in html  # failed: it can be resumed
    assert reverse("training-job-cancel", args=[job.id]) not in html
    assert "RuntimeError: out of memory" in html
    assert '<td class="delta good">+0.1</td>' in html and '<td class="delta bad">-0.1</td>' in html
    assert '<td class="delta good">-2</td>' in html  # fewer split errors is better
    assert "Promote version 1" in html and "the shipped base model" in html
    config = json.loads(re.search(r'<script id="training-config" type="application/json">(.*?)</script>',
                                  html).group(1))
    assert config["websocket"] == f"/ws/projects/{job.project_id}/training/"
    [state] = config["jobs"]
    assert (state["id"], state["status"], state["loss"], state["steps"]) == (job.id, "failed", [[1, 0.9], [2, 0.7]], 4)


def test_it_shows_ivy_the_training_page_without_the_admin_buttons(client, ivy, trained):
    job, version = trained
    html = _html(_get(client, ivy, "project-training-page", job.project_id))
    assert "Version 1" in html and "RuntimeError: out of memory" in html
    assert reverse("training-job-resume", args=[job.id]) not in html
    assert reverse("default-model", args=[job.project_id]) not in html
    assert 'name="params.training.steps"' not in html
    assert "The admins of the project start, cancel and resume trainings" in html


def test_it_marks_the_default_and_offers_a_roll_back(client, ada, trained):
    from segmentation.services import model_version_promote

    job, version = trained
    model_version_promote(project=version.project, model_version=version, user=ada, note="first adapter")
    html = _html(_get(client, ada, "project-training-page", job.project_id))
    assert "<strong>model version 1</strong>" in html and "Roll back to the base model" in html
    assert "Promote version 1" not in html
    assert "first adapter" in html  # the history of the default
    assert "the default has changed since" in html  # scored against the base, the default is now v1


# -- password change --------------------------------------------------------------------------


def test_it_changes_alices_password(client, alice):
    client.force_login(alice)
    page = client.get(reverse("password_change"))
    assert page.status_code == 200 and 'name="old_password"' in _html(page)
    assert f'href="{reverse("password_change")}"' in _html(client.get(reverse("project-list-page")))  # the header
    new = "a much longer passphrase 42"
    response = client.post(reverse("password_change"),
                           {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert response.status_code == 302 and response["Location"] == reverse("password_change_done")
    assert "Password changed" in _html(client.get(reverse("password_change_done")))
    client.logout()
    assert client.login(username="alice", password=new)


def test_it_refuses_a_wrong_current_password(client, alice):
    client.force_login(alice)
    response = client.post(reverse("password_change"),
                           {"old_password": "not it", "new_password1": "x y z w 1234", "new_password2": "x y z w 1234"})
    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in _html(response)
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_it_orders_the_review_queue_as_a_strategy_of_the_registry_picks(client, ivy, work):
    project_id = work["alice"].project_id
    html = _html(_get(client, ivy, "project-review-page", project_id))
    for name in ("oldest", "top", "round_robin", "random", "mixed"):  # the API's choices, one list
        assert f'<option value="{name}"' in html
    assert '<option value="oldest" title="first come, first served" selected>' in html
    pending = [work["by_alice"].id, work["by_bob"].id]
    oldest_first = [int(i) for i in re.findall(r'data-correction="(\d+)"', html) if int(i) in pending]
    assert oldest_first == sorted(pending)
    client.force_login(ivy)
    url = reverse("project-review-page", args=[project_id])
    html = client.get(url, {"strategy": "random", "seed": 7}).content.decode()
    assert re.search(r'<option value="random"[^>]*selected>', html)
    assert sorted(int(i) for i in re.findall(r'data-correction="(\d+)"', html) if int(i) in pending) == sorted(pending)
    refused = client.get(url, {"strategy": "loudest"})
    assert refused.status_code == 400 and "strategy" in refused.content.decode()
