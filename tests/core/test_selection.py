"""The registry of review strategies (segmentation.core.corrections.SELECTION_STRATEGIES): each
picks from the rankings as it says, and a strategy registered there is one select_for_review runs."""

import pytest

from segmentation.core.corrections import (
    SELECTION_STRATEGIES,
    SelectionStrategy,
    register_selection_strategy,
    select_for_review,
)
from segmentation.core.errors import InvalidParameterError

RANKINGS = {"a": [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)], "b": [(7, 0.5), (8, 0.4)]}


def test_it_names_the_strategies_once():
    assert list(SELECTION_STRATEGIES) == ["top", "round_robin", "random", "mixed"]


@pytest.mark.parametrize("strategy", ["random", "mixed"])
def test_it_draws_the_random_picks_from_the_seed(strategy):
    picked = select_for_review(RANKINGS, 4, strategy=strategy, seed=5)
    assert len(picked) == len({(i, n) for i, n, _ in picked}) == 4
    assert picked == select_for_review(RANKINGS, 4, strategy=strategy, seed=5)
    if strategy == "mixed":  # half from the top, then half at random from the rest
        assert [(i, n) for i, n, _ in picked[:2]] == [("a", 1), ("a", 2)]
    everything = select_for_review(RANKINGS, 9, strategy=strategy, seed=1)
    assert sorted((i, n) for i, n, _ in everything) == sorted((i, n) for i, r in RANKINGS.items() for n, _ in r)


def test_it_runs_a_registered_strategy():
    def least_first(queues, n, cap, rng):
        flat = sorted(((score, image, nucleus) for image, items in queues for nucleus, score in items))
        return [(image, nucleus, score) for score, image, nucleus in flat[:n]]

    register_selection_strategy(SelectionStrategy("least", "the most certain first", least_first))
    try:
        assert [(i, n) for i, n, _ in select_for_review(RANKINGS, 2, strategy="least")] == [("b", 8), ("b", 7)]
        with pytest.raises(ValueError, match="already registered"):
            register_selection_strategy(SelectionStrategy("least", "", least_first))
    finally:
        del SELECTION_STRATEGIES["least"]
    with pytest.raises(InvalidParameterError, match="unknown strategy 'least'; choose one of top, round_robin"):
        select_for_review(RANKINGS, 2, strategy="least")
