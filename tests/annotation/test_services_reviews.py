"""correction_review's rejection on a small generated stack (v1 = its true labels): the
rejected edit is taken back out of the latest labels voxel for voxel, as a new version by the
reviewer, unless the reviewer keeps the labels; later edits of the same nuclei are a conflict
the reviewer decides. And the check mark (``confirm``): recorded, reviewed, training data."""

import numpy as np
import pytest

from annotation.models import AuditEvent, Correction, LabelVersion, Nucleus
from annotation.selectors import review_queue, training_corrections
from annotation.services import correction_create, correction_redo, correction_review, correction_undo
from annotation.stores import correction_store, volume_store
from ezquant_web.api import ApplicationError
from segmentation.core.corrections import correction_examples
from segmentation.core.measurements import nucleus_table

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_v1(project, ivy, tmp_path):
    """v1 of a small generated 4x96x96 stack (quick to import and edit): its true labels, every
    other nucleus with a made-up score."""
    import tifffile

    from annotation.services import label_version_create, volume_import
    from segmentation.core import synthetic

    sample = synthetic.generate_3d(shape=(4, 96, 96), seed=2)
    path = tmp_path / "small.tif"
    tifffile.imwrite(path, np.clip(np.round(sample.image * 100), 0, 65535).astype(np.uint16),
                     photometric="minisblack", metadata={"axes": "ZYX"})
    volume = volume_import(project=project, src_path=path, name="small", user=ivy, voxel_size=(2.0, 0.5, 0.5))
    ids = np.unique(sample.labels)[1:]
    return label_version_create(volume=volume, labels=sample.labels, user=ivy, source="segmentation",
                                model_version="ezq_nuclei_v1", uncertainty={int(i): float(i) / 1000 for i in ids[::2]})

_MEASURED = ("label_id", "z_min", "z_max", "y_min", "y_max", "x_min", "x_max", "volume_voxels", "mean_intensity")


def _labels(version: LabelVersion) -> np.ndarray:
    return volume_store(version.volume).read_labels(version.name)


def _assert_table_is_measured(version: LabelVersion) -> None:
    store = volume_store(version.volume)
    expected = {r["label_id"]: tuple(r[k] for k in _MEASURED)
                for r in nucleus_table(store.read_labels(version.name), store.read_volume(0), store.meta.voxel_size)}
    stored = {r[0]: r for r in Nucleus.objects.of(version).values_list(*_MEASURED)}
    assert stored.keys() == expected.keys()
    for label_id, row in expected.items():
        assert stored[label_id] == pytest.approx(row), label_id


def _largest(version: LabelVersion, k: int = 0) -> Nucleus:
    return Nucleus.objects.of(version).order_by("-volume_voxels")[k]


def _split(version, user, n):
    x = round(n.centroid_x) + 0.5
    return correction_create(volume=version.volume, user=user, label_version=version.name,
                             edit={"correction_type": "split", "nucleus_ids": [n.label_id], "z": round(n.centroid_z),
                                   "line": [[n.y_min - 2, x], [n.y_max + 2, x]]})


def test_it_takes_a_rejected_delete_out_of_the_latest_labels(small_v1, alice, bob, ivy):
    volume = small_v1.volume
    n, other = _largest(small_v1), _largest(small_v1, 5)
    deleted = correction_create(volume=volume, user=alice, label_version="v1",
                                edit={"correction_type": "delete", "nucleus_ids": [n.label_id]})
    # bob's later edit of another nucleus stays.
    correction_create(volume=volume, user=bob, label_version="v2",
                      edit={"correction_type": "delete", "nucleus_ids": [other.label_id]})
    rejected = correction_review(correction=deleted, reviewer=ivy, verdict="reject", comment="that one is real",
                                 label_version="v3")
    v4 = rejected.reverted_version
    assert (rejected.review_status, rejected.review_labels) == ("rejected", "reverted")
    assert (v4.name, v4.parent.name, v4.source, v4.created_by) == ("v4", "v3", "revert", ivy)
    expected = _labels(small_v1)
    expected[expected == other.label_id] = 0
    assert np.array_equal(_labels(v4), expected)  # the nucleus is back, voxel for voxel; bob's edit stays
    _assert_table_is_measured(v4)
    back = Nucleus.objects.of(v4).get(label_id=n.label_id)
    assert (back.uncertainty, back.curation) == (n.uncertainty, n.curation)  # the model's nucleus again
    event = AuditEvent.objects.filter(action="correction.reject").get()
    assert event.details["labels"] == "reverted" and event.details["reverted_version"] == "v4"
    assert AuditEvent.objects.filter(action="label_version.revert", user=ivy).count() == 1
    with pytest.raises(ApplicationError, match="taken out of the labels already") as undo:
        correction_undo(correction=rejected, user=alice, label_version="v4")
    assert undo.value.status == 409


