"""Nucleus rows shared between label versions (``annotation.services.nuclei``): an edit writes
the rows of the nuclei it changed and nothing else, and every older version still reads
exactly the rows it had when it was made, check marks included."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import OPEN, LabelVersion, Nucleus
from annotation.services import correction_create, correction_redo, correction_undo, label_version_create

pytestmark = pytest.mark.django_db

_FIELDS = [f.attname for f in Nucleus._meta.concrete_fields if f.attname not in ("id", "since", "until")]


def _rows(version: LabelVersion) -> list[tuple]:
    return list(version.nuclei.order_by("label_id").values_list(*_FIELDS))


def _nucleus_writes(queries) -> list[str]:
    table = Nucleus._meta.db_table
    return [q["sql"] for q in queries
            if table in q["sql"] and q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


def test_it_writes_only_the_rows_an_edit_changes(labels_v1, ivy):
    volume = labels_v1.volume
    n = labels_v1.nuclei.order_by("-volume_voxels").first()
    stored = Nucleus.objects.count()
    with CaptureQueriesContext(connection) as queries:
        split = correction_create(volume=volume, user=ivy, label_version="v1", edit={
            "correction_type": "split", "nucleus_ids": [n.label_id], "z": round(n.centroid_z),
            "line": [[n.y_min - 2, round(n.centroid_x) + 0.5], [n.y_max + 2, round(n.centroid_x) + 0.5]]})
    v2 = split.result_version
    # One row closed (the nucleus split), two added (its halves); one UPDATE, one INSERT.
    assert Nucleus.objects.count() == stored + 2
    assert Nucleus.objects.filter(volume=volume, until=v2.number).count() == 1
    assert Nucleus.objects.filter(volume=volume, since=v2.number).count() == 2
    assert len(_nucleus_writes(queries.captured_queries)) == 2
    assert v2.lineage == labels_v1.lineage == labels_v1.number
    assert v2.nuclei.count() == labels_v1.nuclei.count() + 1
    with CaptureQueriesContext(connection) as queries:
        deleted = correction_create(volume=volume, user=ivy, label_version="v2",
                                    edit={"correction_type": "delete", "nucleus_ids": [split.new_ids[1]]})
    assert Nucleus.objects.count() == stored + 2  # a deletion only closes a row
    assert len(_nucleus_writes(queries.captured_queries)) == 1
    assert deleted.result_version.nuclei.count() == labels_v1.nuclei.count()


def test_it_reads_every_old_version_exactly_after_many_edits(labels_v1, ivy):
    volume = labels_v1.volume
    seen = {labels_v1.name: _rows(labels_v1)}
    largest = list(labels_v1.nuclei.order_by("-volume_voxels")[:6])
    head = labels_v1

    def record(version: LabelVersion) -> LabelVersion:
        seen[version.name] = _rows(version)
        return version

    for n in largest[:3]:
        made = correction_create(volume=volume, user=ivy, label_version=head.name,
                                 edit={"correction_type": "delete", "nucleus_ids": [n.label_id]})
        head = record(made.result_version)
    a, b = sorted(largest[3:5], key=lambda r: r.label_id)
    merge = correction_create(volume=volume, user=ivy, label_version=head.name,
                              edit={"correction_type": "merge", "nucleus_ids": [a.label_id, b.label_id]})
    head = record(merge.result_version)
    undo = correction_undo(correction=merge, user=ivy, label_version=head.name)
    head = record(undo.undone_version)
    redo = correction_redo(correction=merge, user=ivy, label_version=head.name)
    head = record(redo.result_version)
    # A check marks the nucleus in the latest version only; withdrawing it, likewise.
    checked = largest[5]
    check = correction_create(volume=volume, user=ivy, label_version=head.name,
                              edit={"correction_type": "confirm", "nucleus_ids": [checked.label_id]})
    assert head.nuclei.get(label_id=checked.label_id).curation == "checked"
    assert labels_v1.nuclei.get(label_id=checked.label_id).curation == ""
    earlier = LabelVersion.objects.get(volume=volume, number=head.number - 1)
    assert _rows(earlier) == seen[earlier.name]  # the mark went on a row of head's own
    correction_undo(correction=check, user=ivy, label_version=head.name)
    assert head.nuclei.get(label_id=checked.label_id).curation == ""
    assert _rows(head) == seen[head.name]
    # A new segmentation of the volume starts its own lineage and leaves the old one alone.
    fresh = record(label_version_create(volume=volume, labels=_labels_of(labels_v1), user=ivy,
                                        source=LabelVersion.Source.UPLOAD))
    assert fresh.lineage == fresh.number != labels_v1.lineage
    versions = list(LabelVersion.objects.filter(volume=volume).order_by("number"))
    assert [v.name for v in versions] == sorted(seen, key=lambda name: int(name[1:]))
    for version in versions:
        assert _rows(version) == seen[version.name], version.name
    assert fresh.nuclei.count() == labels_v1.nuclei.count()
    # The lineage's open rows are exactly its latest version's; older versions share the rest.
    lineage = Nucleus.objects.filter(volume=volume, lineage=labels_v1.lineage)
    assert lineage.filter(until=OPEN).count() == head.nuclei.count()
    assert lineage.count() < 2 * labels_v1.nuclei.count()


def _labels_of(version: LabelVersion):
    from annotation.stores import volume_store

    return volume_store(version.volume).read_labels(version.name)


def test_it_finds_the_planes_of_edits_and_checks_from_the_versions_rows(labels_v1, ivy):
    from annotation.selectors import correction_planes

    volume = labels_v1.volume
    a, b, c = sorted(labels_v1.nuclei.order_by("-volume_voxels")[:3], key=lambda n: n.label_id)
    deleted = correction_create(volume=volume, user=ivy, label_version="v1",
                                edit={"correction_type": "delete", "nucleus_ids": [c.label_id]})
    merged = correction_create(volume=volume, user=ivy, label_version="v2",
                               edit={"correction_type": "merge", "nucleus_ids": [a.label_id, b.label_id]})
    v3 = merged.result_version
    checked = v3.nuclei.exclude(label_id__in=[a.label_id, b.label_id]).order_by("-volume_voxels").first()
    check = correction_create(volume=volume, user=ivy, label_version="v3",
                              edit={"correction_type": "confirm", "nucleus_ids": [checked.label_id]})
    planes = correction_planes(corrections=[deleted, merged, check])
    assert planes[deleted.id] == round(c.centroid_z)  # v1's row, shared by v2's parent
    kept = v3.nuclei.get(label_id=merged.new_ids[0])
    assert planes[merged.id] == round((a.centroid_z + b.centroid_z + kept.centroid_z) / 3)
    assert planes[check.id] == round(checked.centroid_z)  # a check made no version: its head's row


def test_a_table_made_row_by_row_reaches_the_database_in_batches(volume_3d, ivy):
    """A blockwise segmentation's rows (``NucleusSums``, made one by one) are stored as they
    come, a batch at a time, never listed whole first (Django's bulk_create would)."""
    from annotation.models import AuditEvent
    from annotation.services import label_version_create_planes
    from annotation.stores import volume_store
    from segmentation.core.blockwise import ZarrVolume
    from segmentation.core.measurements import measure_planes

    store = volume_store(volume_3d)
    shape = store.meta.shape
    n = (shape[1] // 3) * (shape[2] // 3)  # one nucleus every 3 x 3 pixels of plane 0: 10,000
    tiles = (np.arange(n, dtype=np.uint32) + 1).reshape(shape[1] // 3, shape[2] // 3).repeat(3, 0).repeat(3, 1)

    def plane_of(z):
        return tiles if z == 0 else np.zeros_like(tiles)

    table = measure_planes(plane_of, shape, ZarrVolume(store.level_path(0)), store.meta.voxel_size,
                           solidity=np.ones(n + 1), uncertainty=np.full(n + 1, np.nan))
    assert len(table) == n
    stored_while_made = {}

    def rows():
        for k, row in enumerate(table):
            if k % 1000 == 0:
                stored_while_made[k] = Nucleus.objects.filter(volume=volume_3d).count()
            yield row

    version = label_version_create_planes(volume=volume_3d, plane_of=plane_of, n_labels=n, rows=rows(), user=ivy,
                                          source=LabelVersion.Source.SEGMENTATION)
    # Row k is made when all but the last batch before it are stored: at most one batch is held.
    assert all(count >= k - 2000 for k, count in stored_while_made.items()), stored_while_made
    assert stored_while_made[9000] >= 7000
    assert version.nuclei.count() == n
    row = version.nuclei.get(label_id=n)
    assert (row.volume_voxels, row.z_min, row.y_max, row.x_max) == (9, 0, shape[1] - 1, shape[2] - 1)
    assert row.centroid_y == shape[1] - 2 and row.uncertainty is None
    assert AuditEvent.objects.get(action="label_version.segmentation").details["nuclei"] == n
