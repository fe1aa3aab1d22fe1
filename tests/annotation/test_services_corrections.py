"""correction_create / _undo / _redo on a generated 8x300x300 stack (v1 = its true labels).

The invariant every edit keeps: the new version's labels equal v1's outside the edited nuclei,
and its nucleus table equals a full re-measurement of its labels (the new version shares the rows
of untouched nuclei and measures only the edited ones on the region)."""

import threading
import time

import numpy as np
import pytest
from django.db import OperationalError, connection

from annotation.models import Correction, LabelVersion, Nucleus
from annotation.services import correction_create, correction_redo, correction_undo
from annotation.stores import correction_store, volume_store
from ezquant_web.api import ApplicationError
from segmentation.core.measurements import nucleus_table

pytestmark = pytest.mark.django_db

_MEASURED = ("label_id", "z_min", "z_max", "y_min", "y_max", "x_min", "x_max", "centroid_z", "centroid_y",
             "centroid_x", "volume_voxels", "mean_intensity", "solidity")


def _labels(version: LabelVersion) -> np.ndarray:
    return volume_store(version.volume).read_labels(version.name)


def _table(version: LabelVersion) -> dict[int, tuple]:
    return {row[0]: row for row in Nucleus.objects.of(version).values_list(*_MEASURED)}


def _assert_table_is_measured(version: LabelVersion) -> None:
    store = volume_store(version.volume)
    expected = {r["label_id"]: tuple(r[k] for k in _MEASURED)
                for r in nucleus_table(store.read_labels(version.name), store.read_volume(0), store.meta.voxel_size)}
    stored = _table(version)
    assert stored.keys() == expected.keys()
    for label_id, row in expected.items():
        assert stored[label_id] == pytest.approx(row), label_id


def _largest(version: LabelVersion) -> Nucleus:
    return Nucleus.objects.of(version).order_by("-volume_voxels").first()


def _split_line(n: Nucleus) -> list[list[float]]:
    x = round(n.centroid_x) + 0.5
    return [[n.y_min - 2, x], [n.y_max + 2, x]]


def test_it_splits_a_nucleus_through_its_z_range(labels_v1, alice):
    n = _largest(labels_v1)
    correction = correction_create(volume=labels_v1.volume, user=alice, label_version="v1",
                                   edit={"correction_type": "split", "nucleus_ids": [n.label_id],
                                         "z": round(n.centroid_z), "line": _split_line(n)})
    v2 = correction.result_version
    assert (v2.name, v2.parent, v2.source, v2.model_version) == ("v2", labels_v1, "edit", "ezq_nuclei_v1")
    new_id = labels_v1.n_labels + 1
    assert (correction.nucleus_ids, correction.new_ids) == ([n.label_id], [n.label_id, new_id])
    before, after = _labels(labels_v1), _labels(v2)
    mask = before == n.label_id
    assert np.array_equal(after[~mask], before[~mask])  # nothing else changed
    assert set(np.unique(after[mask])) == {n.label_id, new_id}
    for z in range(n.z_min, n.z_max + 1):  # both halves run through the z-range, either side of the line
        plane = after[z][mask[z]]
        assert {n.label_id, new_id} <= set(plane.tolist()) or mask[z].sum() < 20
    _assert_table_is_measured(v2)
    edited = Nucleus.objects.of(v2).filter(label_id__in=[n.label_id, new_id])
    assert [e.uncertainty for e in edited] == [None, None]  # a person drew them: ranked last
    untouched = Nucleus.objects.of(v2).filter(uncertainty__isnull=False).count()
    assert untouched == Nucleus.objects.of(labels_v1).filter(uncertainty__isnull=False) \
        .exclude(label_id=n.label_id).count()
    # The guide's record: corrections.json and corr_000001.npz with the masks before and after.
    tracker = correction_store(labels_v1.volume)
    record = tracker.get(correction.record_id)
    assert (record.correction_type, record.nucleus_id, record.metadata["user"]) == ("split", n.label_id, "alice")
    original, corrected = tracker.load(record.id)
    z0, z1, y0, y1, x0, x1 = correction.bbox
    assert np.array_equal(original, np.where(before == n.label_id, before, 0)[z0:z1, y0:y1, x0:x1])
    assert set(np.unique(corrected)) == {0, n.label_id, new_id}


