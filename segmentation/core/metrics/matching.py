"""One-to-one matching of the instances of two label images, and average precision.

Conventions are those of the package (:mod:`segmentation.core.metrics`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.csgraph

from segmentation.core.errors import InvalidInputError, InvalidParameterError

from .overlap import LabelOverlap, _readonly, label_overlap


class InstanceMatches(NamedTuple):
    """One-to-one matches between two label images, sorted by ``gt_ids``.

    Attributes
    ----------
    gt_ids, pred_ids : (m,) int arrays
        Ids of the matched instances; ``gt_ids[k]`` is matched with ``pred_ids[k]``.
    ious : (m,) float64 array
        IoU of each matched pair, all ``>= iou_threshold``.
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    ious: np.ndarray


def _check_threshold(value, name: str) -> float:
    try:
        th = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number in (0, 1], got {value!r}") from None
    if not 0.0 < th <= 1.0:
        raise InvalidParameterError(f"{name} must be in (0, 1], got {value!r}")
    return th


def _match_pairs(rows: np.ndarray, cols: np.ndarray, ious: np.ndarray, threshold: float) -> np.ndarray:
    """Indices into ``rows``/``cols``/``ious`` of an optimal one-to-one matching.

    Only pairs with ``iou >= threshold`` may be matched. The matching maximises the number of
    matched pairs first and their summed IoU second (the StarDist/cellpose cost). It is solved
    on each connected component of the candidate graph on its own, so a large image with many
    instances costs many tiny assignments, not one huge one.
    """
    keep = np.flatnonzero(ious >= threshold)
    if keep.size == 0:
        return keep
    r, c = rows[keep], cols[keep]
    # Fast path: with IoU > 0.5 every instance has at most one candidate, nothing to solve.
    if np.unique(r).size == r.size and np.unique(c).size == c.size:
        return keep
    ur, r_idx = np.unique(r, return_inverse=True)
    uc, c_idx = np.unique(c, return_inverse=True)
    n_r = ur.size
    graph = scipy.sparse.coo_array(
        (np.ones(keep.size), (r_idx, n_r + c_idx)), shape=(n_r + uc.size, n_r + uc.size)
    )
    _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
    edge_component = component[r_idx]
    order = np.argsort(edge_component, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_component[order])) + 1
    chosen = []
    for edges in np.split(order, bounds):  # one iteration per component of candidate pairs
        if edges.size == 1:
            chosen.append(edges)
            continue
        er, rr = np.unique(r_idx[edges], return_inverse=True)
        ec, cc = np.unique(c_idx[edges], return_inverse=True)
        n_min = min(er.size, ec.size)
        # Each match is worth 1 plus a tie-break below 1/2 in total, so cardinality comes first.
        cost = np.zeros((er.size, ec.size))
        cost[rr, cc] = -1.0 - ious[keep[edges]] / (2.0 * n_min)
        lookup = np.full((er.size, ec.size), -1, np.intp)
        lookup[rr, cc] = edges
        ri, ci = scipy.optimize.linear_sum_assignment(cost)
        picked = lookup[ri, ci]
        chosen.append(picked[picked >= 0])
    return keep[np.sort(np.concatenate(chosen))]


def _matches_from_overlap(ov: LabelOverlap, threshold: float) -> InstanceMatches:
    ious = ov.pair_ious()
    sel = _match_pairs(ov.rows, ov.cols, ious, threshold)
    return InstanceMatches(ov.ids_a[ov.rows[sel]], ov.ids_b[ov.cols[sel]], ious[sel])


def match_instances(gt, pred, iou_threshold: float = 0.5) -> InstanceMatches:
    """Match the instances of two label images one-to-one.

    The matching is optimal in the StarDist/cellpose sense: among pairs with
    ``IoU >= iou_threshold`` it matches as many instances as possible and, among those
    matchings, maximises the summed IoU (``scipy.optimize.linear_sum_assignment`` [1]_). For
    ``iou_threshold > 0.5`` the matching is unique, since an instance cannot overlap two disjoint
    instances by more than half.

    Parameters
    ----------
    gt, pred : (..., ) int array, same shape
        Label images, 0 = background, any non-negative ids.
    iou_threshold : float, optional
        Smallest IoU at which two instances may be matched, in ``(0, 1]``.

    Returns
    -------
    matches : InstanceMatches
        ``(gt_ids, pred_ids, ious)``, each ``(m,)``, sorted by ``gt_ids``.

    Raises
    ------
    InvalidParameterError
        If ``iou_threshold`` is not in ``(0, 1]``.

    References
    ----------
    .. [1] H. W. Kuhn, "The Hungarian method for the assignment problem", Naval Research
       Logistics Quarterly 2, 83-97 (1955).

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 2, 2]])
    >>> pred = np.array([[0, 7, 7, 9, 9]])
    >>> match_instances(gt, pred, 0.5)
    InstanceMatches(gt_ids=array([2]), pred_ids=array([9]), ious=array([1.]))
    """
    threshold = _check_threshold(iou_threshold, "iou_threshold")
    return _matches_from_overlap(label_overlap(gt, pred), threshold)


