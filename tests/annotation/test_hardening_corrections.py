"""What one edit may cost and where its pixel work runs (issue 14, part 1), and ids that leave
no room for a new nucleus (part 3).

The pixel work of an edit runs before any transaction (on SQLite a transaction holds the one
write lock for everyone), the version is checked again when the edit commits, and edits above
the limits are refused with 400 in the documented shape before any pixel is read.
"""

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse

from annotation.models import Correction, LabelVersion, Nucleus
from ezquant_web.api import ApplicationError


def _post(client, volume, body):
    return client.post(reverse("correction-list", args=[volume.id]), body, format="json")


def _largest(version):
    return Nucleus.objects.of(version).order_by("-volume_voxels").first()


def _assert_refused(response, setting):
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"message", "extra"} and setting in body["message"]
    assert body["extra"]["setting"] == setting and body["extra"]["limit"] >= 0
    return body


@pytest.mark.django_db
def test_it_refuses_a_stroke_of_more_points_than_the_limit(labels_v1, client_for, ivy, settings):
    settings.EZQUANT_EDIT_MAX_POINTS = 100
    n = _largest(labels_v1)
    points = [[n.y_min + (i % 5), n.x_min + (i % 7)] for i in range(101)]
    body = _assert_refused(_post(client_for(ivy), labels_v1.volume, {
        "label_version": "v1", "type": "modify", "nucleus_ids": [n.label_id], "z": n.z_min,
        "stroke": {"points": points, "radius": 2}}), "EZQUANT_EDIT_MAX_POINTS")
    assert body["extra"]["points"] == 101 and body["extra"]["limit"] == 100
    assert not Correction.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_brush_wider_than_the_limit(labels_v1, client_for, ivy, settings):
    settings.EZQUANT_EDIT_MAX_RADIUS = 20
    n = _largest(labels_v1)
    body = _assert_refused(_post(client_for(ivy), labels_v1.volume, {
        "label_version": "v1", "type": "add", "z": n.z_min,
        "stroke": {"points": [[150, 150]], "radius": 21}}), "EZQUANT_EDIT_MAX_RADIUS")
    assert body["extra"]["radius"] == 21
    assert LabelVersion.objects.count() == 1


@pytest.mark.django_db
def test_it_refuses_an_edit_reaching_a_region_past_the_limit(labels_v1, client_for, ivy, settings):
    settings.EZQUANT_EDIT_MAX_VOXELS = 50 * 50 * 8
    # An add on every plane across 100 x 100 pixels: 8 x ~104 x ~104 voxels.
    body = _assert_refused(_post(client_for(ivy), labels_v1.volume, {
        "label_version": "v1", "type": "add", "z": 0, "z_range": [0, 7],
        "polygon": [[100, 100], [100, 200], [200, 200], [200, 100]]}), "EZQUANT_EDIT_MAX_VOXELS")
    assert body["extra"]["voxels"] > 50 * 50 * 8
    assert LabelVersion.objects.count() == 1


@pytest.mark.django_db
def test_an_edit_within_the_limits_still_passes(labels_v1, client_for, ivy, settings):
    settings.EZQUANT_EDIT_MAX_POINTS, settings.EZQUANT_EDIT_MAX_RADIUS = 3, 5
    response = _post(client_for(ivy), labels_v1.volume, {
        "label_version": "v1", "type": "add", "z": 0, "stroke": {"points": [[2, 2], [2, 6], [3, 9]], "radius": 5}})
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:  # it may land on a nucleus: then the core says so, not a limit
        assert "EZQUANT_EDIT" not in response.json()["message"]


@pytest.mark.django_db(transaction=True)
def test_the_pixel_work_runs_outside_any_transaction(labels_v1, ivy, monkeypatch):
    """On SQLite a transaction holds the database's write lock: the edit and the measuring
    must run before it begins (a slow edit stalled every other writer and the job worker)."""
    from annotation.services import correction_create
    from segmentation.core import editing, measurements

    seen = {}
    real_apply, real_measure = editing.apply_edit, measurements.nucleus_table

    def apply_edit(*args, **kwargs):
        seen["apply_edit"] = connection.in_atomic_block
        return real_apply(*args, **kwargs)

    def nucleus_table(*args, **kwargs):
        seen["nucleus_table"] = connection.in_atomic_block
        return real_measure(*args, **kwargs)

    monkeypatch.setattr(editing, "apply_edit", apply_edit)
    monkeypatch.setattr(measurements, "nucleus_table", nucleus_table)
    n = _largest(labels_v1)
    correction = correction_create(volume=labels_v1.volume, user=ivy, label_version="v1",
                                   edit={"correction_type": "delete", "nucleus_ids": [n.label_id]})
    assert correction.result_version.name == "v2"
    assert seen == {"apply_edit": False, "nucleus_table": False}


