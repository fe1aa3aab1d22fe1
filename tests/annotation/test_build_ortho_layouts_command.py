"""manage.py build_ortho_layouts [--volume ID ...]"""

import shutil
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Volume
from annotation.storage import VolumeStore
from annotation.storage.ortho import has_ortho


def _run(*args):
    out = StringIO()
    call_command("build_ortho_layouts", *map(str, args), stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_gives_a_volume_stored_without_them_its_layouts(project, tiff_3d):
    from annotation.services import volume_import

    volume = volume_import(project=project, src_path=str(tiff_3d), name="old stack", user=None)
    root = volume.storage_path
    for plane in ("xz", "yz"):
        shutil.rmtree(root / plane)
    assert not has_ortho(root)
    assert _run("--volume", volume.id).strip() == f"volume {volume.id} (old stack): image"
    assert has_ortho(root) and VolumeStore.open(root).read_ortho_tile("xz", 0, 0, 0, 0).shape[0] > 1
    assert _run().strip() == f"volume {volume.id} (old stack): nothing to do"


@pytest.mark.django_db
def test_it_names_a_volume_that_does_not_exist(project):
    assert not Volume.objects.filter(id=999).exists()
    with pytest.raises(CommandError, match="no volume with id 999"):
        _run("--volume", 999)
