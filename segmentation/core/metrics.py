"""Segmentation quality metrics for 2D and 3D label images.

Every function here works on arrays of any dimensionality (a 2D ``(Y, X)`` image or a 3D
``(Z, Y, X)`` volume). Label images are integer arrays where ``0`` is background and every other
value names one instance; the ids need not be contiguous or small (``10**6`` is as good as ``1``),
and two label images are compared by their overlap, never by their ids.

Conventions shared by all functions:

- ``gt`` is the reference, ``pred`` the segmentation under test, except in
  :func:`compute_split_merge_errors`, which keeps the guide's order ``(pred, gt)``.
- Inputs are never modified.
- Comparing two empty images counts as perfect agreement (IoU, Dice and AP are 1.0).
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

__all__ = [
    "APResult",
    "InstanceMatches",
    "LabelOverlap",
    "average_precision",
    "coefficient_of_variation",
    "compute_3d_dice",
    "compute_3d_iou",
    "compute_split_merge_errors",
    "iou_matrix",
    "label_overlap",
    "match_instances",
]

# Above this many cells a dense pair-count table is replaced by sorting the pair codes:
# bincount over a table this size costs a few milliseconds, np.unique costs more.
_DENSE_TABLE_LIMIT = 1 << 22


# --------------------------------------------------------------------------------------------
# Foreground overlap
# --------------------------------------------------------------------------------------------


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise InvalidInputError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def _foreground_counts(mask1, mask2) -> tuple[int, int, int]:
    a = np.asarray(mask1)
    b = np.asarray(mask2)
    _check_same_shape(a, b, "mask1 and mask2")
    fg_a = a > 0
    fg_b = b > 0
    return int(np.count_nonzero(fg_a & fg_b)), int(np.count_nonzero(fg_a)), int(np.count_nonzero(fg_b))


def compute_3d_iou(mask1, mask2) -> float:
    """Intersection over union of the foregrounds of two masks.

    Parameters
    ----------
    mask1, mask2 : (..., ) array, same shape
        Binary masks or label images of any dimensionality (2D or 3D); every value ``> 0``
        counts as foreground, so instance ids are ignored.

    Returns
    -------
    iou : float
        ``|A & B| / |A | B|`` in ``[0, 1]``; 1.0 when both masks are empty.

    Raises
    ------
    InvalidInputError
        If the shapes differ.

    Examples
    --------
    >>> compute_3d_iou(np.array([[1, 1, 0]]), np.array([[0, 2, 2]]))
    0.3333333333333333
    """
    inter, n_a, n_b = _foreground_counts(mask1, mask2)
    union = n_a + n_b - inter
    return 1.0 if union == 0 else inter / union


def compute_3d_dice(mask1, mask2) -> float:
    """Dice coefficient (F1) of the foregrounds of two masks.

    Parameters
    ----------
    mask1, mask2 : (..., ) array, same shape
        Binary masks or label images of any dimensionality; every value ``> 0`` is foreground.

    Returns
    -------
    dice : float
        ``2 |A & B| / (|A| + |B|)`` in ``[0, 1]``; 1.0 when both masks are empty.

    Raises
    ------
    InvalidInputError
        If the shapes differ.

    Examples
    --------
    >>> compute_3d_dice(np.array([[1, 1, 0]]), np.array([[0, 2, 2]]))
    0.5
    """
    inter, n_a, n_b = _foreground_counts(mask1, mask2)
    total = n_a + n_b
    return 1.0 if total == 0 else 2.0 * inter / total


# --------------------------------------------------------------------------------------------
# Instance overlap
# --------------------------------------------------------------------------------------------


def _as_labels(labels, name: str) -> np.ndarray:
    """Return ``labels`` as a non-negative integer array (bool becomes 0/1), never a copy if avoidable."""
    arr = np.asarray(labels)
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"{name} must be an integer label image, got dtype {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise InvalidInputError(f"{name} must not contain negative labels")
    return arr


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renumber a label image to ``0..n`` in the order of its ids.

    Returns ``ids`` (n,) the original non-zero ids in increasing order, ``sizes`` (n,) their voxel
    counts, and ``index`` (labels.size,) intp, the flat image with id ``ids[k]`` replaced by
    ``k + 1`` and background kept at 0.
    """
    flat = labels.ravel()
    if flat.size == 0:
        return np.zeros(0, labels.dtype), np.zeros(0, np.int64), np.zeros(0, np.intp)
    top = int(flat.max())
    if top < max(1 << 16, 4 * flat.size):
        # Small ids: a lookup table indexed by id is linear time.
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=top + 1)
        counts[0] = 0
        present = np.flatnonzero(counts)
        lut = np.zeros(top + 1, np.intp)
        lut[present] = np.arange(1, present.size + 1)
        return present.astype(labels.dtype), counts[present].astype(np.int64), lut[flat]
    # Huge ids (say 2**31 on a small image): a table would not fit, sort instead.
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1).astype(np.intp, copy=False)
    if uniq[0] == 0:
        return uniq[1:], counts[1:].astype(np.int64), inverse
    return uniq, counts.astype(np.int64), inverse + 1


