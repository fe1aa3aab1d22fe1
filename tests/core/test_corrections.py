import datetime
import json

import numpy as np
import pytest

from segmentation.core.corrections import (
    ActiveLearningManager,
    CorrectionRecord,
    CorrectionStorageError,
    CorrectionTracker,
)
from segmentation.core.errors import InvalidInputError, InvalidParameterError
from segmentation.core.uncertainty import UncertaintyEstimator, UncertaintyParams

SHAPES = {"2d": (40, 64), "3d": (6, 40, 64)}


def blob(shape, box):
    """Boolean mask with ``box`` ((start, stop) per axis) set."""
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in box)] = True
    return mask


def split_pair(dim):
    """A nucleus (bool) and its split into two labels (uint16)."""
    shape = SHAPES[dim]
    lead = [(1, 4)] if dim == "3d" else []
    before = blob(shape, lead + [(10, 20), (30, 50)])
    after = np.zeros(shape, np.uint16)
    after[blob(shape, lead + [(10, 20), (30, 39)])] = 1
    after[blob(shape, lead + [(10, 20), (41, 50)])] = 2
    return before, after


# --- records -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_it_records_and_loads_a_correction(tmp_path, dim):
    tracker = CorrectionTracker(tmp_path / "corr")
    before, after = split_pair(dim)
    copies = before.copy(), after.copy()
    record = tracker.record("img_001", 42, before, after, "split", {"user": "alice", "zoom": 2})
    np.testing.assert_array_equal(before, copies[0])
    np.testing.assert_array_equal(after, copies[1])

    assert record.id == 1 and record.image_id == "img_001" and record.nucleus_id == 42
    assert record.correction_type == "split" and record.metadata == {"user": "alice", "zoom": 2}
    assert record.shape == SHAPES[dim]
    assert record.bbox[-2:] == ((10, 20), (30, 50))
    assert datetime.datetime.fromisoformat(record.timestamp).utcoffset() == datetime.timedelta(0)
    assert (tmp_path / "corr" / record.file).is_file() and record.file == "corr_000001.npz"

    original, corrected = tracker.load(record.id)
    assert original.dtype == bool and corrected.dtype == np.uint16
    np.testing.assert_array_equal(original, before)
    np.testing.assert_array_equal(corrected, after)
    crop_o, crop_c = tracker.load(record.id, crop=True)
    assert crop_o.shape == crop_c.shape == tuple(b - a for a, b in record.bbox)

    assert tracker.records() == [record] and tracker.count() == 1
    index = json.loads((tmp_path / "corr" / "corrections.json").read_text())
    assert index["records"] == [record.to_dict()]


def test_a_nucleus_of_a_large_image_is_stored_as_a_small_crop(tmp_path):
    tracker = CorrectionTracker(tmp_path)
    before = blob((2048, 2048), [(1000, 1030), (500, 525)])
    after = blob((2048, 2048), [(1002, 1030), (500, 525)])
    record = tracker.record("big", 3, before, after, "modify")
    assert (tmp_path / record.file).stat().st_size < 2000
    with np.load(tmp_path / record.file) as npz:
        assert npz["original"].shape == (30, 25)
        assert npz["offset"].tolist() == [1000, 500] and npz["shape"].tolist() == [2048, 2048]
    np.testing.assert_array_equal(tracker.load(record.id)[1], after)


def test_record_round_trips_through_dict():
    record = CorrectionRecord(id=3, image_id="a", nucleus_id=1, correction_type="add",
                              timestamp="2025-01-02T03:04:05.006+00:00", bbox=((0, 2), (1, 3)),
                              shape=(4, 4), metadata={"k": [1, 2]}, file="corr_000003.npz")
    data = json.loads(json.dumps(record.to_dict()))
    assert CorrectionRecord.from_dict(data) == record
    with pytest.raises(InvalidParameterError, match="missing correction record fields: bbox"):
        CorrectionRecord.from_dict({k: v for k, v in data.items() if k != "bbox"})
    with pytest.raises(InvalidParameterError, match="missing correction record fields: file"):
        CorrectionRecord.from_dict({k: v for k, v in data.items() if k != "file"})  # stored records have every field
    with pytest.raises(InvalidParameterError, match="unknown"):
        CorrectionRecord.from_dict({**data, "extra": 1})
    with pytest.raises(InvalidParameterError):
        CorrectionRecord.from_dict({**data, "bbox": [[0, 9], [1, 3]]})   # outside the shape


