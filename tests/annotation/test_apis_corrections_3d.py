"""The corrections API with drawings across planes: an add interpolated between outlines on
two planes, the spherical brush (radius in µm), the fill of enclosed background. Each is one
correction and one new version, refused with 409 on a stale version, 403 outside a student's
region and 400 past the edit limits."""

import numpy as np
import pytest
from django.urls import reverse

from annotation.models import Correction, LabelVersion

pytestmark = pytest.mark.django_db


def _square(y0, x0, side):
    return [[y0, x0], [y0, x0 + side], [y0 + side, x0 + side], [y0 + side, x0]]


@pytest.fixture
def drawn(volume_3d, ivy, alice, bob):
    """v1 of the stack (8 x 300 x 300, voxels 2 x 0.5 x 0.5 µm): nucleus 1 a ring with a hole on
    planes 2-4, nucleus 2 a block; alice is assigned the whole volume, bob its corner
    y, x < 100."""
    from annotation.services import assignment_create, label_version_create

    labels = np.zeros(volume_3d.shape, np.uint32)
    yy, xx = np.ogrid[:300, :300]
    ring = ((yy - 150) ** 2 + (xx - 150) ** 2 <= 20 ** 2) & ((yy - 150) ** 2 + (xx - 150) ** 2 > 6 ** 2)
    labels[2:5][:, ring] = 1
    labels[2:6, 200:240, 200:240] = 2
    version = label_version_create(volume=volume_3d, labels=labels, user=ivy, source=LabelVersion.Source.UPLOAD)
    assignment_create(project=volume_3d.project, volume=volume_3d, student=alice, assigned_by=ivy)
    assignment_create(project=volume_3d.project, volume=volume_3d, student=bob, assigned_by=ivy,
                      region=[0, 8, 0, 100, 0, 100])
    return version, labels


def _post(client, version, body):
    return client.post(reverse("correction-list", args=[version.volume_id]),
                       {"label_version": version.name, **body}, format="json")


def test_it_adds_a_nucleus_interpolated_between_two_planes(drawn, client_for, alice):
    version, _ = drawn
    response = _post(client_for(alice), version, {
        "type": "add", "z": 5, "sections": [{"z": 1, "polygon": _square(40, 40, 10)},
                                            {"z": 5, "polygon": _square(30, 30, 30)}]})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["type"] == "add" and body["new_ids"] == [3] and body["result_version"] == "v2"
    assert body["geometry"]["z_range"] == [1, 5] and len(body["geometry"]["sections"]) == 2
    made = version.volume.label_versions.get(name="v2").nuclei.get(label_id=3)
    assert (made.z_min, made.z_max) == (1, 5)
    # Not one polygon stacked: between 5 x 10 x 10 and 5 x 30 x 30 pixels.
    assert 5 * 10 * 10 < made.volume_voxels < 5 * 30 * 30
    assert Correction.objects.count() == 1 and LabelVersion.objects.filter(volume=version.volume).count() == 2
    # The same outlines onto nucleus 2 ("grow the selected nucleus"): a modify, background only.
    head = LabelVersion.objects.get(volume=version.volume, name="v2")
    grow = _post(client_for(alice), head, {"type": "modify", "nucleus_ids": [2], "z": 3, "sections": [
        {"z": 3, "polygon": _square(190, 190, 60)}, {"z": 5, "polygon": _square(195, 195, 50)}]})
    assert grow.status_code == 201, grow.json()
    assert grow.json()["type"] == "modify" and grow.json()["new_ids"] == [2]
    grown = version.volume.label_versions.get(name="v3").nuclei.get(label_id=2)
    assert (grown.z_min, grown.z_max) == (2, 5) and grown.volume_voxels > 4 * 40 * 40


def test_it_grows_a_nucleus_with_the_spherical_brush_through_the_planes_it_reaches(drawn, client_for, alice):
    version, labels = drawn
    response = _post(client_for(alice), version, {
        "type": "modify", "nucleus_ids": [2], "z": 3, "stroke": {"points": [[220, 240]], "radius_um": 2.0}})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["geometry"]["radius_um"] == 2.0 and body["geometry"]["radius"] is None
    assert body["bbox"][:2] == [2, 6]  # 2 µm over 2 µm planes: one plane up and down, and the nucleus
    grown = version.volume.label_versions.get(name="v2").nuclei.get(label_id=2)
    # A ball of 2 µm = 4 pixels: the half disc outside the block on plane 3, smaller ones on 2 and 4.
    assert grown.volume_voxels > (labels == 2).sum() + 20


def test_it_fills_the_hole_of_a_nucleus_on_the_planes_named(drawn, client_for, alice):
    version, labels = drawn
    response = _post(client_for(alice), version, {
        "type": "modify", "nucleus_ids": [1], "z": 3, "z_range": [2, 4], "fill": {"point": [150, 150], "radius": 30}})
    assert response.status_code == 201, response.json()
    filled = version.volume.label_versions.get(name="v2").nuclei.get(label_id=1)
    yy, xx = np.ogrid[:300, :300]
    hole = ((yy - 150) ** 2 + (xx - 150) ** 2 <= 6 ** 2).sum()
    assert filled.volume_voxels == (labels == 1).sum() + 3 * hole
    leak = _post(client_for(alice), LabelVersion.objects.get(volume=version.volume, name="v2"), {
        "type": "add", "z": 3, "fill": {"point": [50, 50], "radius": 20}})
    assert leak.status_code == 400 and "not enclosed" in leak.json()["message"]


