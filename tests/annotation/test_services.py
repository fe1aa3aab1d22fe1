"""annotation.services: projects, members, volume import, label versions, exports."""

import numpy as np
import pytest
import tifffile
from django.db import IntegrityError

from annotation import services
from annotation.models import LabelVersion, Membership, Nucleus, Project, Volume
from annotation.selectors import label_version_orphans
from annotation.storage import ImageTooLargeError, InvalidImageError, LabelShapeError, VolumeStore
from ezquant_web.api import ApplicationError


@pytest.mark.django_db
def test_it_creates_a_project_with_its_creator_as_admin(ivy):
    project = services.project_create(name="  Live cells 2026 ", user=ivy, description="x")
    assert (project.name, project.slug, project.created_by) == ("Live cells 2026", "live-cells-2026", ivy)
    assert Membership.objects.get(project=project).role == Membership.Role.ADMIN


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["Nuclei 101", "nuclei-101", "   ", "!!!"])
def test_it_refuses_a_taken_or_empty_project_name(project, ivy, name):
    with pytest.raises(ApplicationError):
        services.project_create(name=name, user=ivy)
    assert Project.objects.count() == 1


@pytest.mark.django_db
def test_it_adds_a_member_once(project, eve):
    membership = services.membership_add(project=project, user=eve, role="instructor")
    assert membership.role == "instructor"
    with pytest.raises(ApplicationError, match="already a member"):
        services.membership_add(project=project, user=eve)
    with pytest.raises(ApplicationError, match="role"):
        services.membership_add(project=project, user=eve, role="owner")


@pytest.mark.django_db
def test_it_imports_a_tiff_as_a_volume(project, ivy, tiff_3d, sample_3d, data_dir):
    volume = services.volume_import(project=project, src_path=tiff_3d, name="", user=ivy)
    assert volume.name == "stack.tif"
    assert volume.shape == (8, 300, 300) and volume.dtype == "uint16"
    assert volume.voxel_size == pytest.approx((2.0, 0.5, 0.5))
    assert volume.n_levels == 2 and volume.level_shapes == [(8, 300, 300), (8, 150, 150)]
    assert volume.contrast_lo < volume.contrast_hi
    assert volume.path.startswith("volumes/") and volume.storage_path == data_dir / volume.path
    np.testing.assert_array_equal(VolumeStore.open(volume.storage_path).read_volume(), sample_3d[0])


