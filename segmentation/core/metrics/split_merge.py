"""Split and merge errors of a segmentation against ground truth.

Conventions are those of the package (:mod:`segmentation.core.metrics`).
"""

from __future__ import annotations

import numpy as np

from .overlap import _as_labels, _check_same_shape, label_overlap


def _excess_majority_pieces(pieces: np.ndarray, wholes: np.ndarray) -> int:
    """Number of pieces beyond the first that lie mostly (> 1/2) inside the same whole."""
    ov = label_overlap(pieces, wholes)
    majority = 2 * ov.intersections > ov.sizes_a[ov.rows]
    owners = ov.cols[majority]  # each piece has at most one whole holding more than half of it
    return int(owners.size - np.unique(owners).size)


def compute_split_merge_errors(pred, gt) -> tuple[int, int]:
    """Count split and merge errors of a segmentation against ground truth.

    Definitions (each a count of *extra pieces*, i.e. of the edits needed to fix the error):

    - A predicted instance *belongs to* a ground-truth instance when more than half of its
      voxels lie inside it. It can belong to at most one.
    - ``splits`` = sum over ground-truth instances of ``max(0, k - 1)``, where ``k`` is the
      number of predicted instances that belong to it: a nucleus cut in three counts 2 splits.
    - ``merges`` is the same with the roles swapped: a ground-truth instance belongs to a
      predicted one when more than half of its voxels lie inside it, and a prediction holding
      ``k`` ground-truth instances counts ``k - 1`` merges.

    So ``compute_split_merge_errors(a, b) == compute_split_merge_errors(b, a)[::-1]``.
    Small fragments count like large ones; spurious and missed instances (FP/FN) are not
    counted here, see :func:`average_precision` for those.

    Parameters
    ----------
    pred, gt : (..., ) int array, same shape
        Predicted and ground-truth label images, 0 = background, any ids (note the order:
        prediction first, as in the guide).

    Returns
    -------
    splits, merges : int

    Examples
    --------
    >>> gt = np.array([[1, 1, 1, 1, 0, 2, 2, 0, 3, 3]])
    >>> pred = np.array([[4, 4, 5, 5, 0, 6, 6, 6, 6, 6]])
    >>> compute_split_merge_errors(pred, gt)
    (1, 1)
    """
    p = _as_labels(pred, "pred")
    g = _as_labels(gt, "gt")
    _check_same_shape(p, g, "pred and gt")
    return _excess_majority_pieces(p, g), _excess_majority_pieces(g, p)
