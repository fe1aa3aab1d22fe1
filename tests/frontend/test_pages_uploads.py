"""The project page's uploads and downloads (frontend/views.project_detail, uploads.js): staff
get the volume upload (drop zone, voxel size, the two progress bars) and a label upload per
volume; everyone gets the downloads of the latest labels, which answer the files."""

import numpy as np
import pytest
from django.urls import reverse

from tests.conftest import PASSWORD


@pytest.fixture
def volume(ada, ivy, alice, tmp_path):
    import tifffile

    from annotation.models import Membership
    from annotation.services import label_version_create, membership_add, project_create, volume_import
    from segmentation.core import synthetic

    project = project_create(name="Nuclei 101", user=ada)
    membership_add(project=project, user=ivy, role=Membership.Role.INSTRUCTOR)
    membership_add(project=project, user=alice)
    sample = synthetic.generate_3d(shape=(3, 64, 64), seed=1)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, np.clip(sample.image * 100, 0, 65535).astype(np.uint16), photometric="minisblack",
                     metadata={"axes": "ZYX"})
    volume = volume_import(project=project, src_path=path, name="stack one", user=ivy)
    label_version_create(volume=volume, labels=sample.labels, user=ivy, source="upload")
    return volume


def _page(client, user, volume) -> str:
    client.login(username=user.username, password=PASSWORD)
    response = client.get(reverse("project-page", args=[volume.project_id]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_it_offers_staff_the_uploads(client, volume, ivy):
    html = _page(client, ivy, volume)
    assert 'id="volume-upload"' in html and 'data-drop' in html
    assert reverse("volume-import-job-create", args=[volume.project_id]) in html
    assert 'data-bar="upload"' in html and 'data-bar="import"' in html
    assert 'accept=".tif,.tiff,.zip"' in html and 'name="voxel_z"' in html
    assert reverse("label-version-upload", args=[volume.id]) in html and 'data-parent="v1"' in html
    assert "frontend/dist/uploads.js" in html  # the bundle of frontend/src/pages/uploads.js


@pytest.mark.django_db
def test_it_offers_everyone_the_downloads_and_students_no_uploads(client, volume, alice):
    html = _page(client, alice, volume)
    assert 'id="volume-upload"' not in html and "labels-upload" not in html
    links = [reverse(name, args=[volume.id, "v1"]) for name in
             ("nucleus-csv", "label-version-export-tiff", "label-version-export-zarr")]
    for link in links:
        assert f'href="{link}"' in html
    csv, tiff, zipped = (client.get(link) for link in links)
    assert csv.status_code == 200 and b"".join(csv.streaming_content).startswith(b"label_id,")
    assert tiff.status_code == 200 and tiff["Content-Type"] == "image/tiff"
    assert zipped.status_code == 200 and b"".join(zipped.streaming_content)[:2] == b"PK"


@pytest.mark.django_db
def test_it_lists_the_latest_imports_for_staff(client, volume, ivy, alice, tmp_path):
    from annotation.services import volume_import_job_create, volume_import_job_run

    def upload(name, data):
        path = tmp_path / f"{len(name)}.upload"
        path.write_bytes(data)
        return volume_import_job_create(project=volume.project, user=ivy, upload_path=path, file_name=name)

    broken = upload("broken.tif", b"II*\x00" + b"\x00" * 32)
    volume_import_job_run(job_id=broken.id)
    waiting = upload("next stack.tif", b"II*\x00")
    html = _page(client, ivy, volume)
    assert "Latest imports" in html
    assert f'data-import-job="{waiting.id}" data-status="queued"' in html
    assert f'data-import-job="{broken.id}" data-status="failed"' in html and "&#x27;broken.tif&#x27;" in html
    client.logout()
    assert "Latest imports" not in _page(client, alice, volume)
