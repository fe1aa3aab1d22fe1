"""The API of curation: a rejection that takes the edit back out (and its 409 when later edits
changed the same nuclei), the check mark (``type: confirm``), what a volume's people did
(``volumes/<id>/curation/``), a student's progress on their queue and the staff's list, and
a segmentation job started from scratch."""

import numpy as np
import pytest
from django.urls import reverse

from annotation.models import AuditEvent, Nucleus
from annotation.services import assignment_create
from annotation.stores import volume_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_v1(project, ivy, tmp_path):
    """v1 of a small generated 4x96x96 stack (quick to import and edit): its true labels, every
    other nucleus with a made-up score."""
    import tifffile

    from annotation.services import label_version_create, volume_import
    from segmentation.core import synthetic

    sample = synthetic.generate_3d(shape=(4, 96, 96), seed=2)
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, np.clip(np.round(sample.image * 100), 0, 65535).astype(np.uint16),
                     photometric="minisblack", metadata={"axes": "ZYX"})
    volume = volume_import(project=project, src_path=path, name="small", user=ivy, voxel_size=(2.0, 0.5, 0.5))
    ids = np.unique(sample.labels)[1:]
    return label_version_create(volume=volume, labels=sample.labels, user=ivy, source="segmentation",
                                model_version="ezq_nuclei_v1", uncertainty={int(i): float(i) / 1000 for i in ids[::2]})


def _largest(version, k=0):
    return Nucleus.objects.of(version).order_by("-volume_voxels")[k]


@pytest.fixture
def assigned(small_v1, alice, ivy):
    return assignment_create(project=small_v1.volume.project, volume=small_v1.volume, student=alice, assigned_by=ivy)


