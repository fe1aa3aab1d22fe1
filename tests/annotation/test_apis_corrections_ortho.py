"""Edits made in the XZ and YZ views: a split drawn as a line there is a z-cut through the
nucleus (one correction, one label version, undone like any other); merge and delete work from
any view; the same 409, 404 and 403 as an edit on an XY plane."""

import numpy as np
import pytest
from django.urls import reverse

from annotation.models import Correction, LabelVersion
from annotation.stores import volume_store
from tests.annotation.conftest import write_tiff

pytestmark = pytest.mark.django_db


def _merged_stack():
    """Nucleus 1: two nuclei joined in z (planes 1-5, then 6-10, wider), nucleus 2 beside them."""
    labels = np.zeros((12, 64, 64), np.uint32)
    labels[1:6, 20:40, 14:34] = 1
    labels[6:11, 18:42, 10:38] = 1
    labels[2:10, 20:40, 48:60] = 2
    image = np.where(labels > 0, 1200, 100).astype(np.uint16)
    return image, labels


@pytest.fixture
def merged(project, ivy, alice, bob, tmp_path):
    """The stack imported, its labels as v1, assigned whole to alice and bob."""
    from annotation.services import assignment_create, label_version_create, volume_import

    image, labels = _merged_stack()
    tiff = write_tiff(tmp_path / "merged.tif", image, imagej=True, resolution=(2.0, 2.0),
                      metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    volume = volume_import(project=project, src_path=tiff, name="merged", user=ivy)
    label_version_create(volume=volume, labels=labels, user=ivy, source=LabelVersion.Source.SEGMENTATION,
                         model_version="ezq_nuclei_v1")
    for student in (alice, bob):
        assignment_create(project=project, volume=volume, student=student, assigned_by=ivy)
    return volume


def _post(client, volume, body):
    return client.post(reverse("correction-list", args=[volume.id]), body, format="json")


# The line across the narrower upper nucleus, between planes 5 and 6 (z = 6.0 is plane 6's top).
XZ_SPLIT = {"label_version": "v1", "type": "split", "nucleus_ids": [1], "z": 6, "plane": "xz",
            "line": [[6.0, 16.0], [6.0, 31.0]]}


@pytest.mark.parametrize("plane, line", [("xz", [[6.0, 16.0], [6.0, 31.0]]), ("yz", [[6.0, 22.0], [6.0, 37.0]])])
def test_it_splits_a_z_merge_from_an_orthogonal_view_and_undoes_it(merged, client_for, alice, plane, line):
    client = client_for(alice)
    response = _post(client, merged, {**XZ_SPLIT, "plane": plane, "line": line})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["type"] == "split" and body["result_version"] == "v2" and body["geometry"]["plane"] == plane
    assert body["nucleus_ids"] == [1] and sorted(body["new_ids"]) == [1, 3]
    assert Correction.objects.count() == 1 and LabelVersion.objects.filter(volume=merged).count() == 2
    store = volume_store(merged)
    after = store.read_labels("v2")
    _, labels = _merged_stack()
    upper, lower = set(np.unique(after[1:6][labels[1:6] == 1])), set(np.unique(after[7:11][labels[7:11] == 1]))
    assert len(upper) == len(lower) == 1 and upper | lower == {1, 3}
    assert (after[labels == 2] == 2).all()
    # The XZ tile through the nucleus shows both halves.
    tile = store.read_label_ortho_tile("v2", "xz", 0, 30, 0, 0)
    assert set(np.unique(tile)) == {0, 1, 2, 3}
    undo = client.post(reverse("correction-undo", args=[body["id"]]), {"label_version": "v2"}, format="json")
    assert undo.status_code == 201, undo.json()
    np.testing.assert_array_equal(store.read_labels(undo.json()["result_version"]), labels)
    np.testing.assert_array_equal(store.read_label_ortho_tile("v3", "yz", 0, 20, 0, 0),
                                  store.read_label_ortho_tile("v1", "yz", 0, 20, 0, 0))


def test_it_merges_and_deletes_from_an_orthogonal_view(merged, client_for, ivy):
    client = client_for(ivy)
    merged_ = _post(client, merged, {"label_version": "v1", "type": "merge", "nucleus_ids": [1, 2], "plane": "yz",
                                     "z": 4})
    assert merged_.status_code == 201, merged_.json()
    assert set(np.unique(volume_store(merged).read_labels("v2"))) == {0, 1}
    deleted = _post(client, merged, {"label_version": "v2", "type": "delete", "nucleus_ids": [1], "plane": "xz"})
    assert deleted.status_code == 201 and not volume_store(merged).read_labels("v3").any()
    # each one correction record and one label version, as from the XY view
    assert Correction.objects.filter(volume=merged).count() == 2
    assert sorted(LabelVersion.objects.filter(volume=merged).values_list("name", flat=True)) == ["v1", "v2", "v3"]
    assert [c.geometry["plane"] for c in Correction.objects.filter(volume=merged).order_by("id")] == ["yz", "xz"]


def test_it_answers_409_to_an_orthogonal_split_of_a_stale_version(merged, client_for, alice, bob):
    assert _post(client_for(alice), merged, {"label_version": "v1", "type": "delete", "nucleus_ids": [2]}
                 ).status_code == 201
    response = _post(client_for(bob), merged, XZ_SPLIT)
    assert response.status_code == 409
    assert response.json()["extra"] == {"label_version": "v1", "current_label_version": "v2"}
    assert LabelVersion.objects.filter(volume=merged).count() == 2


def test_it_refuses_eve_and_a_student_outside_her_region(merged, client_for, eve, alice, ivy, project):
    from annotation.models import Assignment
    from annotation.services import assignment_create

    assert _post(client_for(eve), merged, XZ_SPLIT).status_code == 404
    Assignment.objects.filter(volume=merged, student=alice).delete()
    assignment_create(project=project, volume=merged, student=alice, assigned_by=ivy, region=[0, 12, 0, 64, 40, 64])
    response = _post(client_for(alice), merged, XZ_SPLIT)
    assert response.status_code == 403 and "outside the region assigned to you" in response.json()["message"]
    assert LabelVersion.objects.filter(volume=merged).count() == 1


@pytest.mark.parametrize("change, words", [
    ({"plane": "zx"}, "plane"),
    ({"line": None, "seeds": [[6, 20], [6, 25]]}, "line"),
    ({"line": [[11.5, 0.0], [11.5, 63.0]]}, "does not cut"),
])
def test_it_refuses_orthogonal_splits_it_cannot_make(merged, client_for, alice, change, words):
    response = _post(client_for(alice), merged, {**XZ_SPLIT, **change})
    assert response.status_code == 400 and words in str(response.json())
    assert LabelVersion.objects.filter(volume=merged).count() == 1