def test_ids_keep_growing(tmp_path):
    tracker = CorrectionTracker(tmp_path)
    before = blob((8, 8), [(1, 3), (1, 3)])
    ids = [tracker.record("x", n, before, np.zeros((8, 8), bool), "delete").id for n in range(3)]
    assert ids == [1, 2, 3]
    assert [r.nucleus_id for r in tracker.records()] == [0, 1, 2]
    with pytest.raises(KeyError):
        tracker.load(99)


# --- validation ------------------------------------------------------------------------------------


def _masks():
    empty = np.zeros((10, 10), bool)
    one = blob((10, 10), [(2, 5), (2, 5)])
    two_bool = one | blob((10, 10), [(2, 5), (6, 9)])
    two_labels = one.astype(np.int32) + 2 * blob((10, 10), [(2, 5), (6, 9)])
    return empty, one, two_bool, two_labels


@pytest.mark.parametrize("case", ["delete", "add", "split", "split_bool", "merge", "modify", "confirm"])
def test_consistent_corrections_are_accepted(tmp_path, case):
    empty, one, two_bool, two_labels = _masks()
    original, corrected, kind = {
        "delete": (one, empty, "delete"),
        "add": (empty, one, "add"),
        "split": (one | two_bool, two_labels, "split"),
        "split_bool": (one | two_bool | blob((10, 10), [(2, 5), (5, 6)]), two_bool, "split"),
        "merge": (two_labels, one | two_bool | blob((10, 10), [(2, 5), (5, 6)]), "merge"),
        "modify": (one, blob((10, 10), [(2, 6), (2, 5)]), "modify"),
        "confirm": (one, one.copy(), "confirm"),
    }[case]
    assert CorrectionTracker(tmp_path).record("img", 1, original, corrected, kind).correction_type == kind


@pytest.mark.parametrize("case, match", [
    ("delete_nonempty", "'delete'"),
    ("add_nonempty_original", "'add'"),
    ("split_one_label", "'split'"),
    ("merge_one_component", "'merge'"),
    ("modify_to_empty", "'modify'"),
    ("unchanged", "nothing was corrected"),
    ("both_empty", "nothing was corrected"),
    ("confirm_changed", "'confirm'.*masks differ"),
    ("confirm_empty", "both masks are empty"),
    ("shapes", "shape"),
    ("float", "dtype"),
    ("negative", ">= 0"),
    ("1d", r"\(Y, X\)"),
])
def test_inconsistent_corrections_are_refused(tmp_path, case, match):
    empty, one, two_bool, two_labels = _masks()
    original, corrected, kind = {
        "delete_nonempty": (one, one[::-1].copy(), "delete"),
        "add_nonempty_original": (one, two_bool, "add"),
        "split_one_label": (two_bool, one.astype(np.uint8), "split"),
        "merge_one_component": (one, two_labels, "merge"),
        "modify_to_empty": (one, empty, "modify"),
        "unchanged": (one, one.copy(), "modify"),
        "both_empty": (empty, empty, "modify"),
        "confirm_changed": (one, blob((10, 10), [(2, 6), (2, 5)]), "confirm"),
        "confirm_empty": (empty, empty, "confirm"),
        "shapes": (one, one[:, :9], "modify"),
        "float": (one.astype(float), one, "modify"),
        "negative": (-one.astype(int), one, "modify"),
        "1d": (one[0], one[1], "modify"),
    }[case]
    tracker = CorrectionTracker(tmp_path)
    with pytest.raises(InvalidInputError, match=match):
        tracker.record("img", 1, original, corrected, kind)
    assert tracker.count() == 0 and not list(tmp_path.glob("corr_*.npz"))


