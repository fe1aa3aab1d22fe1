"""Which nuclei to put in front of a person next, across several images or volumes.

``"top"`` takes the highest uncertainty scores over all images; ``"round_robin"`` takes each
image's most uncertain nucleus in turn (images ordered by their own top score), so that one
badly segmented image does not fill the whole review queue and corrections cover the variety
of the data set (the "diverse" strategy of ``bench/active_learning.py``). With ``explore``, a
fraction of the picks is instead drawn at random from the nuclei not picked: uncertainty alone
keeps choosing the strangest nuclei, and a model trained only on those learns little about the
ordinary ones (the "mixed" strategy of the bench).

Examples
--------
>>> rankings = {"a": [(1, 0.9), (2, 0.8), (3, 0.7)], "b": [(7, 0.5)]}
>>> [(i, n) for i, n, _ in select_for_review(rankings, 2)]
[('a', 1), ('a', 2)]
>>> [(i, n) for i, n, _ in select_for_review(rankings, 2, strategy="round_robin")]
[('a', 1), ('b', 7)]
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["SELECTION_STRATEGIES", "select_for_review"]

SELECTION_STRATEGIES = ("top", "round_robin")


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
    strategy : {"top", "round_robin"}
        See the module docstring.
    max_per_image : int >= 1, optional
        At most this many nuclei from one image (either strategy; not the random picks).
    explore : float in [0, 1]
        Fraction of the ``n`` picks (rounded down) drawn uniformly at random from the nuclei
        the strategy did not pick; they follow the strategy's picks in the result.
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
    picked = _by_strategy(queues, n - n_random, strategy, max_per_image)
    if n_random:
        taken = {(image, nucleus) for image, nucleus, _ in picked}
        rest = [(image, nucleus, score) for image, items in queues for nucleus, score in items
                if (image, nucleus) not in taken]
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(rest), size=min(n_random, len(rest)), replace=False) if rest else []
        picked += [rest[i] for i in sorted(chosen)]
    return picked


def _by_strategy(queues: list[tuple[Hashable, Sequence[tuple[int, float]]]], n: int, strategy: str,
                 max_per_image: int | None) -> list[tuple[Hashable, int, float]]:
    cap = max_per_image if max_per_image is not None else np.inf
    if strategy == "top":
        flat = [(score, order, nucleus, image) for order, (image, items) in enumerate(queues)
                for rank, (nucleus, score) in enumerate(items) if rank < cap]
        flat.sort(key=lambda t: (-t[0], t[1], t[2]))
        return [(image, nucleus, score) for score, _, nucleus, image in flat[:n]]
    order = sorted(range(len(queues)), key=lambda i: (-(queues[i][1][0][1] if queues[i][1] else -np.inf), i))
    picked: list[tuple[Hashable, int, float]] = []
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