@pytest.mark.django_db
def test_it_overrides_the_voxel_size_and_picks_a_channel(project, ivy, tmp_path, sample_2d):
    two = np.stack([sample_2d[0], sample_2d[0] // 2])  # (C, Y, X)
    path = tmp_path / "two.ome.tif"
    tifffile.imwrite(path, two, metadata={"axes": "CYX"})
    volume = services.volume_import(project=project, src_path=path, name="c1", user=None, channel=1,
                                    voxel_size=(0.25, 0.25))
    assert volume.shape == (1, 300, 300) and volume.voxel_size == (1.0, 0.25, 0.25)
    assert volume.created_by is None


@pytest.mark.django_db
def test_it_refuses_too_many_voxels_and_leaves_nothing(project, ivy, tiff_3d, settings, data_dir):
    settings.EZQUANT_MAX_VOXELS = 8 * 300 * 300 - 1
    with pytest.raises(ImageTooLargeError):
        services.volume_import(project=project, src_path=tiff_3d, name="big", user=ivy)
    assert not Volume.objects.exists()
    assert not any((data_dir / "volumes").glob("*"))


@pytest.mark.django_db
def test_it_removes_the_directory_when_the_row_fails(project, ivy, tiff_3d, data_dir):
    services.volume_import(project=project, src_path=tiff_3d, name="a", user=ivy)
    before = sorted((data_dir / "volumes").iterdir())
    with pytest.raises(ValueError):  # an unsaved project: the row fails after the files were written
        services.volume_import(project=Project(name="unsaved"), src_path=tiff_3d, name="b", user=ivy)
    assert sorted((data_dir / "volumes").iterdir()) == before


@pytest.mark.django_db
def test_it_refuses_a_file_that_is_no_image(project, ivy, tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("not a tiff")
    with pytest.raises(InvalidImageError):
        services.volume_import(project=project, src_path=path, name="x", user=ivy)


@pytest.mark.django_db
def test_it_stores_a_label_version_and_its_nuclei(labels_v1, volume_3d, sample_3d):
    version = labels_v1
    assert (version.number, version.name, version.source, version.model_version) == (1, "v1", "segmentation",
                                                                                     "ezq_nuclei_v1")
    ids = np.unique(sample_3d[1])[1:]
    assert version.n_labels == int(ids.max())
    nuclei = Nucleus.objects.of(version).order_by("label_id")
    assert list(nuclei.values_list("label_id", flat=True)) == ids.tolist()
    first = nuclei[0]
    mask = sample_3d[1] == first.label_id
    assert first.volume_voxels == int(mask.sum())
    assert first.volume_um3 == pytest.approx(mask.sum() * 2.0 * 0.5 * 0.5)
    assert first.mean_intensity == pytest.approx(sample_3d[0][mask].mean())
    assert first.uncertainty == pytest.approx(first.label_id / 1000)
    assert nuclei[1].uncertainty is None  # every other id has a score
    np.testing.assert_array_equal(VolumeStore.open(volume_3d.storage_path).read_labels("v1"), sample_3d[1])


@pytest.mark.django_db
def test_it_links_a_child_version_to_its_parent(labels_v1, volume_3d, sample_3d, ivy):
    edited = sample_3d[1].copy()
    edited[edited == edited.max()] = 0
    child = services.label_version_create(volume=volume_3d, labels=edited, user=ivy,
                                          source=LabelVersion.Source.EDIT, parent=labels_v1)
    assert (child.name, child.parent, child.model_version) == ("v2", labels_v1, "")
    assert child.nuclei.count() == labels_v1.nuclei.count() - 1


@pytest.mark.django_db
def test_it_refuses_labels_of_another_shape_before_writing(volume_3d, ivy):
    with pytest.raises(LabelShapeError):
        services.label_version_create(volume=volume_3d, labels=np.zeros((8, 300, 299), np.uint32), user=ivy,
                                      source="upload")
    assert VolumeStore.open(volume_3d.storage_path).label_versions() == []


@pytest.mark.django_db
def test_it_refuses_a_parent_of_another_volume_and_a_bad_source(labels_v1, project, ivy, tiff_3d, sample_3d):
    other = services.volume_import(project=project, src_path=tiff_3d, name="other", user=ivy)
    with pytest.raises(ApplicationError, match="another volume"):
        services.label_version_create(volume=other, labels=sample_3d[1], user=ivy, source="edit", parent=labels_v1)
    with pytest.raises(ApplicationError, match="source"):
        services.label_version_create(volume=other, labels=sample_3d[1], user=ivy, source="magic")


@pytest.mark.django_db(transaction=True)
def test_it_leaves_an_unreachable_orphan_when_the_rows_fail(labels_v1, volume_3d, sample_3d, ivy):
    # A row v2 that the store does not know about makes the store's next version (v2) clash.
    LabelVersion.objects.create(volume=volume_3d, number=2, name="v2", source="upload", n_labels=0)
    with pytest.raises(IntegrityError):
        services.label_version_create(volume=volume_3d, labels=sample_3d[1], user=ivy, source="upload")
    assert label_version_orphans(volume=volume_3d) == []  # v2 has a (foreign) row
    LabelVersion.objects.filter(name="v2").delete()
    assert label_version_orphans(volume=volume_3d) == ["v2"]
    assert Nucleus.objects.count() == labels_v1.nuclei.count()  # the rows of v1 only
    version = services.label_version_create(volume=volume_3d, labels=sample_3d[1], user=ivy, source="upload")
    assert version.name == "v3"  # numbers are never reused


@pytest.mark.django_db
def test_it_reads_a_label_tiff_upload(volume_3d, sample_3d, ivy, tmp_path):
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, sample_3d[1][:, np.newaxis].astype(np.uint16), imagej=True)  # (Z, C=1, Y, X)
    version = services.label_version_upload(volume=volume_3d, src_path=path, user=ivy)
    assert version.source == "upload" and version.nuclei.exists()
    for content, message in [(b"plain text", "not a readable TIFF"), (b"II*\x00garbage", "TIFF")]:
        bad = tmp_path / "bad.tif"
        bad.write_bytes(content)
        with pytest.raises(ApplicationError, match=message):
            services.label_version_upload(volume=volume_3d, src_path=bad, user=ivy)


@pytest.mark.django_db
def test_it_exports_tiff_and_zarr(labels_v1, sample_3d):
    tiff = services.label_version_export_tiff(label_version=labels_v1)
    np.testing.assert_array_equal(tifffile.imread(tiff), sample_3d[1])
    zarr_dir = services.label_version_export_zarr(label_version=labels_v1)
    assert (zarr_dir / "zarr.json").is_file() and (zarr_dir / "0").is_dir()
    assert tiff.parent != zarr_dir.parent