@pytest.mark.parametrize("kwargs", [
    {"correction_type": "erase"},
    {"image_id": ""},
    {"nucleus_id": -1},
    {"nucleus_id": 1.5},
    {"metadata": {"when": datetime.datetime.now()}},
    {"metadata": {1: "x"}},
])
def test_bad_parameters_are_refused(tmp_path, kwargs):
    _, one, _, _ = _masks()
    args = {"image_id": "img", "nucleus_id": 1, "original_mask": one, "corrected_mask": one[::-1].copy(),
            "correction_type": "modify", **kwargs}
    with pytest.raises(InvalidParameterError):
        CorrectionTracker(tmp_path).record(**args)


# --- the index on disk -------------------------------------------------------------------------------


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ("[]", "not an EZQuant corrections index"),
    ('{"format": "ezquant-corrections", "version": 99, "records": []}', "version"),
    ('{"format": "ezquant-corrections", "version": 1, "records": [{"id": 1}]}', "record #0"),
])
def test_a_corrupt_index_is_an_error_and_is_left_alone(tmp_path, content, match):
    tracker = CorrectionTracker(tmp_path)
    _, one, _, _ = _masks()
    tracker.record("img", 1, one, one[::-1].copy(), "modify")
    (tmp_path / "corrections.json").write_text(content)

    def record():
        return tracker.record("img", 2, one, np.roll(one, 1, axis=1), "modify")

    for call in (tracker.records, tracker.count, record):
        with pytest.raises(CorrectionStorageError, match=match):
            call()
    assert (tmp_path / "corrections.json").read_text() == content


def test_a_hand_edited_duplicate_id_is_an_error(tmp_path):
    tracker = CorrectionTracker(tmp_path)
    _, one, _, _ = _masks()
    tracker.record("img", 1, one, one[::-1].copy(), "modify")
    index = json.loads((tmp_path / "corrections.json").read_text())
    index["records"].append(index["records"][0])
    (tmp_path / "corrections.json").write_text(json.dumps(index))
    with pytest.raises(CorrectionStorageError, match="appears twice"):
        tracker.records()


def test_a_missing_mask_file_is_an_error(tmp_path):
    tracker = CorrectionTracker(tmp_path)
    _, one, _, _ = _masks()
    record = tracker.record("img", 1, one, one[::-1].copy(), "modify")
    (tmp_path / record.file).unlink()
    with pytest.raises(CorrectionStorageError, match="missing"):
        tracker.load(record.id)
    # and the next record does not reuse a hand-removed entry's file name
    (tmp_path / "corr_000007.npz").write_bytes(b"")
    assert tracker.record("img", 1, one, np.roll(one, 1, axis=1), "modify").id == 8


def _record_many(worker, barrier, storage_dir, n):
    tracker = CorrectionTracker(storage_dir)
    before = blob((16, 16), [(2, 6), (2, 6)])
    after = blob((16, 16), [(2, 7), (2, 6)])
    barrier.wait()
    for k in range(n):
        tracker.record(f"worker{worker}", k, before, after, "modify", {"worker": worker})


def test_two_processes_recording_at_once_keep_every_record(tmp_path, at_once):
    n = 15
    assert at_once(_record_many, tmp_path, n) == [0, 0]
    records = CorrectionTracker(tmp_path).records()
    assert len(records) == 2 * n
    assert sorted(r.id for r in records) == list(range(1, 2 * n + 1))
    for w in range(2):
        assert sorted(r.nucleus_id for r in records if r.metadata["worker"] == w) == list(range(n))
    assert len(list(tmp_path.glob("corr_*.npz"))) == 2 * n
    assert not list(tmp_path.glob("*.tmp"))


# --- the manager ---------------------------------------------------------------------------------------


