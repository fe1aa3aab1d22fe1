"""Link independent 2D label images of a z-stack into consistent 3D instances.

This is the linking step of the guide's "hybrid 2D+3D" backend: a 2D model labels each z-slice on
its own, so the same nucleus carries unrelated ids on neighbouring slices; :func:`link_slices`
gives it one id through the whole stack.

Overlap alone cannot tell "the same nucleus one slice up" from "the next nucleus one slice up":
two nuclei stacked in z overlap in (Y, X) as much as two sections of one nucleus do. So after
linking, every track is cut where its sections say it holds two nuclei:
where the section *profile* (each section's area, weighted by the network's mean cell
probability in it when that is known) passes through a minimum that is at most ``split_dip``
times the smaller of the maxima on either side, and where a track is longer in z (in physical
units, through ``anisotropy``) than ``max_z_elongation`` times its largest section's diameter.
"""

from __future__ import annotations

import dataclasses
import numbers
from itertools import pairwise

import numpy as np
import scipy.optimize

from segmentation.core._validation import Params
from segmentation.core.backend_options import BACKEND_OPTIONS, option_default
from segmentation.core.errors import InvalidInputError, InvalidParameterError

__all__ = ["OVERLAP_MEASURES", "LinkingParams", "link_slices"]

# Both sides of a dip must peak at this fraction of each other or more to be cut apart.
_MIN_PEAK_RATIO = 0.2
# Tracks whose largest section is smaller than this (pixels) are never cut: too small to hold
# two nuclei, and their areas wobble by whole pixels.
_MIN_SPLIT_AREA = 12

#: What ``min_overlap_ratio`` is compared with: the IoU of the two 2D objects (the guide's
#: definition), or their intersection over the area of the smaller one, which still links the
#: small caps of a nucleus to its large middle sections on coarse z steps.
OVERLAP_MEASURES = BACKEND_OPTIONS["overlap_measure"].choices