def test_it_keeps_the_labels_when_the_reviewer_says_so(small_v1, alice, ivy):
    n = _largest(small_v1)
    deleted = correction_create(volume=small_v1.volume, user=alice, label_version="v1",
                                edit={"correction_type": "delete", "nucleus_ids": [n.label_id]})
    kept = correction_review(correction=deleted, reviewer=ivy, verdict="reject", comment="fine, but ask",
                             labels="keep")
    assert (kept.review_labels, kept.reverted_version) == ("kept", None)
    assert LabelVersion.objects.filter(volume=small_v1.volume).count() == 2


def test_it_refuses_a_stale_version_and_a_bad_choice(small_v1, alice, ivy):
    n = _largest(small_v1)
    deleted = correction_create(volume=small_v1.volume, user=alice, label_version="v1",
                                edit={"correction_type": "delete", "nucleus_ids": [n.label_id]})
    with pytest.raises(ApplicationError) as stale:
        correction_review(correction=deleted, reviewer=ivy, verdict="reject", comment="no", label_version="v1")
    assert stale.value.status == 409 and stale.value.extra["current_label_version"] == "v2"
    with pytest.raises(ApplicationError, match="labels must be one of"):
        correction_review(correction=deleted, reviewer=ivy, verdict="reject", comment="no", labels="maybe")
    assert Correction.objects.get(id=deleted.id).review_status == "pending"
    assert LabelVersion.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_rejection_is_refused_when_an_edit_commits_while_its_revert_is_computed(small_v1, alice, bob, ivy,
                                                                                  monkeypatch):
    from segmentation.core import curation

    volume = small_v1.volume
    n, other = _largest(small_v1), _largest(small_v1, 5)
    deleted = correction_create(volume=volume, user=alice, label_version="v1",
                                edit={"correction_type": "delete", "nucleus_ids": [n.label_id]})
    real_revert = curation.revert_edit

    def revert_edit(*args, **kwargs):  # while the revert computes, bob's edit is made and committed
        correction_create(volume=volume, user=bob, label_version="v2",
                          edit={"correction_type": "delete", "nucleus_ids": [other.label_id]})
        return real_revert(*args, **kwargs)

    monkeypatch.setattr(curation, "revert_edit", revert_edit)
    with pytest.raises(ApplicationError, match="v2 is no longer the latest") as refused:
        correction_review(correction=deleted, reviewer=ivy, verdict="reject", comment="real", label_version="v2")
    assert refused.value.status == 409 and refused.value.extra["current_label_version"] == "v3"
    assert Correction.objects.get(id=deleted.id).review_status == "pending"  # nothing written
    assert [v.source for v in LabelVersion.objects.filter(volume=volume).order_by("number")] == [
        "segmentation", "edit", "edit"]
    assert not AuditEvent.objects.filter(action__in=["correction.reject", "label_version.revert"]).exists()