def _segmentation():
    """Three nuclei: 1 and 3 square, 2 with a notch; flows and cellprob a network could give."""
    masks = np.zeros((24, 40), np.int32)
    masks[2:10, 2:10] = 1
    masks[12:22, 14:26] = 2
    masks[15:19, 20:26] = 0
    masks[2:10, 28:36] = 3
    from cellpose.dynamics import masks_to_flows

    dp = 5 * masks_to_flows(masks)
    cellprob = np.where(masks > 0, 5.0, -5.0)
    cellprob[masks == 3] = 0.2
    return masks, dp, cellprob


def test_it_identifies_uncertain_nuclei_as_the_guide_calls_it(tmp_path):
    masks, dp, cellprob = _segmentation()
    manager = ActiveLearningManager(tmp_path)
    ranked = manager.rank_nuclei(masks, dp, cellprob)
    assert ranked == UncertaintyEstimator().rank(masks, dp, cellprob)
    order = [i for i, _ in ranked]
    assert sorted(order[:2]) == [2, 3] and order[2] == 1     # the sound square comes last
    assert manager.identify_uncertain_nuclei(masks=masks, flows=dp, cellprob=cellprob, top_n=10) == order
    flows = [np.zeros((*masks.shape, 3), np.uint8), dp, cellprob]
    assert manager.identify_uncertain_nuclei(masks, flows, top_n=2) == order[:2]
    assert manager.identify_uncertain_nuclei(masks, flows, top_n=0) == []

    def only(**weights):
        params = UncertaintyParams(**{"flow_weight": 0, "cellprob_weight": 0, "solidity_weight": 0, **weights})
        return ActiveLearningManager(tmp_path, estimator=UncertaintyEstimator(params))

    assert only(solidity_weight=1).identify_uncertain_nuclei(masks, flows, top_n=1) == [2]
    assert only(cellprob_weight=1).identify_uncertain_nuclei(masks, flows, top_n=1) == [3]


def test_it_records_corrections_where_the_guide_says(tmp_path):
    masks, _, _ = _segmentation()
    manager = ActiveLearningManager(tmp_path)
    corrected = np.zeros(masks.shape, bool)
    record = manager.record_correction("test_001", 2, masks == 2, corrected, "delete", {"user": "ivy"})
    assert (tmp_path / "corrections" / "corrections.json").is_file()
    assert (tmp_path / "corrections" / record.file).is_file()
    assert manager.tracker.records() == [record]


def test_should_retrain_counts_corrections_since_the_last_training(tmp_path):
    manager = ActiveLearningManager(tmp_path, min_corrections_for_training=3)
    before = blob((8, 8), [(1, 4), (1, 4)])
    after = np.zeros((8, 8), bool)

    def correct(n):
        for k in range(n):
            manager.record_correction("img", k, before, after, "delete")

    assert not manager.should_retrain() and manager.last_training() is None
    correct(2)
    assert not manager.should_retrain()
    correct(1)
    assert manager.should_retrain() and manager.corrections_since_training() == 3
    entry = manager.record_training("adapter-v1")
    assert entry["last_correction_id"] == 3 and manager.last_training()["model_version"] == "adapter-v1"
    assert not manager.should_retrain() and manager.corrections_since_training() == 0
    correct(2)
    assert not manager.should_retrain()
    correct(1)
    assert manager.should_retrain()
    assert ActiveLearningManager(tmp_path).should_retrain() is False      # default threshold 20


def test_manager_parameters_are_checked(tmp_path):
    with pytest.raises(InvalidParameterError):
        ActiveLearningManager(tmp_path, min_corrections_for_training=0)
    with pytest.raises(InvalidParameterError):
        ActiveLearningManager(tmp_path, estimator="fast")
    manager = ActiveLearningManager(tmp_path)
    (tmp_path / "training.json").write_text("{}")
    with pytest.raises(CorrectionStorageError):
        manager.should_retrain()
