"""keep_curated and revert_edit on tiny literal arrays, in 2D and 3D."""

import numpy as np
import pytest

from segmentation.core.curation import keep_curated, revert_edit
from segmentation.core.errors import InvalidInputError, InvalidParameterError


def _3d(a):
    return np.stack([a, a])


@pytest.mark.parametrize("ndim", [2, 3])
def test_it_keeps_the_curated_nuclei_voxel_for_voxel_and_fills_the_rest(ndim):
    model = np.array([[1, 1, 1, 0, 2, 2, 0, 3],
                      [1, 1, 1, 0, 2, 2, 0, 3]], np.uint32)
    person = np.array([[4, 4, 4, 4, 0, 0, 0, 0],
                       [4, 4, 0, 0, 0, 0, 0, 0]], np.uint32)
    erased = np.zeros(model.shape, bool)
    erased[:, 7] = True  # a person deleted what model nucleus 3 finds again
    if ndim == 3:
        model, person, erased = _3d(model), _3d(person), _3d(erased)
    merged = keep_curated(model, person, erased=erased)
    out = merged.labels
    assert out.dtype == np.uint32 and out.shape == model.shape
    assert np.array_equal(out[person != 0], person[person != 0])  # the person's nucleus, exactly
    assert not (out[(person == 0) & np.isin(out, [4])]).any()
    assert merged.kept == (4,)
    assert merged.dropped == (1, 3)  # 5 of 6 voxels under the person's nucleus; all erased
    assert merged.model_ids == {2: 5} and merged.trimmed == ()
    assert set(np.unique(out[model == 2]).tolist()) == {5}  # the model fills in the rest, numbered after
    assert not out[erased].any()
    assert person.max() == 4 and model.max() == 3  # inputs untouched


def test_it_trims_a_model_nucleus_that_overlaps_a_kept_one_a_little():
    model = np.array([[1, 1, 1, 1, 1, 0]], np.uint32)
    person = np.array([[0, 0, 0, 0, 7, 7]], np.uint32)
    merged = keep_curated(model, person)
    assert merged.labels.tolist() == [[8, 8, 8, 8, 7, 7]]
    assert (merged.trimmed, merged.dropped) == ((1,), ())


def test_it_numbers_from_one_when_nothing_is_kept():
    model = np.array([[0, 3, 3, 0, 9]], np.uint16)
    merged = keep_curated(model, np.zeros_like(model))
    assert merged.labels.tolist() == [[0, 1, 1, 0, 2]] and merged.kept == ()


@pytest.mark.parametrize("call, error", [
    (lambda: keep_curated(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8)), InvalidInputError),
    (lambda: keep_curated(np.zeros((2, 2)), np.zeros((2, 2), np.uint8)), InvalidInputError),
    (lambda: keep_curated(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), min_overlap=0),
     InvalidParameterError),
    (lambda: keep_curated(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), erased=np.zeros((2, 2))),
     InvalidInputError),
])
def test_it_refuses_bad_input(call, error):
    with pytest.raises(error):
        call()


@pytest.mark.parametrize("ndim", [2, 3])
def test_a_clean_revert_gives_the_labels_before_the_edit(ndim):
    before_labels = np.array([[5, 5, 5, 5, 0, 6]], np.uint32)
    after_labels = np.array([[5, 5, 9, 9, 0, 6]], np.uint32)  # nucleus 5 split, 9 the new half
    before = np.where(before_labels == 5, 5, 0)
    after = np.where(np.isin(after_labels, [5, 9]), after_labels, 0)
    if ndim == 3:
        before_labels, after_labels, before, after = map(_3d, (before_labels, after_labels, before, after))
    result = revert_edit(after_labels, before, after, next_id=10)
    assert result.clean and result.renamed == {}
    assert np.array_equal(result.labels, before_labels)


def test_a_deleted_nucleus_comes_back():
    before = np.array([[0, 3, 3, 0]])
    after = np.zeros_like(before)
    now = np.array([[1, 0, 0, 2]])
    result = revert_edit(now, before, after, next_id=4)
    assert result.clean and result.labels.tolist() == [[1, 3, 3, 2]]


def test_a_revert_over_later_edits_restores_the_original_voxels_and_says_so():
    before = np.array([[5, 5, 5, 5, 0, 0]])
    after = np.array([[5, 5, 9, 9, 0, 0]])
    # Since then 9 lost column 3 to an eraser, a new nucleus 11 was painted there, and a brush
    # grew 9 into column 4.
    now = np.array([[5, 5, 9, 11, 9, 0]])
    result = revert_edit(now, before, after, next_id=12)
    assert not result.clean
    # Nucleus 5 is back on every voxel it had; 9's voxels the edit left are gone; the brush's
    # voxel of 9 stays (made later, elsewhere).
    assert result.labels.tolist() == [[5, 5, 5, 5, 9, 0]]


def test_an_id_held_by_another_nucleus_now_is_restored_under_a_new_id():
    before = np.array([[4, 4, 0, 0]])
    after = np.zeros_like(before)  # 4 deleted; later an added nucleus got id 4 again
    now = np.array([[0, 0, 4, 4]])
    result = revert_edit(now, before, after, next_id=7)
    assert not result.clean and result.renamed == {4: 7}
    assert result.labels.tolist() == [[7, 7, 4, 4]]


@pytest.mark.parametrize("chunks", [
    [np.s_[0:1], np.s_[1:2], np.s_[2:3], np.s_[3:4]],                 # planes
    [np.s_[0:2, :40, :], np.s_[0:2, 40:, :], np.s_[2:4]],              # blocks of other shapes
])
def test_pasting_chunk_by_chunk_gives_what_keep_curated_gives_whole(chunks):
    from segmentation.core import synthetic
    from segmentation.core.curation import CuratedPaste

    model = synthetic.generate_3d((4, 64, 64), seed=1, diameter=14, voxel_size=(1.0, 1.0, 1.0)).labels
    person = np.zeros_like(model)
    person[:, 10:30, 10:34] = 50  # a nucleus a person drew over several model nuclei
    person[1:3, 40:44, 40:60] = 61
    erased = np.zeros(model.shape, bool)
    erased[:, 50:, :12] = True
    whole = keep_curated(model, person, erased=erased)
    paste = CuratedPaste()
    for chunk in chunks:
        paste.count(model[chunk], person[chunk], erased=erased[chunk])
    paste.decide()
    out = np.zeros(model.shape, np.uint32)
    for chunk in chunks:
        out[chunk] = paste.paste(model[chunk], person[chunk], erased=erased[chunk])
    assert np.array_equal(out, whole.labels)
    assert (paste.kept, paste.model_ids, paste.dropped, paste.trimmed) == \
        (whole.kept, whole.model_ids, whole.dropped, whole.trimmed)
    assert whole.dropped and whole.trimmed  # the case exercises both rules


def test_a_paste_refuses_chunks_out_of_order():
    from segmentation.core.curation import CuratedPaste

    paste = CuratedPaste()
    model, person = np.array([[1, 1, 0]]), np.array([[0, 0, 3]])
    with pytest.raises(InvalidInputError, match="decide"):
        paste.paste(model, person)
    paste.count(model, person)
    paste.decide()
    with pytest.raises(InvalidInputError, match="decided"):
        paste.count(model, person)
    with pytest.raises(InvalidInputError, match="no counted chunk"):
        paste.paste(np.array([[5, 0, 0]]), person)
    with pytest.raises(InvalidParameterError, match="min_overlap"):
        CuratedPaste(min_overlap=0)
