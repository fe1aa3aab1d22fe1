"""annotation.models: derived properties and the immutability of label versions."""

import pytest

from annotation.models import LabelVersion, Volume


def test_it_derives_the_pyramid_from_the_shape():
    volume = Volume(shape_z=3, shape_y=600, shape_x=301, n_levels=3, voxel_size_z=2, voxel_size_y=0.5,
                    voxel_size_x=0.5, contrast_lo=1, contrast_hi=2)
    assert volume.level_shapes == [(3, 600, 301), (3, 300, 151), (3, 150, 76)]
    assert volume.voxel_size == (2, 0.5, 0.5) and volume.contrast_limits == (1, 2)


@pytest.mark.django_db
def test_it_refuses_to_change_a_stored_label_version(labels_v1):
    labels_v1.model_version = "other"
    with pytest.raises(ValueError, match="immutable"):
        labels_v1.save()
    assert LabelVersion.objects.get(id=labels_v1.id).model_version == "ezq_nuclei_v1"


@pytest.mark.django_db
def test_it_pages_the_uncertainty_queue_from_an_index_with_scoreless_nuclei_last(labels_v1):
    from django.db import connection

    from annotation.selectors import nucleus_list

    nuclei = nucleus_list(label_version=labels_v1, filters={"ordering": "-uncertainty"})
    rows = list(nuclei.values_list("uncertainty", "label_id"))
    scored = [r for r in rows if r[0] is not None]
    assert 0 < len(scored) < len(rows)  # labels_v1 scores every second nucleus
    assert rows == sorted(scored, key=lambda r: (-r[0], r[1])) + sorted(r for r in rows if r[0] is None)
    sql, params = nuclei[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_sort = off")  # a table this small is sorted otherwise
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "nucleus_uncertainty_desc" in plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan  # walked in order, never sorted