def test_it_refuses_a_stale_version_outside_the_region_and_past_the_limits(drawn, client_for, alice, bob, settings):
    version, _ = drawn
    sections = [{"z": 1, "polygon": _square(150, 150, 10)}, {"z": 3, "polygon": _square(150, 150, 12)}]
    outside = _post(client_for(bob), version, {"type": "add", "z": 1, "sections": sections})
    assert outside.status_code == 403 and "outside the region assigned to you" in outside.json()["message"]
    inside = _post(client_for(bob), version, {"type": "add", "z": 1, "sections": [
        {"z": 1, "polygon": _square(10, 10, 10)}, {"z": 3, "polygon": _square(12, 12, 12)}]})
    assert inside.status_code == 201, inside.json()
    stale = _post(client_for(alice), version, {"type": "modify", "nucleus_ids": [2], "z": 3,
                                               "stroke": {"points": [[220, 240]], "radius_um": 1.0}})
    assert stale.status_code == 409 and stale.json()["extra"]["current_label_version"] == "v2"
    head = LabelVersion.objects.get(volume=version.volume, name="v2")
    settings.EZQUANT_EDIT_MAX_RADIUS = 5
    wide = _post(client_for(alice), head, {"type": "modify", "nucleus_ids": [2], "z": 3,
                                           "stroke": {"points": [[220, 240]], "radius_um": 3.0}})  # 6 pixels
    assert wide.status_code == 400 and wide.json()["extra"]["setting"] == "EZQUANT_EDIT_MAX_RADIUS"
    settings.EZQUANT_EDIT_MAX_POINTS = 6
    many = _post(client_for(alice), head, {"type": "add", "z": 1, "sections": sections})  # 8 points
    assert many.status_code == 400 and many.json()["extra"]["setting"] == "EZQUANT_EDIT_MAX_POINTS"
    assert Correction.objects.count() == 1


BAD = [
    ({"type": "add", "z": 1, "sections": [{"z": 1, "polygon": _square(0, 0, 5)}]}, "two or more different planes"),
    ({"type": "add", "z": 1, "fill": {"point": [5, 5]}}, "radius"),
    ({"type": "add", "z": 1, "fill": {"where": [5, 5], "radius": 3}}, "a fill is"),
    ({"type": "add", "z": 1, "sections": [{"z": 1, "polygon": "square"}, {"z": 2, "polygon": _square(0, 0, 5)}]},
     "polygon"),
    ({"type": "modify", "nucleus_ids": [2], "z": 3, "stroke": {"points": [[1, 1]], "radius_um": 2, "radius": 3}},
     "radius_um alone"),
]


def test_it_refuses_bad_3d_drawings_with_the_reason(drawn, client_for, alice):
    version, _ = drawn
    for body, message in BAD:  # one volume for all: each import costs seconds
        response = _post(client_for(alice), version, body)
        assert response.status_code == 400 and message in response.json()["message"], (body, response.json())
    assert Correction.objects.count() == 0


def test_merge_delete_and_check_reach_their_nuclei_planes_only(volume_3d, alice_assigned_deep, client_for):
    """Edits without a drawing name no plane: their region is their nuclei's boxes (it used to
    reach down from plane 0, so an edit cost more the deeper its nuclei lay, and a student whose
    region leaves plane 0 out could not delete or merge inside it). Their undo takes the same region."""
    alice, version = alice_assigned_deep
    client = client_for(alice)
    # The viewer sends the plane it shows (here 7, the last plane of the 4 the region takes): no plane of theirs.
    merged = _post(client, version, {"type": "merge", "nucleus_ids": [1, 2], "z": 7})
    assert merged.status_code == 201, merged.json()
    assert merged.json()["bbox"][:2] == [4, 8]  # nucleus 1 on planes 5-6, nucleus 2 on 4-7
    head = LabelVersion.objects.get(volume=volume_3d, name=merged.json()["result_version"])
    assert head.nuclei.get(label_id=1).volume_voxels == 2 * 20 * 20 + 4 * 10 * 10
    undone = client.post(reverse("correction-undo", args=[merged.json()["id"]]), {"label_version": head.name},
                         format="json")
    assert undone.status_code == 201, undone.json()
    head = LabelVersion.objects.get(volume=volume_3d, name=undone.json()["result_version"])
    deleted = _post(client, head, {"type": "delete", "nucleus_ids": [2], "z": 3})
    assert deleted.status_code == 201 and deleted.json()["bbox"][:2] == [4, 8]
    head = LabelVersion.objects.get(volume=volume_3d, name=deleted.json()["result_version"])
    assert not head.nuclei.filter(label_id=2).exists() and head.nuclei.filter(label_id=1).exists()
    checked = _post(client, head, {"type": "confirm", "nucleus_ids": [1]})
    assert checked.status_code == 201 and checked.json()["bbox"][:2] == [5, 7]


@pytest.fixture
def alice_assigned_deep(volume_3d, ivy, alice):
    """v1 of the stack with nucleus 1 on planes 5-6 and nucleus 2 beside it on planes 4-7; alice
    is assigned planes 3-7 only."""
    from annotation.services import assignment_create, label_version_create

    labels = np.zeros(volume_3d.shape, np.uint32)
    labels[5:7, 100:120, 100:120] = 1
    labels[4:8, 100:110, 120:130] = 2
    version = label_version_create(volume=volume_3d, labels=labels, user=ivy, source=LabelVersion.Source.UPLOAD)
    assignment_create(project=volume_3d.project, volume=volume_3d, student=alice, assigned_by=ivy,
                      region=[3, 8, 0, 300, 0, 300])
    return alice, version
