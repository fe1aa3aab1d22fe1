"""Overlap of two masks or label images: foreground IoU and Dice, the contingency table of two
label images (:func:`label_overlap`) and the IoU matrix of their instances.

Conventions are those of the package (:mod:`segmentation.core.metrics`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse

from segmentation.core.errors import InvalidInputError

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
