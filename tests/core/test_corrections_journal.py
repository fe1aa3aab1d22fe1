"""The corrections store's journal (``corrections.jsonl``): a record is one appended line, the
journal is folded into ``corrections.json`` when the store is read whole, a torn last line is
ignored with a warning and cut off by the next record, stores written before the journal load as
they are, and two processes appending at once keep every record."""

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest

from segmentation.core.corrections import CorrectionRecord, CorrectionStorageError, CorrectionTracker


def _pair(k: int = 0):
    """A nucleus (bool, 16 x 16) and the same nucleus grown by one row: a ``modify``."""
    before = np.zeros((16, 16), bool)
    before[2:6, 2 + k % 8:6 + k % 8] = True
    after = before.copy()
    after[6, 2 + k % 8:6 + k % 8] = True
    return before, after


def _record(tracker, k: int, **meta):
    before, after = _pair(k)
    return tracker.record("img", k, before, after, "modify", {"k": k, **meta})


def _index(folder):
    return json.loads((folder / "corrections.json").read_text())["records"]


def _journal(folder) -> list[dict]:
    path = folder / "corrections.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _cold(folder, tmp_path, name="cold"):
    """A copy of the store at another path: a tracker there has parsed nothing in this process."""
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    return CorrectionTracker(copy)


def test_it_writes_the_json_first_then_appends_one_line_a_record(tmp_path):
    folder = tmp_path / "corr"
    tracker = CorrectionTracker(folder)
    first = _record(tracker, 1)
    # The store's first record makes the guide's file.
    assert _index(folder) == [first.to_dict()] and not (folder / "corrections.jsonl").exists()
    later = [_record(tracker, k) for k in range(2, 6)]
    # Later ones are lines of the journal; the JSON is not rewritten for them.
    assert _index(folder) == [first.to_dict()]
    assert _journal(folder) == [r.to_dict() for r in later]
    assert [r.id for r in later] == [2, 3, 4, 5]
    assert tracker.count() == 5 and tracker.get(4) == later[2]
    assert CorrectionTracker(folder).get(5) == later[3]
    # Another process (a cold tracker) reads both files.
    cold = _cold(folder, tmp_path)
    assert cold.count() == 5 and cold.get(3) == later[1] and cold.get(1) == first
    np.testing.assert_array_equal(cold.load(5)[1], _pair(5)[1])
    with pytest.raises(KeyError):
        cold.get(6)


def test_reading_the_store_whole_folds_the_journal_into_the_json(tmp_path):
    folder = tmp_path / "corr"
    tracker = CorrectionTracker(folder)
    made = [_record(tracker, k) for k in range(1, 5)]
    assert tracker.records() == made
    assert _index(folder) == [r.to_dict() for r in made] and not (folder / "corrections.jsonl").exists()
    more = _record(tracker, 5)
    assert _journal(folder) == [more.to_dict()]
    tracker.compact()
    assert _index(folder) == [r.to_dict() for r in made + [more]]
    assert not (folder / "corrections.jsonl").exists()
    assert _cold(folder, tmp_path).records() == made + [more]


