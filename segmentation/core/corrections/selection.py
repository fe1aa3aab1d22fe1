"""Which nuclei to put in front of a person next, across several images or volumes.

The strategies are one registry, :data:`SELECTION_STRATEGIES` (:func:`register_selection_strategy`
adds one): ``"top"`` takes the highest uncertainty scores over all images; ``"round_robin"``
takes each image's most uncertain nucleus in turn (images ordered by their own top score), so
that one badly segmented image does not fill the whole review queue and corrections cover the
variety of the data set; ``"random"`` draws uniformly; ``"mixed"`` takes half the picks from the
top of the ranking and the other half at random. With ``explore``, a fraction of any
strategy's picks is instead drawn at random from the nuclei not picked: uncertainty alone
keeps choosing the strangest nuclei, and a model trained only on those learns little about the
ordinary ones. ``bench/active_learning.py`` compares the strategies by these names; the web
app's review queues take them as ``?strategy=``.

Examples
--------
>>> rankings = {"a": [(1, 0.9), (2, 0.8), (3, 0.7)], "b": [(7, 0.5)]}
>>> [(i, n) for i, n, _ in select_for_review(rankings, 2)]
[('a', 1), ('a', 2)]
>>> [(i, n) for i, n, _ in select_for_review(rankings, 2, strategy="round_robin")]
[('a', 1), ('b', 7)]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["SELECTION_STRATEGIES", "SelectionStrategy", "register_selection_strategy", "select_for_review"]

#: ``(image id, [(nucleus id, score), ...] most uncertain first)`` per image, in the rankings' order.
Queues = list[tuple[Hashable, Sequence[tuple[int, float]]]]
Pick = tuple[Hashable, int, float]


@dataclass(frozen=True)
class SelectionStrategy:
    """One way of picking nuclei to review.

    Parameters
    ----------
    name : lower case, no spaces: what ``select_for_review(strategy=...)``, the bench and the
        web app's ``?strategy=`` say.
    summary : one line saying how it picks, for the API schema and the pages.
    pick : ``pick(queues, n, cap, rng) -> [(image id, nucleus id, score), ...]``: at most ``n``
        picks in review order from ``queues`` (each image's nuclei, most uncertain first; only
        the first ``cap`` of an image may be picked); ``rng`` a ``numpy.random.Generator``.
    """

    name: str
    summary: str
    pick: Callable[[Queues, int, float, np.random.Generator], list[Pick]]


#: Every strategy by name, in the order pages list them (the first is the default).
SELECTION_STRATEGIES: dict[str, SelectionStrategy] = {}


def register_selection_strategy(strategy: SelectionStrategy) -> SelectionStrategy:
    """Add ``strategy`` to :data:`SELECTION_STRATEGIES`; an empty, badly spelt or taken name fails."""
    if not isinstance(strategy, SelectionStrategy):
        raise TypeError(f"register a SelectionStrategy, got {type(strategy).__name__}")
    if not strategy.name.isidentifier() or strategy.name != strategy.name.lower():
        raise ValueError(f"a strategy's name is a lower-case word, got {strategy.name!r}")
    if strategy.name in SELECTION_STRATEGIES:
        raise ValueError(f"a strategy named {strategy.name!r} is already registered")
    SELECTION_STRATEGIES[strategy.name] = strategy
    return strategy


def _ranked(items: Any) -> list[tuple[int, float]]:
    if hasattr(items, "ranked"):  # a NucleusUncertainty table
        return items.ranked()
    pairs = [(int(n), float(s)) for n, s in items]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))


def select_for_review(rankings: Mapping[Hashable, Any], n: int, *, strategy: str = "top",
                      max_per_image: int | None = None, explore: float = 0.0,
                      seed: Any = None) -> list[tuple[Hashable, int, float]]:
    """Pick ``n`` nuclei to review from the rankings of several images.

    Parameters
    ----------
    rankings : mapping ``image id -> ranking``
        A ranking is a :class:`~segmentation.core.NucleusUncertainty` or a sequence of
        ``(nucleus id, score)`` pairs (any order; higher score = more uncertain).
    n : int >= 0
    strategy : a name in :data:`SELECTION_STRATEGIES`
        See the module docstring.
    max_per_image : int >= 1, optional
        At most this many nuclei from one image (any strategy; not the ``explore`` picks).
    explore : float in [0, 1]
        Fraction of the ``n`` picks (rounded down) drawn uniformly at random from the nuclei
        the strategy did not pick; they follow the strategy's picks in the result, in the order drawn.
    seed : optional
        Seed of those random picks (``numpy.random.default_rng``).

    Returns
    -------
    list of ``(image id, nucleus id, score)``
        In review order. Ties break by image order in ``rankings``, then by nucleus id.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidParameterError(f"n must be a whole number >= 0, got {n!r}")
    if strategy not in SELECTION_STRATEGIES:
        raise InvalidParameterError(f"unknown strategy {strategy!r}; choose one of {', '.join(SELECTION_STRATEGIES)}")
    if max_per_image is not None and (isinstance(max_per_image, bool) or not isinstance(max_per_image, int)
                                      or max_per_image < 1):
        raise InvalidParameterError(f"max_per_image must be a whole number >= 1 or None, got {max_per_image!r}")
    if isinstance(explore, bool) or not isinstance(explore, (int, float)) or not 0 <= explore <= 1:
        raise InvalidParameterError(f"explore must lie in [0, 1], got {explore!r}")
    queues: list[tuple[Hashable, Sequence[tuple[int, float]]]] = [(k, _ranked(v)) for k, v in rankings.items()]
    n_random = int(n * explore)
    rng = np.random.default_rng(seed)
    cap = max_per_image if max_per_image is not None else np.inf
    picked = SELECTION_STRATEGIES[strategy].pick(queues, n - n_random, cap, rng)
    if n_random:
        picked += _at_random(queues, n_random, np.inf, rng, taken=picked)
    return picked