def test_it_keeps_the_table_exact_through_every_kind_of_edit(labels_v1, ivy):
    volume = labels_v1.volume
    rows = list(Nucleus.objects.of(labels_v1).order_by("-volume_voxels")[:3])
    # A merge keeps the smallest id: a is the one that survives it and is modified after.
    (a, b), c = sorted(rows[:2], key=lambda r: r.label_id), rows[2]
    z = round(a.centroid_z)
    steps = [
        {"correction_type": "merge", "nucleus_ids": [a.label_id, b.label_id]},
        {"correction_type": "delete", "nucleus_ids": [c.label_id]},
        {"correction_type": "add", "z": 2, "z_range": [1, 3],
         "polygon": [[c.y_min, c.x_min], [c.y_min, c.x_max], [c.y_max, c.x_max], [c.y_max, c.x_min]]},
        {"correction_type": "modify", "nucleus_ids": [a.label_id], "z": z,
         "stroke": [[a.centroid_y, a.centroid_x]], "radius": 3.0, "erase": True},
    ]
    head = labels_v1
    for step in steps:
        correction = correction_create(volume=volume, user=ivy, label_version=head.name, edit=step)
        assert correction.correction_type == step["correction_type"]
        before, after = _labels(head), _labels(correction.result_version)
        changed = np.unique(np.concatenate([before[before != after], after[before != after]]))
        assert set(changed.tolist()) - {0} == set(correction.nucleus_ids) | set(correction.new_ids)
        head = correction.result_version
        _assert_table_is_measured(head)
    assert LabelVersion.objects.filter(volume=volume).count() == 5
    assert correction_store(volume).count() == 4


def test_it_measures_edited_nuclei_of_large_ids_as_a_full_measurement_does(volume_3d, sample_3d, ivy):
    # Ids of a large volume's nuclei (hundreds of thousands): the edit measures its few nuclei
    # renumbered 1..n and gives them their ids back; the rows must be those a full measure gives.
    from annotation.services import label_version_create

    labels = sample_3d[1]
    big = np.where(labels > 0, labels + 400_000, 0).astype(np.uint32)
    v1 = label_version_create(volume=volume_3d, labels=big, user=ivy, source=LabelVersion.Source.SEGMENTATION)
    (a, b), c = (sorted(Nucleus.objects.of(v1).order_by("-volume_voxels")[:2], key=lambda r: r.label_id),
                 Nucleus.objects.of(v1).order_by("-volume_voxels")[2])
    merged = correction_create(volume=volume_3d, user=ivy, label_version="v1",
                               edit={"correction_type": "merge", "nucleus_ids": [a.label_id, b.label_id]})
    _assert_table_is_measured(merged.result_version)
    split = correction_create(volume=volume_3d, user=ivy, label_version=merged.result_version.name,
                              edit={"correction_type": "split", "nucleus_ids": [c.label_id],
                                    "z": round(c.centroid_z), "line": _split_line(c)})
    assert split.new_ids == [c.label_id, v1.n_labels + 1]
    _assert_table_is_measured(split.result_version)


def test_it_refuses_an_edit_of_a_stale_version_and_writes_nothing(labels_v1, alice, bob):
    n = _largest(labels_v1)
    correction_create(volume=labels_v1.volume, user=alice, label_version="v1",
                      edit={"correction_type": "delete", "nucleus_ids": [n.label_id]})
    other = Nucleus.objects.of(labels_v1).exclude(label_id=n.label_id).first()
    with pytest.raises(ApplicationError) as refused:
        correction_create(volume=labels_v1.volume, user=bob, label_version="v1",
                          edit={"correction_type": "delete", "nucleus_ids": [other.label_id]})
    assert refused.value.status == 409
    assert refused.value.extra == {"label_version": "v1", "current_label_version": "v2"}
    assert LabelVersion.objects.count() == 2 and Correction.objects.count() == 1
    assert volume_store(labels_v1.volume).label_versions() == ["v1", "v2"]


