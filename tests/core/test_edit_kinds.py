"""The registry of edit kinds (segmentation.core.editing.EDIT_KINDS): one entry per kind, and a
kind registered there is validated, applied and recorded with nothing else changed."""

import numpy as np
import pytest

from segmentation.core.corrections import CorrectionTracker
from segmentation.core.editing import EDIT_KINDS, EDIT_TYPES, Edit, EditKind, apply_edit, register_edit_kind
from segmentation.core.errors import InvalidInputError, InvalidParameterError
from tests.conftest import shrink_nucleus


def test_it_lists_the_built_in_kinds_once_in_the_registry():
    assert EDIT_TYPES == ("split", "merge", "delete", "add", "modify", "confirm") == tuple(EDIT_KINDS)
    assert [k for k in EDIT_KINDS.values() if not k.changes_voxels] == [EDIT_KINDS["confirm"]]
    assert {k.name for k in EDIT_KINDS.values() if k.new_id} == {"split", "add"}
    assert EDIT_KINDS["merge"].to_dict()["nuclei"] == [2, None]


def test_it_validates_applies_and_records_a_registered_kind(tmp_path, shrink):
    labels = np.zeros((1, 10, 10), np.uint16)
    labels[0, 2:8, 2:8] = 1
    edit = Edit.from_dict({"correction_type": "shrink", "nucleus_ids": [1]})
    assert edit.kind is shrink
    out = apply_edit(labels[0], edit, new_id=2)
    assert out.shape == (10, 10) and (out == 1).sum() == 16 and labels.max() == 1
    with pytest.raises(InvalidInputError, match="a shrink names 1"):
        Edit(correction_type="shrink", nucleus_ids=(1, 2))
    with pytest.raises(InvalidInputError, match="a shrink takes no drawing"):
        Edit(correction_type="shrink", nucleus_ids=(1,), polygon=[[0, 0], [0, 3], [3, 3]])
    tracker = CorrectionTracker(tmp_path / "corr")
    record = tracker.record("img", 1, labels[0] == 1, out == 1, "shrink")
    assert record.correction_type == "shrink"
    two = np.zeros((10, 10), np.uint16)
    two[2:4, 2:4], two[6:8, 6:8] = 1, 2
    with pytest.raises(InvalidInputError, match="'shrink' keeps one nucleus; got 1 nucleus/nuclei before and 2"):
        tracker.record("img", 1, labels[0] == 1, two, "shrink")


def test_it_refuses_an_unknown_kind_everywhere(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown correction type 'shrink'"):
        Edit(correction_type="shrink", nucleus_ids=(1,))
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:4] = True
    with pytest.raises(InvalidParameterError, match="unknown correction type 'shrink'"):
        CorrectionTracker(tmp_path / "corr").record("img", 1, mask, mask, "shrink")


@pytest.mark.parametrize("change, message", [
    ({"name": "split"}, "already registered"),
    ({"name": "Two Words"}, "lower-case word"),
    ({"drawings": ("crayon",)}, "bad drawings"),
    ({"nuclei": (2, 1)}, "bad drawings, planes or nuclei"),
])
def test_it_refuses_a_badly_made_kind(change, message):
    fields = dict(name="blur", label="Blur", summary="", nuclei=(1, 1), drawings=(), apply=shrink_nucleus,
                  consistent=lambda before, after: True, rule="")
    with pytest.raises(ValueError, match=message):
        register_edit_kind(EditKind(**{**fields, **change}))
    assert "blur" not in EDIT_KINDS
