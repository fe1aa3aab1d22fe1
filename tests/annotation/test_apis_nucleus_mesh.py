"""/api/v1/volumes/<id>/label-versions/<v>/nuclei/<label_id>/mesh/: a 3D look at one nucleus."""

import numpy as np
import pytest
from django.urls import reverse

from annotation.models import LabelVersion, Nucleus
from segmentation.core import touching_labels

VOXEL = (2.0, 0.5, 0.5)  # the stack's voxel size (tests/annotation/conftest.py)


def _get(client, version, label_id, **params):
    return client.get(reverse("nucleus-mesh", args=[version.volume_id, version.name, label_id]), params)


@pytest.fixture
def stacked(volume_3d, ivy):
    """A version of the stack with nucleus 1: two discs stacked in z and joined (a z-merge),
    nucleus 2 touching it, and nucleus 3 apart."""
    from annotation.services import label_version_create

    labels = np.zeros(volume_3d.shape, np.uint32)
    yy, xx = np.ogrid[:300, :300]
    for z, r in zip(range(8), (6, 12, 14, 6, 6, 14, 12, 6), strict=True):  # wide, narrow at planes 3-4, wide
        labels[z][(yy - 100) ** 2 + (xx - 100) ** 2 <= r * r] = 1
    labels[2:6, 85:115, 115:125][labels[2:6, 85:115, 115:125] == 0] = 2
    labels[3:5, 200:220, 200:220] = 3
    return label_version_create(volume=volume_3d, labels=labels, user=ivy, source=LabelVersion.Source.UPLOAD), labels


@pytest.mark.django_db
def test_it_meshes_the_nucleus_and_its_neighbours_in_micrometres(stacked, client_for, alice):
    version, labels = stacked
    body = _get(client_for(alice), version, 1).json()
    row = Nucleus.objects.of(version).get(label_id=1)
    assert body["label_id"] == 1 and body["label_version"] == version.name
    assert (body["z_min"], body["z_max"], body["z_extent_um"]) == (0, 7, 8 * VOXEL[0])
    assert body["volume_um3"] == row.volume_um3 == pytest.approx((labels == 1).sum() * 0.5)
    assert body["neighbours"] == touching_labels(labels, 1) == [2]
    meshes = {m["role"]: m for m in body["meshes"]}
    assert [m["label_id"] for m in body["meshes"]] == [1, 2]
    nucleus = np.array(meshes["nucleus"]["vertices"]).reshape(-1, 3)
    faces = np.array(meshes["nucleus"]["faces"]).reshape(-1, 3)
    assert len(faces) == meshes["nucleus"]["n_triangles"] > 0 and faces.max() < len(nucleus)
    # Vertices in µm, around the nucleus: y, x about 100 * 0.5 = 50 µm, z within the planes.
    assert np.abs(nucleus[:, 1:].mean(axis=0) - 50.0).max() < 1.0
    assert nucleus[:, 0].min() >= -VOXEL[0] and nucleus[:, 0].max() <= 8 * VOXEL[0]
    assert [p["z"] for p in body["profile"]] == list(range(8))
    assert body["profile"][3]["area_um2"] == pytest.approx((labels[3] == 1).sum() * 0.25)
    assert any("waist at plane 3" in s or "waist at plane 4" in s for s in body["z_merge_signs"])
    assert body["waist_z"] in (3, 4)


@pytest.mark.django_db
def test_it_bounds_the_triangles_and_can_leave_the_neighbours_out(stacked, client_for, alice):
    version, _ = stacked
    body = _get(client_for(alice), version, 1, max_triangles=200, neighbours="false").json()
    assert body["neighbours"] == [] and len(body["meshes"]) == 1
    assert 0 < body["meshes"][0]["n_triangles"] <= 200
    single = _get(client_for(alice), version, 3).json()
    assert single["neighbours"] == [] and single["z_merge_signs"] == [] and single["waist_z"] is None


@pytest.mark.django_db
def test_it_refuses_bad_parameters_a_missing_nucleus_a_huge_one_and_outsiders(stacked, client_for, alice, eve,
                                                                            settings):
    version, _ = stacked
    assert _get(client_for(alice), version, 1, max_triangles=5).status_code == 400
    assert _get(client_for(alice), version, 1, neighbours="perhaps").status_code == 400
    missing = _get(client_for(alice), version, 99)
    assert missing.status_code == 404 and "no nucleus 99" in missing.json()["message"]
    assert _get(client_for(eve), version, 1).status_code == 404
    assert _get(client_for(None), version, 1).status_code in (401, 403)
    settings.EZQUANT_EDIT_MAX_VOXELS = 1000
    huge = _get(client_for(alice), version, 1)
    assert huge.status_code == 400 and huge.json()["extra"]["setting"] == "EZQUANT_EDIT_MAX_VOXELS"


@pytest.mark.django_db
def test_it_meshes_a_nucleus_of_a_2d_image_without_z_merge_signs(project, ivy, alice, client_for, tmp_path):
    import tifffile

    from annotation.services import label_version_create, volume_import

    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((64, 64), np.uint16))
    flat = volume_import(project=project, src_path=tmp_path / "flat.tif", name="flat", user=ivy, voxel_size=(0.5, 0.5))
    labels = np.zeros((1, 64, 64), np.uint32)
    labels[0, 10:20, 10:30] = 4
    version = label_version_create(volume=flat, labels=labels, user=ivy, source=LabelVersion.Source.UPLOAD)
    body = _get(client_for(alice), version, 4).json()
    assert (body["z_min"], body["z_max"], body["waist_z"], body["z_merge_signs"]) == (0, 0, None, [])
    assert body["meshes"][0]["n_triangles"] > 0
    assert body["volume_um3"] == pytest.approx(200 * 0.25 * body["voxel_size"][0])
