"""holdout_split: which corrections a retraining learns from and which it scores on.

The training run itself (:func:`train_model_version`) is tested through the manager in
``test_adapter.py``, on a tiny network."""

import pytest

from segmentation.core.corrections import RetrainingParams, holdout_split


def test_it_holds_out_nothing_below_the_minimum():
    params = RetrainingParams(min_holdout_corrections=10)
    assert holdout_split([5, 3, 1], params) == ([1, 3, 5], [])


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_it_holds_out_each_correction_in_every_training(fraction):
    params = RetrainingParams(holdout_fraction=fraction, min_holdout_corrections=1)
    train, held = holdout_split(range(1, 201), params)
    assert sorted(train + held) == list(range(1, 201)) and not set(train) & set(held)
    assert 0 < len(held) < 200 * fraction * 2
    later, later_held = holdout_split(range(1, 401), params)  # more corrections since
    assert set(held) <= set(later_held) and set(train) <= set(later)


def test_it_trains_on_all_when_the_hash_holds_every_one_out():
    params = RetrainingParams(holdout_fraction=0.5, min_holdout_corrections=2)
    assert holdout_split([1, 4], params) == ([1, 4], [])  # both fall in the half held out