def _edit(client, volume, body):
    response = client.post(reverse("correction-list", args=[volume.id]), body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_it_reverts_a_rejected_edit_and_asks_when_later_edits_touched_it(small_v1, assigned, client_for, alice,
                                                                         ivy, eve):
    volume = small_v1.volume
    n, m = _largest(small_v1), _largest(small_v1, 1)
    merged = _edit(client_for(alice), volume, {"label_version": "v1", "type": "merge",
                                               "nucleus_ids": [n.label_id, m.label_id]})
    kept_id = min(n.label_id, m.label_id)
    later = _edit(client_for(alice), volume, {"label_version": "v2", "type": "confirm", "nucleus_ids": [kept_id]})
    assert (later["type"], later["result_version"], later["label_version"]) == ("confirm", None, "v2")
    url = reverse("correction-reject", args=[merged["id"]])
    assert client_for(eve).post(url, {"comment": "no"}, format="json").status_code == 404
    assert client_for(alice).post(url, {"comment": "no"}, format="json").status_code == 403
    stale = client_for(ivy).post(url, {"comment": "two nuclei", "label_version": "v1"}, format="json")
    assert stale.status_code == 409 and stale.json()["extra"]["current_label_version"] == "v2"
    conflict = client_for(ivy).post(url, {"comment": "two nuclei", "label_version": "v2"}, format="json")
    assert conflict.status_code == 409, conflict.json()
    assert conflict.json()["extra"]["conflict"] == "later_edits"
    assert [c["id"] for c in conflict.json()["extra"]["later_corrections"]] == [later["id"]]
    assert client_for(ivy).post(url, {"comment": "x", "labels": "sometimes"}, format="json").status_code == 400
    done = client_for(ivy).post(url, {"comment": "two nuclei", "label_version": "v2", "labels": "revert_anyway"},
                                format="json")
    assert done.status_code == 200, done.json()
    assert (done.json()["review_status"], done.json()["review_labels"], done.json()["reverted_version"]) == (
        "rejected", "reverted", "v3")
    store = volume_store(volume)
    assert np.array_equal(store.read_labels("v3"), store.read_labels("v1"))  # both nuclei back, exactly
    nuclei = client_for(alice).get(reverse("nucleus-list", args=[volume.id, "v3"]),
                                   {"label_id_min": kept_id, "label_id_max": kept_id}).json()["results"]
    assert nuclei[0]["curation"] == ""  # the model's nucleus again, not alice's checked merge


def test_it_records_a_check_and_shows_it_on_the_nucleus(small_v1, assigned, client_for, alice, ivy):
    volume = small_v1.volume
    n = _largest(small_v1)
    check = _edit(client_for(alice), volume, {"label_version": "v1", "type": "confirm", "nucleus_ids": [n.label_id],
                                              "z": round(n.centroid_z)})
    assert (check["review_status"], check["nucleus_ids"], check["new_ids"]) == ("pending", [n.label_id], [n.label_id])
    row = client_for(alice).get(reverse("nucleus-list", args=[volume.id, "v1"]),
                                {"label_id_min": n.label_id, "label_id_max": n.label_id}).json()["results"][0]
    assert row["curation"] == "checked"
    again = client_for(alice).post(reverse("correction-list", args=[volume.id]),
                                   {"label_version": "v1", "type": "confirm", "nucleus_ids": [n.label_id]},
                                   format="json")
    assert again.status_code == 409
    # A reviewer may amend a student's correction by checking a nucleus instead.
    m = _largest(small_v1, 1)
    deleted = _edit(client_for(alice), volume, {"label_version": "v1", "type": "delete", "nucleus_ids": [m.label_id]})
    amended = client_for(ivy).post(reverse("correction-amend", args=[deleted["id"]]),
                                   {"label_version": "v2", "type": "confirm", "nucleus_ids": [n.label_id]},
                                   format="json")
    assert amended.status_code == 409  # n is checked already in v2 (the mark came along)
    other = volume.label_versions.get(name="v2").nuclei.filter(curation="") \
        .order_by("-volume_voxels").first()
    amended = client_for(ivy).post(reverse("correction-amend", args=[deleted["id"]]),
                                   {"label_version": "v2", "type": "confirm", "nucleus_ids": [other.label_id]},
                                   format="json")
    assert amended.status_code == 201 and amended.json()["result_version"] is None
    two = client_for(alice).post(reverse("correction-list", args=[volume.id]),
                                 {"label_version": "v1", "type": "confirm", "nucleus_ids": [1, 2]}, format="json")
    assert two.status_code == 400


def test_it_says_what_people_did_and_counts_a_students_progress(small_v1, assigned, client_for, alice, ivy, eve):
    volume = small_v1.volume
    scored = Nucleus.objects.of(small_v1).filter(uncertainty__isnull=False)
    scored.update(uncertainty=0.9)  # every scored nucleus uncertain
    target = scored.order_by("-volume_voxels").first()
    _edit(client_for(alice), volume, {"label_version": "v1", "type": "confirm", "nucleus_ids": [target.label_id]})
    other = Nucleus.objects.of(small_v1).exclude(label_id=target.label_id) \
        .order_by("-volume_voxels").first()
    _edit(client_for(alice), volume, {"label_version": "v1", "type": "delete", "nucleus_ids": [other.label_id]})
    url = reverse("volume-curation", args=[volume.id])
    assert client_for(eve).get(url).status_code == 404
    assert client_for(alice).get(url).json() == {"label_version": "v2", "edited": 0, "checked": 1,
                                                 "open_assignments": 1, "pending_corrections": 2, "deleted": 1}
    uncertain = scored.count() - (1 if other.uncertainty is not None else 0)
    mine = client_for(alice).get(reverse("my-assignment-list")).json()
    assert mine[0]["progress"] == {"uncertain": uncertain, "checked": 1, "edited": 0}
    staff = client_for(ivy).get(reverse("project-assignment-list", args=[volume.project_id])).json()
    assert staff[0]["progress"] == mine[0]["progress"]


def test_it_starts_a_segmentation_from_scratch_only_when_asked(small_v1, client_for, ivy):
    from segmentation.models import SegmentationJob

    volume = small_v1.volume
    url = reverse("segmentation-job-list", kwargs={"volume_id": volume.id})
    kept = client_for(ivy).post(url, {"params": {"diameter": 15.0}}, format="json").json()
    scratch = client_for(ivy).post(url, {"params": {"diameter": 15.0}, "from_scratch": True}, format="json").json()
    assert (kept["from_scratch"], scratch["from_scratch"]) == (False, True)
    assert SegmentationJob.objects.get(id=scratch["id"]).from_scratch
    event = AuditEvent.objects.get(action="segmentation_job.create", object_id=scratch["id"])
    assert event.details["from_scratch"] is True and event.details["drops"]["label_version"] == "v1"


def test_an_approved_check_is_what_a_training_job_learns_from(small_v1, assigned, client_for, alice, ivy, ada):
    volume = small_v1.volume
    n = _largest(small_v1)
    check = _edit(client_for(alice), volume, {"label_version": "v1", "type": "confirm", "nucleus_ids": [n.label_id]})
    trainings = reverse("training-job-list", args=[volume.project_id])
    refused = client_for(ada).post(trainings, {}, format="json")
    assert refused.status_code == 400 and "no approved corrections" in refused.json()["message"]  # pending: not yet
    approved = client_for(ivy).post(reverse("correction-approve", args=[check["id"]]), {}, format="json")
    assert approved.status_code == 200 and approved.json()["review_status"] == "approved"
    job = client_for(ada).post(trainings, {}, format="json")
    assert job.status_code == 201, job.json()
    assert job.json()["correction_ids"] == [check["id"]]


def test_a_segmentation_job_keeps_a_checked_nucleus_voxel_for_voxel(small_v1, client_for, ivy):
    from segmentation.services import segmentation_job_run

    volume = small_v1.volume
    n = _largest(small_v1)
    _edit(client_for(ivy), volume, {"label_version": "v1", "type": "confirm", "nucleus_ids": [n.label_id]})
    created = client_for(ivy).post(reverse("segmentation-job-list", kwargs={"volume_id": volume.id}),
                                   {"params": {"diameter": 15.0}}, format="json")
    assert created.status_code == 201, created.json()
    assert segmentation_job_run(job_id=created.json()["id"]) == "succeeded"
    job = client_for(ivy).get(reverse("segmentation-job-detail", args=[created.json()["id"]])).json()
    assert (job["status"], job["kept_nuclei"], job["from_scratch"], job["label_version"]) == (
        "succeeded", 1, False, "v2")
    store = volume_store(volume)
    assert np.array_equal(store.read_labels("v2") == n.label_id, store.read_labels("v1") == n.label_id)
    row = client_for(ivy).get(reverse("nucleus-list", args=[volume.id, "v2"]),
                              {"label_id_min": n.label_id, "label_id_max": n.label_id}).json()["results"]
    assert row[0]["curation"] == "checked"
    assert client_for(ivy).get(reverse("volume-curation", args=[volume.id])).json()["checked"] == 1