def test_a_later_edit_of_the_same_nuclei_is_a_conflict_the_reviewer_decides(small_v1, alice, ivy):
    volume = small_v1.volume
    n = _largest(small_v1)
    split = _split(small_v1, alice, n)
    half = split.new_ids[1]
    later = correction_create(volume=volume, user=alice, label_version="v2",
                              edit={"correction_type": "delete", "nucleus_ids": [half]})
    with pytest.raises(ApplicationError, match="later edits changed") as conflict:
        correction_review(correction=split, reviewer=ivy, verdict="reject", comment="not two", label_version="v3")
    assert conflict.value.status == 409
    assert conflict.value.extra["conflict"] == "later_edits"
    assert [c["id"] for c in conflict.value.extra["later_corrections"]] == [later.id]
    assert LabelVersion.objects.count() == 3 and Correction.objects.get(id=split.id).review_status == "pending"
    rejected = correction_review(correction=split, reviewer=ivy, verdict="reject", comment="not two",
                                 labels="revert_anyway", label_version="v3")
    v4 = rejected.reverted_version
    assert v4.name == "v4" and AuditEvent.objects.get(action="correction.reject").details["clean"] is False
    # Nucleus n is exactly as it was before the split; nothing else differs from v3.
    original, now, before = _labels(small_v1), _labels(v4), _labels(later.result_version)
    mask = original == n.label_id
    assert np.array_equal(now == n.label_id, mask)
    assert np.array_equal(now[~mask], before[~mask])
    _assert_table_is_measured(v4)


def test_a_check_of_a_nucleus_the_revert_takes_out_is_withdrawn_with_it(small_v1, alice, ivy):
    volume = small_v1.volume
    n, m = _largest(small_v1), _largest(small_v1, 1)
    merge = correction_create(volume=volume, user=alice, label_version="v1",
                              edit={"correction_type": "merge", "nucleus_ids": [n.label_id, m.label_id]})
    check = correction_create(volume=volume, user=alice, label_version="v2",
                              edit={"correction_type": "confirm", "nucleus_ids": merge.new_ids})
    with pytest.raises(ApplicationError, match="the checks withdrawn") as conflict:
        correction_review(correction=merge, reviewer=ivy, verdict="reject", comment="two nuclei", label_version="v2")
    assert [c["id"] for c in conflict.value.extra["later_corrections"]] == [check.id]
    assert not Correction.objects.get(id=check.id).undone  # refused: nothing changed
    rejected = correction_review(correction=merge, reviewer=ivy, verdict="reject", comment="two nuclei",
                                 labels="revert_anyway", label_version="v2")
    assert np.array_equal(_labels(rejected.reverted_version), _labels(small_v1))
    # The merged nucleus is gone, so is its check: off the review queue, never training data.
    check = Correction.objects.get(id=check.id)
    assert (check.undone, check.undone_by, check.review_status) == (True, ivy, "pending")
    assert list(review_queue(project=volume.project)) == []
    with pytest.raises(ApplicationError, match="undone"):
        correction_review(correction=check, reviewer=ivy, verdict="approve")
    assert list(training_corrections(project=volume.project)) == []
    event = AuditEvent.objects.get(action="correction.undo", object_id=check.id)
    assert (event.user, event.details["withdrawn_by_revert_of"], event.details["result_version"]) == (
        ivy, merge.id, rejected.reverted_version.name)
    assert not Nucleus.objects.of(rejected.reverted_version).exclude(curation="").exists()


def test_a_check_is_recorded_without_a_new_version_and_kept_until_the_nucleus_changes(small_v1, alice, ivy):
    volume = small_v1.volume
    n, m = _largest(small_v1), _largest(small_v1, 1)
    check = correction_create(volume=volume, user=alice, label_version="v1",
                              edit={"correction_type": "confirm", "nucleus_ids": [n.label_id],
                                    "z": round(n.centroid_z)})
    assert (check.correction_type, check.result_version, check.nucleus_ids, check.new_ids) == (
        "confirm", None, [n.label_id], [n.label_id])
    assert LabelVersion.objects.filter(volume=volume).count() == 1
    assert Nucleus.objects.of(small_v1).get(label_id=n.label_id).curation == "checked"
    with pytest.raises(ApplicationError, match="checked already") as twice:
        correction_create(volume=volume, user=ivy, label_version="v1",
                          edit={"correction_type": "confirm", "nucleus_ids": [n.label_id]})
    assert twice.value.status == 409
    # An edit of another nucleus carries the mark along; an edit of this one ends it.
    v2 = correction_create(volume=volume, user=alice, label_version="v1",
                           edit={"correction_type": "delete", "nucleus_ids": [m.label_id]}).result_version
    assert Nucleus.objects.of(v2).get(label_id=n.label_id).curation == "checked"
    v3 = _split(v2, alice, Nucleus.objects.of(v2).get(label_id=n.label_id)).result_version
    assert Nucleus.objects.of(v3).get(label_id=n.label_id).curation == "edited"