@pytest.mark.django_db(transaction=True)
def test_it_answers_409_when_another_edit_commits_while_the_pixels_are_computed(labels_v1, ivy, alice, monkeypatch):
    from annotation.services import correction_create
    from segmentation.core import editing

    volume = labels_v1.volume
    first, second = Nucleus.objects.of(labels_v1).order_by("label_id")[:2]
    real_apply = editing.apply_edit
    calls = []

    def apply_edit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # while the first edit computes, another one is made and committed
            correction_create(volume=volume, user=alice, label_version="v1",
                              edit={"correction_type": "delete", "nucleus_ids": [second.label_id]})
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(editing, "apply_edit", apply_edit)
    with pytest.raises(ApplicationError) as refused:
        correction_create(volume=volume, user=ivy, label_version="v1",
                          edit={"correction_type": "delete", "nucleus_ids": [first.label_id]})
    assert refused.value.status == 409 and refused.value.extra["current_label_version"] == "v2"
    assert list(LabelVersion.objects.filter(volume=volume).order_by("number").values_list("name", flat=True)) == [
        "v1", "v2"]
    assert Correction.objects.count() == 1


@pytest.mark.django_db
def test_an_add_never_overflows_the_ids(volume_3d, sample_3d, ivy, client_for):
    """A version whose largest id leaves no room (here made by the service, which uploads now
    refuse) answers 400 to an add or a split, never a 500 of uint32 overflow."""
    from annotation.services import label_version_create
    from annotation.storage.tiles import LABEL_ID_LIMIT

    labels = np.zeros((8, 300, 300), np.uint32)
    labels[2:5, 20:40, 20:40] = LABEL_ID_LIMIT - 1
    version = label_version_create(volume=volume_3d, labels=labels, user=ivy, source=LabelVersion.Source.UPLOAD)
    response = _post(client_for(ivy), volume_3d, {
        "label_version": version.name, "type": "add", "z": 3, "polygon": [[100, 100], [100, 120], [120, 120]]})
    assert response.status_code == 400, response.content
    assert response.json()["extra"] == {"largest_id": LABEL_ID_LIMIT - 1, "limit": LABEL_ID_LIMIT}
    assert LabelVersion.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_undo_and_redo_measure_outside_any_transaction(labels_v1, ivy, monkeypatch):
    from annotation.services import correction_create, correction_redo, correction_undo
    from segmentation.core import measurements

    n = _largest(labels_v1)
    correction = correction_create(volume=labels_v1.volume, user=ivy, label_version="v1",
                                   edit={"correction_type": "delete", "nucleus_ids": [n.label_id]})
    seen = []
    real_measure = measurements.nucleus_table

    def nucleus_table(*args, **kwargs):
        seen.append(connection.in_atomic_block)
        return real_measure(*args, **kwargs)

    monkeypatch.setattr(measurements, "nucleus_table", nucleus_table)
    undone = correction_undo(correction=correction, user=ivy, label_version="v2")
    assert undone.undone_version.name == "v3"
    redo = correction_redo(correction=undone, user=ivy, label_version="v3")
    assert redo.result_version.name == "v4" and redo.redo_of_id == correction.id
    assert seen == [False, False]
    with pytest.raises(ApplicationError) as refused:  # undone already: 409 as before
        correction_undo(correction=correction, user=ivy, label_version="v4")
    assert refused.value.status == 409


@pytest.mark.django_db(transaction=True)
def test_an_amendment_edits_outside_any_transaction_and_marks_the_original(labels_v1, ivy, alice, monkeypatch):
    from annotation.services import correction_amend, correction_create
    from segmentation.core import editing

    first, second = Nucleus.objects.of(labels_v1).order_by("label_id")[:2]
    student = correction_create(volume=labels_v1.volume, user=alice, label_version="v1",
                                edit={"correction_type": "delete", "nucleus_ids": [first.label_id]})
    seen = []
    real_apply = editing.apply_edit

    def apply_edit(*args, **kwargs):
        seen.append(connection.in_atomic_block)
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(editing, "apply_edit", apply_edit)
    amendment = correction_amend(correction=student, reviewer=ivy, label_version="v2",
                                 edit={"correction_type": "delete", "nucleus_ids": [second.label_id]}, comment="both")
    assert seen == [False]
    student.refresh_from_db()
    assert student.review_status == Correction.Review.AMENDED and amendment.amends_id == student.id
    with pytest.raises(ApplicationError) as refused:  # amended already: 409 before any pixel work
        correction_amend(correction=student, reviewer=ivy, label_version="v3",
                         edit={"correction_type": "delete", "nucleus_ids": [second.label_id]})
    assert refused.value.status == 409 and seen == [False]