def test_a_record_leaves_the_json_alone(tmp_path):
    # Once the store has its JSON, a record appends its line and writes nothing else: its cost
    # does not grow with the store's history.
    tracker = CorrectionTracker(tmp_path)
    for k in range(1, 40):
        _record(tracker, k)
    stat = (tmp_path / "corrections.json").stat()
    _record(tracker, 40)
    again = (tmp_path / "corrections.json").stat()
    assert (again.st_ino, again.st_size, again.st_mtime_ns) == (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    assert len(_journal(tmp_path)) == 39


def test_a_torn_last_line_is_ignored_with_a_warning_then_cut_off(tmp_path, caplog):
    folder = tmp_path / "corr"
    tracker = CorrectionTracker(folder)
    made = [_record(tracker, k) for k in range(1, 4)]
    whole = (folder / "corrections.jsonl").read_bytes()
    # A crash part way through appending record 4: half of its line, no newline.
    torn = json.dumps({**made[-1].to_dict(), "id": 4, "file": "corr_000004.npz"}).encode()[:40]
    (folder / "corrections.jsonl").write_bytes(whole + torn)
    for reader in (tracker, _cold(folder, tmp_path)):
        with caplog.at_level(logging.WARNING, logger="segmentation.core.corrections.tracker"):
            caplog.clear()
            assert reader.count() == 3 and reader.get(3) == made[2]
        assert "cut short and ignored" in caplog.text
        with pytest.raises(KeyError):
            reader.get(4)
    # The next record cuts the torn line off and takes the id after the last whole record.
    with caplog.at_level(logging.WARNING, logger="segmentation.core.corrections.tracker"):
        nxt = _record(tracker, 9)
    assert nxt.id == 4 and "cutting off its last line" in caplog.text
    assert (folder / "corrections.jsonl").read_bytes() == whole + (
        json.dumps(nxt.to_dict(), separators=(",", ":")) + "\n").encode()
    assert [r.id for r in _cold(folder, tmp_path, "cold2").records()] == [1, 2, 3, 4]


def test_a_bad_whole_line_is_an_error_and_nothing_is_written(tmp_path):
    tracker = CorrectionTracker(tmp_path)
    _record(tracker, 1)
    _record(tracker, 2)
    path = tmp_path / "corrections.jsonl"
    content = path.read_text() + "{not a record}\n" + path.read_text()
    path.write_text(content)
    for call in (tracker.count, tracker.records, lambda: _record(tracker, 3)):
        with pytest.raises(CorrectionStorageError, match=r"corrections.jsonl: line 2 is not valid JSON"):
            call()
    assert path.read_text() == content
    path.write_text(_journal_line(tracker, 2) * 2)
    with pytest.raises(CorrectionStorageError, match="record id 2 appears twice"):
        tracker.count()


def _journal_line(tracker, record_id):
    record = dataclasses.replace(CorrectionRecord.from_dict(_index(tracker.storage_dir)[0]), id=record_id)
    return json.dumps(record.to_dict()) + "\n"


def test_lines_folded_already_are_skipped_after_a_crash_in_the_fold(tmp_path):
    folder = tmp_path / "corr"
    tracker = CorrectionTracker(folder)
    made = [_record(tracker, k) for k in range(1, 4)]
    journal = (folder / "corrections.jsonl").read_bytes()
    tracker.compact()
    # A crash after the new corrections.json, before the journal was removed.
    (folder / "corrections.jsonl").write_bytes(journal)
    assert _cold(folder, tmp_path).count() == 3 and tracker.records() == made
    # A journal line that contradicts the JSON is not silently dropped.
    (folder / "corrections.jsonl").write_text(json.dumps({**made[1].to_dict(), "nucleus_id": 77}) + "\n")
    with pytest.raises(CorrectionStorageError, match="record id 2 .* already, different"):
        tracker.count()


def test_a_store_written_before_the_journal_keeps_loading(tmp_path):
    # corrections.json as the tracker wrote it before there was a journal (indented, every record).
    old = [{"id": k, "image_id": "volume-3", "nucleus_id": 10 + k, "correction_type": "delete",
            "timestamp": f"2026-11-0{k}T10:00:00.000+00:00", "bbox": [[2, 6], [2, 6]], "shape": [16, 16],
            "metadata": {"user": "alice"}, "file": f"corr_{k:06d}.npz"} for k in (1, 2)]
    (tmp_path / "corrections.json").write_text(json.dumps(
        {"format": "ezquant-corrections", "version": 1, "records": old}, indent=1))
    tracker = CorrectionTracker(tmp_path)
    assert [r.to_dict() for r in tracker.records()] == old and tracker.get(2).nucleus_id == 12
    new = _record(tracker, 3)
    assert new.id == 3 and _journal(tmp_path) == [new.to_dict()]
    assert [r.id for r in tracker.records()] == [1, 2, 3]
    assert _index(tmp_path) == old + [new.to_dict()]


def test_to_dict_names_every_field_in_order():
    record = CorrectionRecord(id=1, image_id="a", nucleus_id=1, correction_type="add",
                              timestamp="2025-01-02T03:04:05.006+00:00", bbox=((0, 2), (1, 3)), shape=(4, 4),
                              metadata={"k": {"nested": [1]}}, file="corr_000001.npz")
    data = record.to_dict()
    assert list(data) == [f.name for f in dataclasses.fields(CorrectionRecord)]
    data["metadata"]["k"]["nested"].append(2)
    assert record.metadata == {"k": {"nested": [1]}}  # a copy


def _append_and_fold(worker, barrier, storage_dir, n):
    tracker = CorrectionTracker(storage_dir)
    barrier.wait()
    for k in range(n):
        _record(tracker, k, worker=worker)
        if worker == 1 and k % 5 == 4:
            tracker.records()  # folds, under the same lock, while the other appends


def test_two_processes_appending_and_folding_at_once_keep_every_record(tmp_path, at_once):
    n = 20
    folder = tmp_path / "corr"
    _record(CorrectionTracker(folder), 99, worker=-1)  # the JSON exists: both append
    assert at_once(_append_and_fold, folder, n) == [0, 0]
    for reader in (_cold(folder, tmp_path), CorrectionTracker(folder)):
        records = reader.records()
        assert sorted(r.id for r in records) == list(range(1, 2 * n + 2))
        for w in range(2):
            assert sorted(r.nucleus_id for r in records if r.metadata["worker"] == w) == list(range(n))
    assert len(_index(folder)) == 2 * n + 1 and not (folder / "corrections.jsonl").exists()
    assert len(list(folder.glob("corr_*.npz"))) == 2 * n + 1 and not list(folder.glob("*.tmp"))
