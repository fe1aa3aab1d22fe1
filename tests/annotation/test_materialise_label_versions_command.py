"""manage.py materialise_label_versions [--volume ID ...]"""

from io import StringIO

import numpy as np
import pytest
import zarr
from django.core.management import CommandError, call_command

from annotation.storage import VolumeStore
from annotation.storage.manifest import read_manifest

pytestmark = pytest.mark.django_db


def _run(*args):
    out = StringIO()
    call_command("materialise_label_versions", *map(str, args), stdout=out)
    return out.getvalue()


def test_it_makes_an_edited_version_readable_by_plain_zarr(labels_v1):
    volume = labels_v1.volume
    store = VolumeStore.open(volume.storage_path)
    z, y, x = volume.shape
    store.write_label_edit("v1", (slice(0, z), slice(0, y // 2), slice(0, x)), np.zeros((z, y // 2, x), np.uint32))
    edited = store.read_labels("v2")
    assert read_manifest(store.path / "labels" / "v2") is not None
    assert _run("--volume", volume.id).strip() == f"volume {volume.id} ({volume.name}): v2"
    plain = zarr.open_array(str(store.path / "labels" / "v2" / "0"), mode="r")[...]
    np.testing.assert_array_equal(plain, edited)
    assert not plain[:, : y // 2].any() and plain.any()
    assert _run().strip() == f"volume {volume.id} ({volume.name}): nothing to do"


def test_it_names_a_volume_that_does_not_exist(db):
    with pytest.raises(CommandError, match="no volume with id 999"):
        _run("--volume", 999)