def _pair_counts(index_a: np.ndarray, n_a: int, index_b: np.ndarray, n_b: int):
    """Count voxels of every (a, b) pair of compact ids that are both foreground.

    Returns ``rows``, ``cols`` (0-based compact indices) and ``counts``, one entry per pair that
    shares at least one voxel, sorted by (row, col).
    """
    both = (index_a > 0) & (index_b > 0)
    a = index_a[both] - 1
    b = index_b[both] - 1
    codes = a.astype(np.int64) * n_b + b
    if n_a * n_b <= max(_DENSE_TABLE_LIMIT, 2 * codes.size):
        table = np.bincount(codes, minlength=n_a * n_b)
        flat = np.flatnonzero(table)
        counts = table[flat]
    else:
        flat, counts = np.unique(codes, return_counts=True)
    rows, cols = np.divmod(flat, n_b) if n_b else (flat, flat)
    return rows.astype(np.intp), cols.astype(np.intp), counts.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class LabelOverlap:
    """Contingency table of two label images, stored sparsely.

    Attributes
    ----------
    ids_a, ids_b : (n_a,), (n_b,) int arrays
        Non-zero ids present in ``labels_a`` and ``labels_b``, increasing.
    sizes_a, sizes_b : (n_a,), (n_b,) int64 arrays
        Voxel count of each id.
    rows, cols : (k,) intp arrays
        Indices into ``ids_a`` and ``ids_b`` of the ``k`` pairs that share at least one voxel.
    intersections : (k,) int64 array
        Number of voxels each such pair shares.
    """

    ids_a: np.ndarray
    ids_b: np.ndarray
    sizes_a: np.ndarray
    sizes_b: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    intersections: np.ndarray

    def to_sparse(self) -> scipy.sparse.csr_array:
        """Return the intersections as a ``(n_a, n_b)`` sparse matrix."""
        shape = (self.ids_a.size, self.ids_b.size)
        return scipy.sparse.csr_array((self.intersections, (self.rows, self.cols)), shape=shape)

    def to_dense(self) -> np.ndarray:
        """Return the intersections as a dense ``(n_a, n_b)`` int64 array."""
        out = np.zeros((self.ids_a.size, self.ids_b.size), np.int64)
        out[self.rows, self.cols] = self.intersections
        return out

    def pair_ious(self) -> np.ndarray:
        """IoU of each overlapping pair, ``(k,)`` float64 aligned with ``rows`` and ``cols``."""
        union = self.sizes_a[self.rows] + self.sizes_b[self.cols] - self.intersections
        return self.intersections / union


def _readonly(*arrays: np.ndarray) -> None:
    for arr in arrays:
        arr.setflags(write=False)


def label_overlap(labels_a, labels_b) -> LabelOverlap:
    """Count the voxels shared by every pair of instances of two label images.

    Vectorised: the ids are renumbered once (a lookup table, or a sort for huge ids) and the
    pairs are counted with one ``bincount`` (or ``unique``) of pair codes, so the cost is linear
    in the number of voxels whatever the ids are.

    Parameters
    ----------
    labels_a, labels_b : (..., ) int array, same shape
        Label images, 0 = background; any non-negative ids of any integer dtype.

    Returns
    -------
    overlap : LabelOverlap
        Sparse contingency table (pairs that share no voxel are left out); see
        :meth:`LabelOverlap.to_dense` and :meth:`LabelOverlap.to_sparse`.

    Raises
    ------
    InvalidInputError
        If the shapes differ, the dtype is not integer, or an id is negative.

    Examples
    --------
    >>> ov = label_overlap(np.array([[5, 5, 0]]), np.array([[0, 7, 7]]))
    >>> ov.ids_a, ov.ids_b, ov.to_dense()
    (array([5]), array([7]), array([[1]]))
    """
    a = _as_labels(labels_a, "labels_a")
    b = _as_labels(labels_b, "labels_b")
    _check_same_shape(a, b, "labels_a and labels_b")
    top_a = int(a.max()) if a.size else 0
    top_b = int(b.max()) if b.size else 0
    if (top_a + 1) * (top_b + 1) <= _DENSE_TABLE_LIMIT:
        overlap = _overlap_by_table(a.ravel(), top_a, b.ravel(), top_b)
    else:
        ids_a, sizes_a, index_a = _compact(a)
        ids_b, sizes_b, index_b = _compact(b)
        rows, cols, inter = _pair_counts(index_a, ids_a.size, index_b, ids_b.size)
        overlap = (ids_a, ids_b, sizes_a, sizes_b, rows, cols, inter)
    _readonly(*overlap)
    return LabelOverlap(*overlap)