@dataclasses.dataclass(frozen=True)
class LinkingParams(Params):
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
    split_dip : float, optional
        Cut a track where its section profile dips to at most this fraction of the smaller
        maximum on either side (two nuclei stacked in z), in ``[0, 1)``; 0 never cuts on dips.
        The default 0.7 leaves the profile of one nucleus (rising, then falling) uncut even when
        the 2D model's sections wobble by 20 %.
    max_z_elongation : float, optional
        Cut a track whose z extent (slices x ``anisotropy``) is more than this many times the
        diameter of its largest section, at its deepest dip; 0 turns the rule off. The default
        2.5 keeps nuclei elongated along z and nuclei lengthened by axial blur whole.

    Raises
    ------
    InvalidParameterError
        If a value is of the wrong type or out of range.

    Examples
    --------
    >>> LinkingParams.from_dict({"max_distance_z": 3}).to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'min_overlap_ratio': 0.3, 'max_distance_z': 3, 'overlap_measure': 'iou', 'split_dip': 0.7,
     'max_z_elongation': 2.5}
    """

    # The hybrid2d3d backend's options: defaults and rules declared once, in backend_options.
    min_overlap_ratio: float = option_default("min_overlap_ratio")
    max_distance_z: int = option_default("max_distance_z")
    overlap_measure: str = option_default("overlap_measure")
    split_dip: float = option_default("split_dip")
    max_z_elongation: float = option_default("max_z_elongation")

    _what = "linking parameters"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = BACKEND_OPTIONS[f.name].check(getattr(self, f.name))
            # Plain Python floats stored for the ratios, so the values and to_dict() read alike
            # whatever was passed in (an int 0 as 0.0).
            object.__setattr__(self, f.name, float(value) if f.type == "float" else value)


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
                overlap_measure: str = "iou", split_dip: float = 0.7, max_z_elongation: float = 2.5,
                anisotropy: float = 1.0, cellprob=None) -> np.ndarray:
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
    4. Every track is cut where its sections show two nuclei stacked in z (the rules
       ``split_dip`` and ``max_z_elongation``, see the module's docstring).

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
    split_dip, max_z_elongation : float, optional
        When a track is cut into several nuclei (see :class:`LinkingParams`).
    anisotropy : float, optional
        z step over the pixel size (from ``voxel_size``), for ``max_z_elongation``.
    cellprob : (Z, Y, X) float array, optional
        The network's cell-probability logits; a section's mean probability weighs its area in
        the profile, so a dim junction between two nuclei shows as a dip.

    Returns
    -------
    linked : (Z, Y, X) uint32 array
        3D instance labels ``1..N``, numbered in order of first appearance (slice, then the
        object's id on that slice); a track cut into several nuclei gives the later pieces new
        ids after the others. 0 = background exactly where ``labels`` is 0.

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
                           overlap_measure=overlap_measure, split_dip=split_dip,
                           max_z_elongation=max_z_elongation)
    if isinstance(anisotropy, bool) or not isinstance(anisotropy, numbers.Real) or not (
            np.isfinite(anisotropy) and anisotropy > 0):
        raise InvalidParameterError(f"anisotropy must be a positive number, got {anisotropy!r}")
    stack = _check_labels(labels)
    if cellprob is not None:
        cellprob = np.asarray(cellprob)
        if cellprob.shape != stack.shape:
            raise InvalidInputError(f"cellprob has shape {cellprob.shape}, labels {stack.shape}")
    out = np.zeros(stack.shape, np.uint32)
    if stack.size == 0:
        return out
    top = int(stack.max())
    n_tracks = 0
    # Per recent slice: its compact labels, object count, each object's track id, and whether
    # that track still ends there (is "open"); only max_distance_z slices are kept.
    window: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    # Each section of each track: (track, z, area, mean cell probability), for split_tracks.
    sections: list[np.ndarray] = []
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
            if d > 1 and cols.size:
                sections.extend(_occupied_gaps(stack, z, d, p_local, p_sizes, p_track, cols))
        new = np.flatnonzero(unmatched)
        track_of[new] = np.arange(n_tracks + 1, n_tracks + 1 + new.size)
        n_tracks += new.size
        out[z] = track_of[local]
        if n:
            if cellprob is not None:
                prob_sum = np.bincount(local.ravel(), weights=cellprob[z].ravel().astype(np.float64),
                                       minlength=n + 1)[1:]
                weight = 1.0 / (1.0 + np.exp(-np.clip(prob_sum / sizes[1:], -30, 30)))
            else:
                weight = np.ones(n)
            sections.append(np.stack([track_of[1:], np.full(n, z), sizes[1:], weight], axis=1))
        is_open = np.ones(n + 1, bool)
        is_open[0] = False
        window[z] = (local, sizes, track_of, is_open)
        window.pop(z - params.max_distance_z, None)
    if sections and (params.split_dip > 0 or params.max_z_elongation > 0):
        _apply_cuts(out, np.concatenate(sections), n_tracks, params, float(anisotropy))
    return out


def _occupied_gaps(stack: np.ndarray, z: int, d: int, p_local: np.ndarray, p_sizes: np.ndarray,
                   p_track: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
    """Sections of area 0 for the slices a link from ``z - d`` to ``z`` jumps over, where
    another object lies in the track's place (it covers a tenth or more of the track's last
    section there): the junction of two stacked nuclei, whose small section there overlapped
    the track too little to be linked; not a nucleus the 2D model missed (an empty place)."""
    out = []
    for q in range(z - d + 1, z):
        fg = np.bincount(p_local.ravel(), weights=(stack[q].ravel() > 0), minlength=p_sizes.size)
        frac = fg[cols + 1] / np.maximum(p_sizes[cols + 1], 1)
        taken = cols[frac >= 0.1]
        if taken.size:
            out.append(np.stack([p_track[taken + 1], np.full(taken.size, q), np.zeros(taken.size),
                                 np.zeros(taken.size)], axis=1))
    return out


def _profile_cuts(zs: np.ndarray, profile: np.ndarray, areas: np.ndarray, params: LinkingParams,
                  anisotropy: float) -> list[int]:
    """Where one track's sections show two or more nuclei: the first z of each later piece.

    ``zs`` are the slices from the track's first to its last, ``profile`` the weighted section
    areas, ``areas`` the plain ones. A bridged gap where another object took the track's place
    (often the junction of two stacked nuclei, whose small section there overlapped too little
    to be linked) is 0 in both; a gap where the slice was empty (a section the 2D model missed)
    takes the smaller of its neighbours' values, so bridging it never cuts the track. A piece is
    cut at its deepest dip whose depth passes ``split_dip``, or, if the piece is too long for its
    width, at its deepest dip whatever its depth (at its middle when it has none); both pieces
    are then examined again.
    """
    cuts: list[int] = []
    pieces = [(0, len(zs))]
    while pieces:
        a, b = pieces.pop()
        if b - a < 3:
            continue
        p = profile[a:b]
        best, best_ratio = -1, np.inf
        for i in range(1, b - a - 1):
            if p[i] > p[i - 1] or p[i] > p[i + 1]:
                continue
            left, right = p[:i].max(), p[i + 1:].max()
            if min(left, right) < _MIN_PEAK_RATIO * max(left, right):
                continue  # a small cap beside a large nucleus: no second nucleus to cut off
            ratio = p[i] / max(min(left, right), 1e-9)
            if ratio < best_ratio:
                best, best_ratio = i, ratio
        if best >= 0:
            # A flat bottom (equal sections, or a bridged gap that took its neighbours' value):
            # cut in its middle.
            last = best
            while last + 1 < b - a - 1 and p[last + 1] == p[best]:
                last += 1
            best = (best + last) // 2
        cut = -1
        if best >= 0 and params.split_dip > 0 and best_ratio <= params.split_dip:
            cut = best
        elif params.max_z_elongation > 0:
            extent = (zs[b - 1] - zs[a] + 1) * anisotropy
            width = 2.0 * np.sqrt(areas[a:b].max() / np.pi)
            if extent > params.max_z_elongation * width:
                cut = best if (best >= 0 and best_ratio < 1.0) else (b - a) // 2
        if cut < 0:
            continue
        # The dip's own section goes with the side that tapers towards it more gently (its
        # neighbour there is the smaller one): a cap continues the nucleus it belongs to.
        first_of_upper = a + cut + (1 if p[cut - 1] <= p[cut + 1] else 0)
        if first_of_upper <= a or first_of_upper >= b:
            first_of_upper = a + cut
        cuts.append(int(zs[first_of_upper]))
        pieces.extend([(a, first_of_upper), (first_of_upper, b)])
    return sorted(cuts)


def _apply_cuts(out: np.ndarray, sections: np.ndarray, n_tracks: int, params: LinkingParams,
                anisotropy: float) -> None:
    """Give the later pieces of every cut track new ids, in place."""
    order = np.lexsort((sections[:, 1], sections[:, 0]))
    sections = sections[order]
    tracks = sections[:, 0].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, tracks[1:] != tracks[:-1]])
    ends = np.r_[starts[1:], len(tracks)]
    # plane -> {old id: new id}, filled for the planes of the later pieces only
    remap: dict[int, dict[int, int]] = {}
    next_id = n_tracks
    for a, b in zip(starts, ends, strict=True):
        if b - a < 3:
            continue
        present = sections[a:b, 1].astype(np.int64)
        if sections[a:b, 2].max() < _MIN_SPLIT_AREA:
            continue
        zs = np.arange(present[0], present[-1] + 1)
        areas = np.full(zs.size, np.nan)
        profile = np.full(zs.size, np.nan)
        areas[present - zs[0]] = sections[a:b, 2]
        profile[present - zs[0]] = sections[a:b, 2] * sections[a:b, 3]
        for values in (areas, profile):
            missing = np.flatnonzero(np.isnan(values))
            if missing.size:  # empty gaps: the smaller neighbour, so they never make a dip
                known = np.flatnonzero(~np.isnan(values))
                before = values[known[np.searchsorted(known, missing) - 1]]
                after = values[known[np.searchsorted(known, missing)]]
                values[missing] = np.minimum(before, after)
        cuts = _profile_cuts(zs, profile, areas, params, anisotropy)
        if not cuts:
            continue
        zs = present
        track = int(tracks[a])
        bounds = cuts + [int(zs[-1]) + 1]
        for lo, hi in pairwise(bounds):
            next_id += 1
            for z in zs[(zs >= lo) & (zs < hi)]:
                remap.setdefault(int(z), {})[track] = next_id
    for z, mapping in remap.items():
        old = np.fromiter(mapping.keys(), np.int64)
        new = np.fromiter(mapping.values(), np.int64)
        plane = out[z]
        order = np.argsort(old)
        old, new = old[order], new[order]
        pos = np.searchsorted(old, plane)
        pos = np.clip(pos, 0, len(old) - 1)
        hit = old[pos] == plane
        plane[hit] = new[pos[hit]].astype(np.uint32)