def _top(queues: Queues, n: int, cap: float, rng: np.random.Generator) -> list[Pick]:
    flat = [(score, order, nucleus, image) for order, (image, items) in enumerate(queues)
            for rank, (nucleus, score) in enumerate(items) if rank < cap]
    flat.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(image, nucleus, score) for score, _, nucleus, image in flat[:n]]


def _round_robin(queues: Queues, n: int, cap: float, rng: np.random.Generator) -> list[Pick]:
    order = sorted(range(len(queues)), key=lambda i: (-(queues[i][1][0][1] if queues[i][1] else -np.inf), i))
    picked: list[Pick] = []
    depth = 0
    while len(picked) < n and depth < cap:
        took = False
        for i in order:
            image, items = queues[i]
            if depth < len(items) and len(picked) < n:
                picked.append((image, *items[depth]))
                took = True
        if not took:
            break
        depth += 1
    return picked


def _at_random(queues: Queues, n: int, cap: float, rng: np.random.Generator, taken=()) -> list[Pick]:
    """``n`` of the nuclei not ``taken``, uniformly, in the order drawn."""
    taken = {(image, nucleus) for image, nucleus, _ in taken}
    rest = [(image, nucleus, score) for image, items in queues for rank, (nucleus, score) in enumerate(items)
            if rank < cap and (image, nucleus) not in taken]
    chosen = rng.choice(len(rest), size=min(n, len(rest)), replace=False) if rest and n > 0 else []
    return [rest[i] for i in chosen]  # in the order drawn: a random review order too


def _mixed(queues: Queues, n: int, cap: float, rng: np.random.Generator) -> list[Pick]:
    top = _top(queues, n - n // 2, cap, rng)
    return top + _at_random(queues, n // 2, cap, rng, taken=top)


register_selection_strategy(SelectionStrategy(
    "top", "the most uncertain nuclei first, over all images", _top))
register_selection_strategy(SelectionStrategy(
    "round_robin", "each image's most uncertain nucleus in turn (no one image fills the queue)", _round_robin))
register_selection_strategy(SelectionStrategy(
    "random", "uniformly at random (seeded)", _at_random))
register_selection_strategy(SelectionStrategy(
    "mixed", "half the most uncertain, half at random (seeded)", _mixed))