def _overlap_by_table(a: np.ndarray, top_a: int, b: np.ndarray, top_b: int):
    """Small ids: count every (id_a, id_b) pair, background included, in one dense table."""
    codes = a.astype(np.intp)
    codes *= top_b + 1
    codes += b
    table = np.bincount(codes, minlength=(top_a + 1) * (top_b + 1)).reshape(top_a + 1, top_b + 1)
    sizes_a = table[1:].sum(axis=1)
    sizes_b = table[:, 1:].sum(axis=0)
    ids_a = np.flatnonzero(sizes_a)
    ids_b = np.flatnonzero(sizes_b)
    inner = table[1:, 1:][np.ix_(ids_a, ids_b)]
    rows, cols = np.nonzero(inner)
    return (
        (ids_a + 1).astype(a.dtype),
        (ids_b + 1).astype(b.dtype),
        sizes_a[ids_a].astype(np.int64),
        sizes_b[ids_b].astype(np.int64),
        rows.astype(np.intp),
        cols.astype(np.intp),
        inner[rows, cols].astype(np.int64),
    )


def iou_matrix(gt, pred, *, sparse: bool = False):
    """Intersection over union of every (gt, pred) pair of instances.

    Parameters
    ----------
    gt, pred : (..., ) int array, same shape
        Label images, 0 = background, any non-negative ids (non-contiguous, ``10**6``, uint32 ...).
    sparse : bool, optional
        Return a ``scipy.sparse.csr_array`` holding only the overlapping pairs instead of a dense
        array; use it when both images hold many thousands of instances.

    Returns
    -------
    gt_ids : (n_gt,) int array
        Instance ids of ``gt``, increasing; row ``i`` of ``iou`` is ``gt_ids[i]``.
    pred_ids : (n_pred,) int array
        Instance ids of ``pred``, increasing; column ``j`` of ``iou`` is ``pred_ids[j]``.
    iou : (n_gt, n_pred) float64 array or sparse array
        ``|G_i & P_j| / |G_i | P_j|``; 0 for pairs that share no voxel.

    Examples
    --------
    >>> gt_ids, pred_ids, iou = iou_matrix(np.array([[3, 3, 0, 0]]), np.array([[9, 9, 9, 0]]))
    >>> gt_ids, pred_ids, iou
    (array([3]), array([9]), array([[0.66666667]]))
    """
    ov = label_overlap(gt, pred)
    values = ov.pair_ious()
    shape = (ov.ids_a.size, ov.ids_b.size)
    if sparse:
        iou = scipy.sparse.csr_array((values, (ov.rows, ov.cols)), shape=shape)
    else:
        iou = np.zeros(shape, np.float64)
        iou[ov.rows, ov.cols] = values
    return ov.ids_a, ov.ids_b, iou


# --------------------------------------------------------------------------------------------
# Matching and average precision
# --------------------------------------------------------------------------------------------


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
        return list(zip(gt, pred))
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


# --------------------------------------------------------------------------------------------
# Split and merge errors
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Volumetric stability
# --------------------------------------------------------------------------------------------


def coefficient_of_variation(values, *, ddof: int = 0) -> float:
    """Coefficient of variation of repeated measurements, in percent.

    ``CV = std(values) / mean(values) * 100``, the guide's volumetric stability measure (run a
    segmentation several times, measure e.g. the foreground volume each time): lower is more
    reproducible.

    Parameters
    ----------
    values : (n,) array_like of float
        Repeated measurements, finite, with a non-zero mean.
    ddof : int, optional
        Delta degrees of freedom of the standard deviation; 0 (the guide's ``np.std``) gives the
        population value, 1 the sample value.

    Returns
    -------
    cv : float
        Percent; 0.0 when all values are equal.

    Raises
    ------
    InvalidInputError
        If ``values`` is empty, not finite, holds too few values for ``ddof``, or has a mean of 0.

    Examples
    --------
    >>> coefficient_of_variation([90, 100, 110])
    8.16496580927726
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise InvalidInputError("coefficient_of_variation needs at least one value")
    if arr.size <= ddof:
        raise InvalidInputError(f"coefficient_of_variation with ddof={ddof} needs more than {ddof} values")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("coefficient_of_variation got a non-finite value")
    mean = arr.mean()
    if mean == 0:
        raise InvalidInputError("coefficient_of_variation is undefined for a mean of 0")
    return float(arr.std(ddof=ddof) / abs(mean) * 100.0)