@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_two_simultaneous_edits_win(labels_v1, alice, bob):
    a, b = Nucleus.objects.of(labels_v1).order_by("label_id")[:2]
    outcomes = []
    start = threading.Barrier(2)

    def edit(user, nucleus):
        start.wait()
        try:
            for _ in range(500):  # the shared-cache test database refuses a busy table at once: retry
                try:
                    correction_create(volume=labels_v1.volume, user=user, label_version="v1",
                                      edit={"correction_type": "delete", "nucleus_ids": [nucleus.label_id]})
                    outcomes.append("ok")
                    return
                except OperationalError as exc:
                    if "locked" not in str(exc):
                        raise
                    time.sleep(0.01)
        except ApplicationError as exc:
            outcomes.append(exc.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=edit, args=args) for args in ((alice, a), (bob, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes, key=str) == [409, "ok"]
    assert LabelVersion.objects.count() == 2 and Correction.objects.count() == 1


def test_it_undoes_and_redoes_exactly(labels_v1, alice):
    volume = labels_v1.volume
    n = _largest(labels_v1)
    split = correction_create(volume=volume, user=alice, label_version="v1",
                              edit={"correction_type": "split", "nucleus_ids": [n.label_id],
                                    "z": round(n.centroid_z), "line": _split_line(n)})
    undone = correction_undo(correction=split, user=alice, label_version="v2")
    v3 = undone.undone_version
    assert (undone.undone, v3.name, v3.parent.name) == (True, "v3", "v2")
    assert np.array_equal(_labels(v3), _labels(labels_v1))
    assert _table(v3).keys() == _table(labels_v1).keys()
    _assert_table_is_measured(v3)
    with pytest.raises(ApplicationError, match="undone already") as twice:
        correction_undo(correction=split, user=alice, label_version="v3")
    assert twice.value.status == 409
    redo = correction_redo(correction=split, user=alice, label_version="v3")
    assert (redo.redo_of, redo.label_version.name, redo.result_version.name) == (split, "v3", "v4")
    assert np.array_equal(_labels(redo.result_version), _labels(split.result_version))
    with pytest.raises(ApplicationError, match="once"):
        correction_redo(correction=split, user=alice, label_version="v4")
    assert Correction.objects.count() == 2  # nothing deleted: the undone record and its redo


def test_it_refuses_to_undo_under_a_later_edit_of_the_same_nuclei(labels_v1, alice):
    volume = labels_v1.volume
    a, b = Nucleus.objects.of(labels_v1).order_by("-volume_voxels")[:2]
    first = correction_create(volume=volume, user=alice, label_version="v1",
                              edit={"correction_type": "merge", "nucleus_ids": [a.label_id, b.label_id]})
    correction_create(volume=volume, user=alice, label_version="v2",
                      edit={"correction_type": "delete", "nucleus_ids": [min(a.label_id, b.label_id)]})
    with pytest.raises(ApplicationError, match="later edit") as refused:
        correction_undo(correction=first, user=alice, label_version="v3")
    assert refused.value.status == 409 and LabelVersion.objects.count() == 3


@pytest.mark.parametrize("edit, message", [
    ({"correction_type": "delete", "nucleus_ids": [99999]}, "has no nucleus 99999"),
    ({"correction_type": "split", "nucleus_ids": [1], "line": [[0, 0], [1, 1]]}, "does not cut"),
    ({"correction_type": "merge", "nucleus_ids": [1]}, "at least 2"),
    ({"correction_type": "add", "z": 50, "polygon": [[0, 0], [0, 9], [9, 9]]}, "outside the volume"),
    ({"correction_type": "teleport"}, "unknown correction type"),
])
def test_it_refuses_bad_edits_with_a_reason(labels_v1, alice, edit, message):
    with pytest.raises(ApplicationError, match=message) as refused:
        correction_create(volume=labels_v1.volume, user=alice, label_version="v1", edit=edit)
    assert refused.value.status == 400
    assert LabelVersion.objects.count() == 1 and correction_store(labels_v1.volume).count() == 0