def test_a_check_is_a_positive_training_example_once_approved(small_v1, alice, ivy):
    volume = small_v1.volume
    n = _largest(small_v1)
    check = correction_create(volume=volume, user=alice, label_version="v1",
                              edit={"correction_type": "confirm", "nucleus_ids": [n.label_id],
                                    "z": round(n.centroid_z)})
    assert list(training_corrections(project=volume.project)) == []
    correction_review(correction=check, reviewer=ivy, verdict="approve")
    assert [c.id for c in training_corrections(project=volume.project)] == [check.id]
    tracker = correction_store(volume)
    before, after = tracker.load(check.record_id)
    assert np.array_equal(before, after) and before.any()
    (example,) = correction_examples(tracker, [check.record_id])
    record, crop = tracker.get(check.record_id), tracker.load_image(check.record_id)
    inner = tuple(slice(a - w.start, b - w.start) for (a, b), w in zip(record.bbox, crop.window, strict=True))
    nucleus = np.zeros(example.labels.shape, bool)
    nucleus[inner] = tracker.load(check.record_id, crop=True)[0] != 0
    # The nucleus is one object of the target, weighted in full: the model learns it is right.
    assert len(np.unique(example.labels[nucleus])) == 1 and (example.labels[nucleus] > 0).all()
    assert (example.weight[nucleus] == 1).all()


def test_a_check_is_withdrawn_by_its_undo(small_v1, alice):
    n = _largest(small_v1)
    check = correction_create(volume=small_v1.volume, user=alice, label_version="v1",
                              edit={"correction_type": "confirm", "nucleus_ids": [n.label_id]})
    withdrawn = correction_undo(correction=check, user=alice, label_version="v1")
    assert (withdrawn.undone, withdrawn.undone_version, withdrawn.undone_by) == (True, None, alice)
    assert Nucleus.objects.of(small_v1).get(label_id=n.label_id).curation == ""
    assert LabelVersion.objects.count() == 1 and list(review_queue(project=small_v1.volume.project)) == []
    with pytest.raises(ApplicationError, match="undone already"):
        correction_undo(correction=check, user=alice, label_version="v1")
    with pytest.raises(ApplicationError, match="check the nucleus again") as redo:
        correction_redo(correction=check, user=alice, label_version="v1")
    assert redo.value.status == 409
    again = correction_create(volume=small_v1.volume, user=alice, label_version="v1",
                              edit={"correction_type": "confirm", "nucleus_ids": [n.label_id]})
    assert again.id != check.id and Nucleus.objects.of(small_v1).get(label_id=n.label_id).curation == \
        "checked"


def test_rejecting_a_check_takes_the_mark_off(small_v1, alice, ivy):
    n = _largest(small_v1)
    check = correction_create(volume=small_v1.volume, user=alice, label_version="v1",
                              edit={"correction_type": "confirm", "nucleus_ids": [n.label_id]})
    rejected = correction_review(correction=check, reviewer=ivy, verdict="reject", comment="it is two nuclei")
    assert (rejected.review_labels, rejected.reverted_version) == ("reverted", None)
    assert Nucleus.objects.of(small_v1).get(label_id=n.label_id).curation == ""
    assert LabelVersion.objects.count() == 1
