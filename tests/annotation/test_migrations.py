"""Migrations 0007-0009 (nucleus rows shared between label versions) on a database made by the
schema before them: every version reads the nuclei it had, nothing lost, the copies gone; and
back again."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("annotation", "0006_correction_type_registry")]
AFTER = [("annotation", "0009_nucleus_rows_shared")]
_MEASURED = ("label_id", "z_min", "z_max", "y_min", "y_max", "x_min", "x_max", "centroid_z", "centroid_y",
             "centroid_x", "volume_voxels", "volume_um3", "mean_intensity", "integrated_intensity", "solidity",
             "uncertainty", "curation")


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _row(label_id: int, **changes) -> dict:
    row = {"label_id": label_id, "z_min": 0, "z_max": 2, "y_min": label_id, "y_max": label_id + 4, "x_min": 1,
           "x_max": 5, "centroid_z": 1.0, "centroid_y": label_id + 2.0, "centroid_x": 3.0, "volume_voxels": 40,
           "volume_um3": 20.0, "mean_intensity": 100.0 + label_id, "integrated_intensity": 4000.0, "solidity": 0.9,
           "uncertainty": label_id / 10, "curation": ""}
    return {**row, **changes}


def _old_schema_data(apps) -> dict[tuple[int, str], list[tuple]]:
    """Two volumes made with the schema before 0007: a history of every kind of version, each
    with its own copy of every row. Returns each version's rows."""
    User = apps.get_model("auth", "User")
    Project = apps.get_model("annotation", "Project")
    Volume = apps.get_model("annotation", "Volume")
    LabelVersion = apps.get_model("annotation", "LabelVersion")
    Nucleus = apps.get_model("annotation", "Nucleus")
    ivy = User.objects.create(username="ivy")
    project = Project.objects.create(name="p", slug="p", created_by=ivy)
    histories = {
        # (source, parent number or None, nucleus rows by label id)
        "a": [("segmentation", None, {i: _row(i) for i in range(1, 9)}),
              ("edit", 1, {**{i: _row(i) for i in range(1, 9) if i != 3}, 9: _row(9, uncertainty=None,
                                                                                   curation="edited")}),
              ("edit", 2, {**{i: _row(i) for i in range(1, 9) if i != 3}, 9: _row(9, uncertainty=None,
                                                                                   curation="edited"),
                           5: _row(5, curation="checked")}),  # a check made on v3 after it was made
              ("revert", 3, {i: _row(i) for i in range(1, 9)}),  # v1's nuclei back
              ("segmentation", 4, {**{i: _row(i, mean_intensity=7.0) for i in range(1, 6)},
                                   9: _row(9, curation="edited")}),  # kept nuclei
              ("upload", 2, {1: _row(1), 2: _row(2, solidity=0.5)}),  # a parent that is not the one before
              ("edit", 6, {1: _row(1)})],
        "b": [("upload", None, {i: _row(i, z_max=i) for i in range(1, 4)}),
              ("edit", 1, {}),  # every nucleus deleted
              ("edit", 2, {7: _row(7)})],
    }
    expected = {}
    for name, history in histories.items():
        volume = Volume.objects.create(project=project, name=name, path=f"volumes/{name}", shape_z=3, shape_y=20,
                                       shape_x=20, dtype="uint16", voxel_size_z=1, voxel_size_y=1, voxel_size_x=1,
                                       contrast_lo=0, contrast_hi=1, n_levels=1)
        versions = {}
        for number, (source, parent, rows) in enumerate(history, start=1):
            version = LabelVersion.objects.create(volume=volume, number=number, name=f"v{number}", source=source,
                                                  parent=versions.get(parent), n_labels=max(rows, default=0))
            versions[number] = version
            Nucleus.objects.bulk_create(Nucleus(label_version=version, **row) for row in rows.values())
            expected[(volume.id, version.name)] = [tuple(row[k] for k in _MEASURED)
                                                   for _, row in sorted(rows.items())]
    return expected


@pytest.mark.django_db(transaction=True)
def test_it_carries_every_versions_nuclei_over_and_back():
    try:
        old = _migrate(BEFORE)
        expected = _old_schema_data(old)
        copies = old.get_model("annotation", "Nucleus").objects.count()
        new = _migrate(AFTER)
        LabelVersion = new.get_model("annotation", "LabelVersion")
        Nucleus = new.get_model("annotation", "Nucleus")
        for version in LabelVersion.objects.all():
            rows = Nucleus.objects.filter(volume_id=version.volume_id, lineage=version.lineage,
                                          since__lte=version.number, until__gt=version.number)
            assert list(rows.order_by("label_id").values_list(*_MEASURED)) == expected[
                (version.volume_id, version.name)], version.name
        lineages = dict(LabelVersion.objects.filter(volume__name="a").values_list("name", "lineage"))
        assert lineages == {"v1": 1, "v2": 1, "v3": 1, "v4": 1, "v5": 1, "v6": 6, "v7": 6}
        # The copies of unchanged rows are gone: a's v1 8 rows, v2 1 (9 added), v3 1 (5 checked), v4 2 (3 and
        # 5 as in v1), v5 6 (1-5 remeasured, 9), v6 2 (its own lineage), v7 0; b's v1 3, v2 0, v3 1.
        assert (copies, Nucleus.objects.count()) == (45, 24)
        back = _migrate(BEFORE)
        OldNucleus = back.get_model("annotation", "Nucleus")
        for version in back.get_model("annotation", "LabelVersion").objects.all():
            rows = OldNucleus.objects.filter(label_version_id=version.id).order_by("label_id")
            assert list(rows.values_list(*_MEASURED)) == expected[(version.volume_id, version.name)], version.name
        assert OldNucleus.objects.count() == copies
    finally:
        _migrate([key for key in MigrationExecutor(connection).loader.graph.leaf_nodes()])
