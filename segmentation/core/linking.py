"""Link independent 2D label images of a z-stack into consistent 3D instances.

This is the linking step of the guide's "hybrid 2D+3D" backend: a 2D model labels each z-slice on
its own, so the same nucleus carries unrelated ids on neighbouring slices; :func:`link_slices`
gives it one id through the whole stack.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import scipy.optimize

from segmentation.core.errors import InvalidInputError, InvalidParameterError

__all__ = ["OVERLAP_MEASURES", "LinkingParams", "link_slices"]

#: What ``min_overlap_ratio`` is compared with: the IoU of the two 2D objects (the guide's
#: definition), or their intersection over the area of the smaller one, which still links the
#: small caps of a nucleus to its large middle sections on coarse z steps.
OVERLAP_MEASURES = ("iou", "intersection_over_smaller")


@dataclasses.dataclass(frozen=True)
class LinkingParams:
    """Parameters of :func:`link_slices`, validated on creation.

    Parameters
    ----------
    min_overlap_ratio : float, optional
        Smallest IoU, in ``(0, 1]``, between a 2D object and the last 2D object of a track for
        the two to be linked.
    max_distance_z : int, optional
        How many slices back (``>= 1``) a track may end and still be continued; 1 links adjacent
        slices only, 2 bridges a gap of one slice where the object was missed.
    overlap_measure : {"iou", "intersection_over_smaller"}, optional
        What ``min_overlap_ratio`` is compared with. ``"iou"`` (the guide's definition) misses
        links between the small top or bottom section of a nucleus and its large middle when z
        steps are coarse; ``"intersection_over_smaller"`` (``|A & B| / min(|A|, |B|)``, used
        with a higher ratio such as 0.7) keeps them. The assignment itself always maximises IoU.

    Raises
    ------
    InvalidParameterError
        If a value is of the wrong type or out of range.

    Examples
    --------
    >>> LinkingParams.from_dict({"max_distance_z": 3}).to_dict()
    {'min_overlap_ratio': 0.3, 'max_distance_z': 3, 'overlap_measure': 'iou'}
    """

    min_overlap_ratio: float = 0.3
    max_distance_z: int = 2
    overlap_measure: str = "iou"

    def __post_init__(self) -> None:
        ratio = self.min_overlap_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0.0 < float(ratio) <= 1.0:
            raise InvalidParameterError(f"min_overlap_ratio must be a number in (0, 1], got {ratio!r}")
        dist = self.max_distance_z
        if isinstance(dist, bool) or not isinstance(dist, numbers.Integral) or dist < 1:
            raise InvalidParameterError(f"max_distance_z must be an integer >= 1, got {dist!r}")
        if self.overlap_measure not in OVERLAP_MEASURES:
            raise InvalidParameterError(
                f"overlap_measure must be one of {', '.join(OVERLAP_MEASURES)}, got {self.overlap_measure!r}"
            )
        # Store plain Python numbers so to_dict() is JSON-ready whatever was passed in.
        object.__setattr__(self, "min_overlap_ratio", float(ratio))
        object.__setattr__(self, "max_distance_z", int(dist))

    def to_dict(self) -> dict:
        """Return the parameters as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LinkingParams:
        """Build parameters from :meth:`to_dict`'s output; missing keys take their defaults."""
        if not isinstance(data, dict):
            raise InvalidParameterError(f"LinkingParams.from_dict needs a dict, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InvalidParameterError(f"unknown linking parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)


def _check_labels(labels) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise InvalidInputError(f"labels must be a (Z, Y, X) stack, got {arr.ndim} dimensions")
    if arr.dtype == bool:
        return arr.view(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"labels must be an integer label image, got dtype {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise InvalidInputError("labels must not contain negative ids")
    return arr


def _compact_slice(plane: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber one slice's ids to ``1..n`` (increasing with the id), background stays 0.

    Returns the renumbered ``(Y, X)`` int32 slice and the ``(n + 1,)`` pixel count of each new
    id (index 0 unused).
    """
    flat = plane.ravel()
    if top < max(1 << 20, 4 * flat.size):
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=top + 1)
        counts[0] = 0
        present = counts > 0
        lut = np.cumsum(present, dtype=np.int32)
        lut[~present] = 0
        local = lut[flat]
        sizes = np.concatenate([[0], counts[present]])
    else:  # ids too large for a lookup table: sort instead
        uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
        local = inverse.reshape(-1).astype(np.int32) + (0 if uniq[0] == 0 else 1)
        sizes = counts.copy() if uniq[0] == 0 else np.concatenate([[0], counts])
        sizes[0] = 0
    return local.reshape(plane.shape), sizes


def _slice_overlaps(local_a: np.ndarray, sizes_a: np.ndarray, local_b: np.ndarray, sizes_b: np.ndarray,
                    measure: str) -> tuple[np.ndarray, np.ndarray]:
    """IoU of every object of slice a with every object of slice b, ``(n_a, n_b)``, and the
    ``measure`` the link threshold applies to (the same array for ``"iou"``)."""
    n_a, n_b = sizes_a.size - 1, sizes_b.size - 1
    codes = local_a.ravel().astype(np.intp)
    codes *= n_b + 1
    codes += local_b.ravel()
    table = np.bincount(codes, minlength=(n_a + 1) * (n_b + 1)).reshape(n_a + 1, n_b + 1)
    size_a = sizes_a[1:, None]
    size_b = sizes_b[None, 1:]
    inter = table[1:, 1:]
    iou = inter / (size_a + size_b - inter)
    if measure == "iou":
        return iou, iou
    return iou, inter / np.minimum(size_a, size_b)


def _assign(iou: np.ndarray, overlap: np.ndarray, rows: np.ndarray, cols: np.ndarray, threshold: float):
    """Hungarian assignment of ``rows`` to ``cols`` on cost ``1 - IoU``.

    Pairs whose ``overlap`` is under ``threshold`` cost 1, the same as staying unlinked, so the
    assignment maximises the summed IoU of the allowed pairs; pairs it makes that are not
    allowed are dropped.
    """
    sub = iou[np.ix_(rows, cols)]
    sub[overlap[np.ix_(rows, cols)] < threshold] = 0.0
    live_r = np.flatnonzero(sub.any(axis=1))
    live_c = np.flatnonzero(sub.any(axis=0))
    if live_r.size == 0:
        return rows[:0], cols[:0]
    sub = sub[np.ix_(live_r, live_c)]
    ri, ci = scipy.optimize.linear_sum_assignment(1.0 - sub)
    ok = sub[ri, ci] > 0.0
    return rows[live_r[ri[ok]]], cols[live_c[ci[ok]]]


def link_slices(labels, *, min_overlap_ratio: float = 0.3, max_distance_z: int = 2,
                overlap_measure: str = "iou") -> np.ndarray:
    """Give the 2D objects of a z-stack consistent 3D ids by overlap-based tracking.

    Slices are visited from ``z = 0`` up. A *track* is a 3D instance built so far; it ends on the
    last slice it has an object on. For slice ``z``:

    1. The objects of ``z`` are matched with the tracks ending on ``z - 1`` by the Hungarian
       algorithm on cost ``1 - IoU`` (IoU of the 2D object with the track's object on its last
       slice); a pair is linked only if its IoU (or, with
       ``overlap_measure="intersection_over_smaller"``, its intersection over the smaller
       object's area) is ``>= min_overlap_ratio``.
    2. The objects still unmatched are matched the same way with the tracks ending on ``z - 2``,
       then ``z - 3`` ... up to ``z - max_distance_z``. Nearer slices are preferred because they
       are tried first; a track missing on up to ``max_distance_z - 1`` slices (a gap, e.g. a
       nucleus the 2D model missed on one slice) is thus continued.
    3. Objects left unmatched start new tracks.

    Consequences, by construction: two 2D objects are linked only if they overlap (IoU > 0) in
    (Y, X); a track holds at most one object per slice; every foreground voxel keeps a
    non-zero label. A 2D id that covers several disconnected regions of a slice is one object.

    Parameters
    ----------
    labels : (Z, Y, X) int array
        Stack of independent 2D label images, 0 = background. Ids may repeat between slices or
        not; they are only compared within a slice.
    min_overlap_ratio : float, optional
        Smallest IoU to link, in ``(0, 1]`` (see :class:`LinkingParams`).
    max_distance_z : int, optional
        How many slices back a track may end and still be continued, ``>= 1``.
    overlap_measure : {"iou", "intersection_over_smaller"}, optional
        What ``min_overlap_ratio`` applies to (see :class:`LinkingParams`).

    Returns
    -------
    linked : (Z, Y, X) uint32 array
        3D instance labels ``1..N``, numbered in order of first appearance (slice, then the
        object's id on that slice); 0 = background exactly where ``labels`` is 0.

    Raises
    ------
    InvalidInputError
        If ``labels`` is not a 3D array of non-negative integers.
    InvalidParameterError
        If a parameter is out of range.

    References
    ----------
    .. [1] H. W. Kuhn, "The Hungarian method for the assignment problem", Naval Research
       Logistics Quarterly 2, 83-97 (1955).

    Examples
    --------
    >>> stack = np.array([[[1, 1, 0, 2]], [[0, 0, 0, 0]], [[5, 5, 0, 0]]])
    >>> link_slices(stack)[:, 0]
    array([[1, 1, 0, 2],
           [0, 0, 0, 0],
           [1, 1, 0, 0]], dtype=uint32)
    """
    params = LinkingParams(min_overlap_ratio=min_overlap_ratio, max_distance_z=max_distance_z,
                           overlap_measure=overlap_measure)
    stack = _check_labels(labels)
    out = np.zeros(stack.shape, np.uint32)
    if stack.size == 0:
        return out
    top = int(stack.max())
    n_tracks = 0
    # Per recent slice: its compact labels, object count, each object's track id, and whether
    # that track still ends there (is "open"); only max_distance_z slices are kept.
    window: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for z in range(stack.shape[0]):
        local, sizes = _compact_slice(stack[z], top)
        n = sizes.size - 1
        track_of = np.zeros(n + 1, np.int64)
        unmatched = np.ones(n + 1, bool)
        unmatched[0] = False
        for d in range(1, params.max_distance_z + 1):
            prev = window.get(z - d)
            if prev is None or not unmatched.any():
                continue
            p_local, p_sizes, p_track, p_open = prev
            if not p_open.any():
                continue
            iou, overlap = _slice_overlaps(local, sizes, p_local, p_sizes, params.overlap_measure)
            rows, cols = _assign(
                iou, overlap, np.flatnonzero(unmatched[1:]), np.flatnonzero(p_open[1:]), params.min_overlap_ratio
            )
            track_of[rows + 1] = p_track[cols + 1]
            unmatched[rows + 1] = False
            p_open[cols + 1] = False
        new = np.flatnonzero(unmatched)
        track_of[new] = np.arange(n_tracks + 1, n_tracks + 1 + new.size)
        n_tracks += new.size
        out[z] = track_of[local]
        is_open = np.ones(n + 1, bool)
        is_open[0] = False
        window[z] = (local, sizes, track_of, is_open)
        window.pop(z - params.max_distance_z, None)
    return out