@dataclasses.dataclass(frozen=True)
class APResult:
    """Average precision at several IoU thresholds (counts summed over all images).

    Attributes
    ----------
    thresholds : (k,) float64 array
    ap : (k,) float64 array
        ``tp / (tp + fp + fn)``; 1.0 where there is nothing to find and nothing was found.
    tp, fp, fn : (k,) int64 arrays
        Matched instances, unmatched predictions, unmatched ground-truth instances.
    n_images : int
        Number of image pairs the counts were summed over.
    """

    thresholds: np.ndarray
    ap: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    n_images: int

    def to_dict(self) -> dict:
        """Plain JSON-serialisable form: lists of Python numbers."""
        return {
            "thresholds": self.thresholds.tolist(),
            "ap": self.ap.tolist(),
            "tp": self.tp.tolist(),
            "fp": self.fp.tolist(),
            "fn": self.fn.tolist(),
            "n_images": self.n_images,
        }

    def at(self, threshold: float) -> dict:
        """``{"ap", "tp", "fp", "fn"}`` at one of ``thresholds``."""
        hits = np.flatnonzero(np.isclose(self.thresholds, threshold))
        if hits.size == 0:
            raise InvalidParameterError(f"threshold {threshold} was not evaluated")
        k = hits[0]
        return {"ap": float(self.ap[k]), "tp": int(self.tp[k]), "fp": int(self.fp[k]), "fn": int(self.fn[k])}


def _as_image_pairs(gt, pred) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(gt, np.ndarray) and isinstance(pred, np.ndarray):
        return [(gt, pred)]
    if isinstance(gt, (list, tuple)) and isinstance(pred, (list, tuple)):
        if len(gt) != len(pred):
            raise InvalidInputError(f"gt and pred hold different numbers of images: {len(gt)} and {len(pred)}")
        if not all(isinstance(x, np.ndarray) for x in (*gt, *pred)):
            raise InvalidInputError("a sequence of images must hold numpy arrays")
        return list(zip(gt, pred, strict=True))
    raise InvalidInputError("gt and pred must both be numpy arrays or both be lists of numpy arrays")


def average_precision(gt, pred, thresholds: Sequence[float] = (0.5, 0.75, 0.9)) -> APResult:
    """Average precision of instance segmentation, ``AP = TP / (TP + FP + FN)``.

    This is the convention of StarDist [1]_ and cellpose [2]_: a predicted instance is a true
    positive when :func:`match_instances` pairs it with a ground-truth instance at
    ``IoU >= threshold``. Unlike ``cellpose.metrics.average_precision`` it counts instances by
    their distinct ids, not by the largest id, so it is correct for any ids.

    Parameters
    ----------
    gt, pred : (..., ) int array, or list of such arrays
        Ground-truth and predicted label images (0 = background), 2D or 3D; each pair must
        share its shape. With lists, tp, fp and fn are summed over all pairs before AP is taken.
    thresholds : sequence of float, optional
        IoU thresholds, each in ``(0, 1]``.

    Returns
    -------
    result : APResult
        ``ap``, ``tp``, ``fp``, ``fn`` per threshold. When there are no instances in either
        image, ``ap`` is 1.0.

    Raises
    ------
    InvalidInputError
        If shapes differ, or the images are not arrays (or lists of arrays) of integers.
    InvalidParameterError
        If a threshold is outside ``(0, 1]`` or none is given.

    References
    ----------
    .. [1] U. Schmidt, M. Weigert, C. Broaddus, G. Myers, "Cell detection with star-convex
       polygons", MICCAI (2018).
    .. [2] C. Stringer, T. Wang, M. Michaelos, M. Pachitariu, "Cellpose: a generalist algorithm
       for cellular segmentation", Nature Methods 18, 100-106 (2021).

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 2, 2]])
    >>> res = average_precision(gt, gt * 1000, thresholds=(0.5,))
    >>> res.ap, res.tp, res.fp, res.fn
    (array([1.]), array([2]), array([0]), array([0]))
    """
    ths = np.array([_check_threshold(t, "thresholds") for t in np.atleast_1d(thresholds)], np.float64)
    if ths.size == 0:
        raise InvalidParameterError("thresholds must not be empty")
    pairs = _as_image_pairs(gt, pred)
    tp = np.zeros(ths.size, np.int64)
    n_gt = n_pred = 0
    for g, p in pairs:
        ov = label_overlap(g, p)
        ious = ov.pair_ious()
        n_gt += ov.ids_a.size
        n_pred += ov.ids_b.size
        for k, th in enumerate(ths):
            tp[k] += _match_pairs(ov.rows, ov.cols, ious, th).size
    fp = n_pred - tp
    fn = n_gt - tp
    denom = tp + fp + fn
    ap = np.divide(tp, denom, out=np.ones(ths.size, np.float64), where=denom > 0)
    _readonly(ths, ap, tp, fp, fn)
    return APResult(ths, ap, tp, fp, fn, len(pairs))
