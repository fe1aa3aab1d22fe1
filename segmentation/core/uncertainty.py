"""How unsure the network is about each nucleus it found, to pick the ones a person should check.

Three signals are measured per nucleus, each mapped to ``[0, 1]`` with 1 = most uncertain, and
combined into one score by a weighted mean (weights in :class:`UncertaintyParams`):

``flow``
    Disagreement between the flows the network predicted and the flows the nucleus' own mask
    implies. Cellpose draws a mask by following the predicted flows; it then recomputes, with
    :func:`cellpose.dynamics.masks_to_flows`, the flows an object of exactly that shape would
    have, and discards masks whose mean squared difference exceeds ``flow_threshold`` [1]_
    (:func:`cellpose.metrics.flow_error`). A nucleus that survived that check but came close
    has flows that do not fit its outline: a wrong split or merge, a boundary in the wrong
    place, or weak flows (a low predicted magnitude counts as error too, since the mask flows
    are unit vectors). The raw value is the *relative* flow error

    .. math:: e = \\frac{\\sum_{v} \\lVert m_v - d_v / s \\rVert^2}{\\sum_v \\lVert m_v \\rVert^2}

    over the nucleus' voxels ``v``, with ``m`` the mask flows, ``d`` the predicted ``dP`` and
    ``s = flow_scale`` (5: the network is trained on five times the unit flows). In 2D
    ``||m|| = 1`` so ``e`` is exactly cellpose's flow error; dividing by ``sum ||m||^2`` keeps
    the scale in 3D, where cellpose's mask flows are sums of three orthogonal 2D flows (norm 2
    to 2.4). The signal is ``e / (e + flow_error_scale)``.
``cellprob``
    Low cell probability. ``cellprob`` is the network's logit; the raw value is the mean of
    ``p = sigmoid(cellprob)`` over the nucleus, and the signal ``clip(2 (1 - mean p), 0, 1)``:
    0 when the network is sure every voxel is nucleus, 1 when on average it is not (``p <= 0.5``,
    Cellpose's default ``cellprob_threshold`` of 0).
``solidity``
    Irregular shape: volume over convex-hull volume. Nuclei are nearly convex; notches and
    waists are where two nuclei were merged or one was cut badly. Solidity here is *digital*:
    voxel count over the number of voxels whose centres lie in the convex hull of the
    nucleus' voxel centres. Any digitised convex shape (disk, ellipse, ball) then has solidity
    exactly 1 at every size, whereas :func:`skimage.measure.regionprops`, which first moves
    each centre by +-0.5 along each axis, gives a digital disk of radius 3 only 0.78 and of
    radius 5 0.91 -- a bias that would rank small round nuclei as irregular. Flat nuclei are
    handled by dropping axes of extent 1 (a one-slice 3D nucleus is measured in 2D, one voxel
    scores 1); a hull still degenerate (centres on an oblique line or plane) falls back to the
    +-0.5 points, which always span full dimension. It is measured in voxels: an affine stretch
    keeps volume ratios, so anisotropic voxels change it only through digitisation and no
    ``voxel_size`` is needed. The signal is ``clip((1 - solidity) / (1 - solidity_floor), 0, 1)``.

The score is ``sum_k w_k u_k / sum_k w_k`` over the signals whose input was given: without
flows the flow signal is left out (NaN in the table) and the other weights renormalised;
without a cell-probability map likewise.

References
----------
.. [1] C. Stringer, T. Wang, M. Michaelos, M. Pachitariu, "Cellpose: a generalist algorithm for
   cellular segmentation", Nature Methods 18, 100-106 (2021).

Examples
--------
>>> labels = np.zeros((9, 9), np.int32)
>>> labels[1:4, 1:4] = 1                             # a square: solidity 1
>>> labels[5:8, 4:8] = 2; labels[6, 5:7] = 0         # a square with a hole in it
>>> table = UncertaintyEstimator().estimate(labels)
>>> table.ids.tolist(), np.round(table.solidity, 2).tolist()
([1, 2], [1.0, 0.83])
>>> [nucleus for nucleus, _ in table.ranked()]
[2, 1]
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError
from scipy.special import expit

from ._validation import Params, check_number
from .errors import InvalidInputError, InvalidParameterError

__all__ = ["SIGNALS", "NucleusUncertainty", "UncertaintyEstimator", "UncertaintyParams", "nucleus_uncertainty"]

SIGNALS = ("flow", "cellprob", "solidity")


@dataclass(frozen=True)
class UncertaintyParams(Params):
    """How the three per-nucleus signals are normalised and weighted.

    Parameters
    ----------
    flow_weight, cellprob_weight, solidity_weight : float >= 0
        Weights of the signals in the combined score; only their ratios matter. At least one
        must be positive.
    flow_error_scale : float > 0
        Relative flow error at which the flow signal is 0.5 (``e / (e + scale)``).
    flow_scale : float > 0
        Factor between the network's ``dP`` and unit flows (5 for Cellpose networks).
    solidity_floor : float in [0, 1)
        Solidity at or below which the solidity signal is 1.
    """

    flow_weight: float = 2.0
    cellprob_weight: float = 1.0
    solidity_weight: float = 2.0
    flow_error_scale: float = 0.2
    flow_scale: float = 5.0
    solidity_floor: float = 0.9

    _what = "uncertainty parameters"

    def __post_init__(self) -> None:
        for name in ("flow_weight", "cellprob_weight", "solidity_weight"):
            object.__setattr__(self, name, check_number(name, getattr(self, name), low=0))
        if self.flow_weight + self.cellprob_weight + self.solidity_weight <= 0:
            raise InvalidParameterError("at least one of flow_weight, cellprob_weight, solidity_weight must be > 0")
        for name in ("flow_error_scale", "flow_scale"):
            object.__setattr__(self, name, check_number(name, getattr(self, name), low=0, low_open=True))
        object.__setattr__(self, "solidity_floor",
                           check_number("solidity_floor", self.solidity_floor, low=0, high=1, high_open=True))

    @property
    def weights(self) -> dict[str, float]:
        """``{signal: weight}`` in the order of :data:`SIGNALS`."""
        return {"flow": self.flow_weight, "cellprob": self.cellprob_weight, "solidity": self.solidity_weight}


@dataclass(frozen=True, eq=False)
class NucleusUncertainty:
    """Per-nucleus uncertainty of one label image: one row per nucleus, ids ascending.

    Attributes
    ----------
    ids : (n,) int64 array
        Nucleus ids present in ``labels``.
    score : (n,) float64 array in [0, 1]
        Combined uncertainty, higher = more uncertain.
    flow_signal, cellprob_signal, solidity_signal : (n,) float64 arrays in [0, 1]
        The normalised signals; NaN where the input was not given.
    flow_error : (n,) float64 array >= 0
        Relative flow error ``e`` (NaN without flows).
    mean_probability : (n,) float64 array in [0, 1]
        Mean ``sigmoid(cellprob)`` over the nucleus (NaN without cellprob).
    solidity : (n,) float64 array in (0, 1]
        Voxel count over digital convex-hull voxel count.
    """

    ids: np.ndarray
    score: np.ndarray
    flow_signal: np.ndarray
    cellprob_signal: np.ndarray
    solidity_signal: np.ndarray
    flow_error: np.ndarray
    mean_probability: np.ndarray
    solidity: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.size)

    def as_dict(self) -> dict[int, float]:
        """``{nucleus id: score}``."""
        return {int(i): float(s) for i, s in zip(self.ids, self.score, strict=True)}

    def ranked(self, top_n: int | None = None) -> list[tuple[int, float]]:
        """``(id, score)`` pairs, most uncertain first (ties: smaller id first); at most ``top_n``."""
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, (int, np.integer)) or top_n < 0):
            raise InvalidParameterError(f"top_n must be a whole number >= 0 or None, got {top_n!r}")
        order = np.lexsort((self.ids, -self.score))
        if top_n is not None:
            order = order[:int(top_n)]
        return [(int(self.ids[k]), float(self.score[k])) for k in order]

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-serialisable dict per nucleus (NaN becomes ``None``)."""
        names = [f.name for f in dataclasses.fields(self)]
        columns = {n: getattr(self, n) for n in names}
        rows = []
        for k in range(len(self)):
            row: dict[str, Any] = {"id": int(self.ids[k])}
            for n in names[1:]:
                v = float(columns[n][k])
                row[n] = None if math.isnan(v) else v
            rows.append(row)
        return rows


# ---------------------------------------------------------------------------------------------
# input handling


def _as_labels(labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"labels must be an integer (or boolean) array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise InvalidInputError(f"labels must be (Y, X) or (Z, Y, X), got shape {arr.shape}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise InvalidInputError("labels must be >= 0 (0 = background)")
    return arr


def _split_flows(flows: Any, cellprob: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(dP, cellprob)`` from a ``CellposeModel.eval`` flows list or a bare ``dP`` array."""
    if flows is None:
        return None, None if cellprob is None else np.asarray(cellprob)
    if isinstance(flows, (list, tuple)):
        # CellposeModel.eval: [RGB flow image, dP, cellprob, (final positions)].
        if len(flows) < 2:
            raise InvalidInputError(
                "flows as a list must be Cellpose's [rgb, dP, cellprob, ...]; got a list of "
                f"{len(flows)} item(s)")
        dp = flows[1]
        if cellprob is None and len(flows) >= 3:
            cellprob = flows[2]
    else:
        dp = flows
    dp = np.asarray(dp)
    return dp, None if cellprob is None else np.asarray(cellprob)


def _check_dp(dp: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    ndim = len(shape)
    allowed = (2,) if ndim == 2 else (2, 3)
    if dp.ndim != ndim + 1 or dp.shape[1:] != shape or dp.shape[0] not in allowed:
        want = "(2, Y, X)" if ndim == 2 else "(3, Z, Y, X) or per-slice (2, Z, Y, X)"
        raise InvalidInputError(f"flows dP must be {want} for labels of shape {shape}, got {dp.shape}")
    if not np.issubdtype(dp.dtype, np.number) or np.issubdtype(dp.dtype, np.complexfloating):
        raise InvalidInputError(f"flows dP must be real numbers, got dtype {dp.dtype}")
    if not np.isfinite(dp).all():
        raise InvalidInputError("flows dP contains NaN or infinity")
    return dp


def _check_cellprob(cellprob: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if cellprob.shape != shape:
        raise InvalidInputError(f"cellprob must have the labels' shape {shape}, got {cellprob.shape}")
    if not np.issubdtype(cellprob.dtype, np.number) or np.issubdtype(cellprob.dtype, np.complexfloating):
        raise InvalidInputError(f"cellprob must be real numbers, got dtype {cellprob.dtype}")
    if np.isnan(cellprob).any():
        raise InvalidInputError("cellprob contains NaN")
    return cellprob


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, compact)``: the present non-zero ids ascending and labels renumbered 1..n (int32)."""
    top = int(labels.max()) if labels.size else 0
    if top == 0:
        return np.zeros(0, np.int64), np.zeros(labels.shape, np.int32)
    if top <= 4 * labels.size + 1024:  # a lookup table beats sorting
        ids = np.flatnonzero(np.bincount(labels.ravel()))
        ids = ids[ids > 0]
        lut = np.zeros(top + 1, np.int32)
        lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
        return ids.astype(np.int64), lut[labels]
    ids, inverse = np.unique(labels, return_inverse=True)
    compact = inverse.reshape(labels.shape).astype(np.int32)
    if ids[0] != 0:
        compact += 1
    else:
        ids = ids[1:]
    return ids.astype(np.int64), compact


# ---------------------------------------------------------------------------------------------
# the three raw measures (all take compact labels 1..n)


def _mask_flows(compact: np.ndarray, n_components: int) -> np.ndarray:
    """Cellpose's flows of the masks themselves: (2|3, ...) float array like ``dP / 5``."""
    # Lazy: cellpose pulls in torch, cv2 and numba (seconds); importing the core must stay cheap.
    from cellpose.dynamics import masks_to_flows

    if compact.ndim == 2 or n_components == 3:
        return masks_to_flows(compact)
    # Per-slice 2D flows (the slice and hybrid backends run the 2D network on each z plane).
    out = np.zeros((2, *compact.shape), np.float32)
    for z in range(compact.shape[0]):
        if compact[z].any():  # masks_to_flows logs a warning on an empty plane
            out[:, z] = masks_to_flows(compact[z])
    return out


def _flow_error(compact: np.ndarray, n: int, dp: np.ndarray, flow_scale: float) -> np.ndarray:
    """(n,) relative flow error ``sum ||m - dP/s||^2 / sum ||m||^2`` per nucleus."""
    mu = _mask_flows(compact, dp.shape[0])
    flat = compact.ravel()
    inside = np.flatnonzero(flat)          # foreground only: a volume's background can be most of it
    index = flat[inside]
    err = np.zeros(inside.size)
    norm = np.zeros(inside.size)
    for c in range(dp.shape[0]):
        m = mu[c].ravel()[inside].astype(np.float64)
        d = dp[c].ravel()[inside].astype(np.float64) / flow_scale
        err += (m - d) ** 2
        norm += m ** 2
    num = np.bincount(index, weights=err, minlength=n + 1)[1:]
    den = np.bincount(index, weights=norm, minlength=n + 1)[1:]
    count = np.bincount(index, minlength=n + 1)[1:]
    # A 1-voxel nucleus has zero mask flow (nothing to diffuse): fall back to the absolute error.
    den = np.where(den > 0, den, count)
    return num / den


def _mean_probability(compact: np.ndarray, n: int, cellprob: np.ndarray) -> np.ndarray:
    """(n,) mean sigmoid(cellprob) per nucleus."""
    flat = compact.ravel()
    inside = flat > 0
    prob = expit(cellprob.ravel()[inside].astype(np.float64))
    total = np.bincount(flat[inside], weights=prob, minlength=n + 1)[1:]
    count = np.bincount(flat[inside], minlength=n + 1)[1:]
    return total / count


def _diamond(d: int) -> np.ndarray:
    """(2 d, d) offsets +-0.5 along one axis at a time (skimage's ``_offsets_diamond``)."""
    out = np.zeros((2 * d, d))
    for k, (axis, step) in enumerate(itertools.product(range(d), (-0.5, 0.5))):
        out[k, axis] = step
    return out


_DIAMONDS = {d: _diamond(d) for d in (2, 3)}


def _hull_points(mask: np.ndarray) -> np.ndarray:
    """(P, ndim) centres of the end voxels of every line along the last axis.

    No other voxel centre can be a vertex of the hull (it lies between the ends of its line).
    """
    lead = np.nonzero(mask.any(axis=-1))
    first = mask.argmax(axis=-1)[lead]
    last = mask.shape[-1] - 1 - mask[..., ::-1].argmax(axis=-1)[lead]
    lead_c = np.stack(lead, axis=1)
    return np.concatenate([np.column_stack([lead_c, first]), np.column_stack([lead_c, last])]).astype(np.float64)


def _lattice_count(shape: tuple[int, ...], equations: np.ndarray) -> int:
    """Number of integer points of the box ``shape`` with ``n . x + c <= 0`` for every facet.

    Counted line by line along the last axis: each facet bounds a line to an interval.
    """
    normals, offset = equations[:, :-1], equations[:, -1]
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape[:-1]], indexing="ij"),
                    axis=-1).reshape(-1, len(shape) - 1)
    s = grid @ normals[:, :-1].T + offset                        # (lines, facets)
    nx = normals[:, -1]
    tol = 1e-9
    pos, neg, flat = nx > tol, nx < -tol, np.abs(nx) <= tol
    hi = np.min(-s[:, pos] / nx[pos], axis=1) if pos.any() else np.full(grid.shape[0], shape[-1] - 1.0)
    lo = np.max(-s[:, neg] / nx[neg], axis=1) if neg.any() else np.zeros(grid.shape[0])
    ok = np.all(s[:, flat] <= tol, axis=1) if flat.any() else np.ones(grid.shape[0], bool)
    hi = np.minimum(np.floor(hi + tol), shape[-1] - 1)
    lo = np.maximum(np.ceil(lo - tol), 0)
    return int(np.sum(np.where(ok, np.clip(hi - lo + 1, 0, None), 0)))


def _solidity_of(mask: np.ndarray) -> float:
    """Voxel count over digital convex-hull voxel count of a boolean bounding-box crop.

    The digital convex hull is the set of voxels whose centres lie in the convex hull of the
    object's voxel centres. Axes of extent 1 are dropped first (a one-slice 3D nucleus is
    measured as 2D, a straight line as 1D); a hull that is still degenerate (centres on an
    oblique line or plane) uses skimage's +-0.5 diamond points, which always span full
    dimension.
    """
    mask = mask.reshape([s for s in mask.shape if s > 1])
    voxels = int(np.count_nonzero(mask))
    if mask.ndim == 0:
        return 1.0
    if mask.ndim == 1:                       # a straight line: its hull is the whole bounding box
        return voxels / mask.shape[0]
    points = _hull_points(mask)
    try:
        hull = ConvexHull(points)
    except QhullError:
        offsets = _DIAMONDS[mask.ndim]
        try:
            hull = ConvexHull((points[:, None, :] + offsets[None]).reshape(-1, mask.ndim))
        except QhullError:  # cannot happen with diamond points; never fail a ranking on it
            return 1.0
    return min(1.0, voxels / max(_lattice_count(mask.shape, hull.equations), 1))


def _solidity(compact: np.ndarray, n: int) -> np.ndarray:
    """(n,) solidity per nucleus, on bounding-box crops."""
    out = np.ones(n)
    for k, box in enumerate(ndi.find_objects(compact, max_label=n)):
        if box is not None:
            out[k] = _solidity_of(compact[box] == k + 1)
    return out


# ---------------------------------------------------------------------------------------------


class UncertaintyEstimator:
    """Score how uncertain the network is about each nucleus (see the module docstring).

    Parameters
    ----------
    params : UncertaintyParams, optional
        Weights and normalisation; the defaults when ``None``.

    Examples
    --------
    >>> labels = np.zeros((6, 6), np.int32); labels[1:5, 1:5] = 3
    >>> UncertaintyEstimator().scores(labels)
    {3: 0.0}
    """

    def __init__(self, params: UncertaintyParams | None = None):
        if params is not None and not isinstance(params, UncertaintyParams):
            raise InvalidParameterError(f"params must be UncertaintyParams, got {type(params).__name__}")
        self.params = params or UncertaintyParams()

    def __repr__(self) -> str:
        return f"UncertaintyEstimator({self.params!r})"

    def estimate(self, labels: Any, flows: Any = None, cellprob: Any = None) -> NucleusUncertainty:
        """Measure every nucleus of ``labels``.

        Parameters
        ----------
        labels : (Y, X) or (Z, Y, X) int array, 0 = background
            The predicted nuclei; ids need not be consecutive. Never modified.
        flows : list or array, optional
            Either the ``flows`` list of ``CellposeModel.eval`` (``flows[1]`` is ``dP``,
            ``flows[2]`` the cell probability), or ``dP`` itself: ``(2, Y, X)`` in 2D,
            ``(3, Z, Y, X)`` from a 3D network, or ``(2, Z, Y, X)`` from a 2D network run slice
            by slice. ``None`` leaves out the flow signal.
        cellprob : (Y, X) or (Z, Y, X) float array, optional
            Cell-probability logits; taken from a ``flows`` list when not given. ``None`` (and
            no list) leaves out the cell-probability signal.

        Returns
        -------
        NucleusUncertainty
            One row per nucleus, ids ascending.

        Raises
        ------
        InvalidInputError
            On a non-integer or negative ``labels``, or ``dP``/``cellprob`` of the wrong shape,
            or with NaN.
        InvalidParameterError
            When every signal with a non-zero weight lacks its input.
        """
        lab = _as_labels(labels)
        dp, prob = _split_flows(flows, cellprob)
        if dp is not None:
            dp = _check_dp(dp, lab.shape)
        if prob is not None:
            prob = _check_cellprob(prob, lab.shape)
        p = self.params
        weights = p.weights
        if dp is None:
            weights["flow"] = 0.0
        if prob is None:
            weights["cellprob"] = 0.0
        total_weight = sum(weights.values())
        if total_weight <= 0:
            raise InvalidParameterError(
                "no signal can be computed: give flows and/or cellprob, or a positive solidity_weight")

        ids, compact = _compact(lab)
        n = ids.size
        nan = np.full(n, np.nan)
        if n == 0:
            empty = np.zeros(0)
            return NucleusUncertainty(ids, empty, empty, empty, empty, empty, empty, empty)

        flow_error = _flow_error(compact, n, dp, p.flow_scale) if dp is not None else nan
        mean_prob = _mean_probability(compact, n, prob) if prob is not None else nan
        solidity = _solidity(compact, n)

        signals = {
            "flow": flow_error / (flow_error + p.flow_error_scale),
            "cellprob": np.clip(2.0 * (1.0 - mean_prob), 0.0, 1.0),
            "solidity": np.clip((1.0 - solidity) / (1.0 - p.solidity_floor), 0.0, 1.0),
        }
        score = np.zeros(n)
        for name, w in weights.items():
            if w > 0:
                score += w * signals[name]
        score = np.clip(score / total_weight, 0.0, 1.0)
        return NucleusUncertainty(ids=ids, score=score, flow_signal=signals["flow"],
                                  cellprob_signal=signals["cellprob"], solidity_signal=signals["solidity"],
                                  flow_error=flow_error, mean_probability=mean_prob, solidity=solidity)

    def scores(self, labels: Any, flows: Any = None, cellprob: Any = None) -> dict[int, float]:
        """``{nucleus id: score in [0, 1]}``; arguments as in :meth:`estimate`."""
        return self.estimate(labels, flows, cellprob).as_dict()

    def rank(self, labels: Any, flows: Any = None, cellprob: Any = None,
             top_n: int | None = None) -> list[tuple[int, float]]:
        """``(id, score)`` pairs, most uncertain first; arguments as in :meth:`estimate`."""
        return self.estimate(labels, flows, cellprob).ranked(top_n)


def nucleus_uncertainty(labels: Any, flows: Any = None, cellprob: Any = None, *,
                        params: UncertaintyParams | None = None) -> dict[int, float]:
    """One uncertainty score in [0, 1] per nucleus, higher = more worth a person's look.

    Parameters
    ----------
    labels : (Y, X) or (Z, Y, X) int array, 0 = background
    flows : Cellpose's ``flows`` list, or ``dP`` ((2, Y, X), (3, Z, Y, X) or (2, Z, Y, X)), optional
    cellprob : logits, the shape of ``labels``, optional (taken from a ``flows`` list if absent)
    params : UncertaintyParams, optional

    Returns
    -------
    dict[int, float]
        ``{nucleus id: score}``, ids ascending. See :class:`UncertaintyEstimator` for the
        per-signal table and the module docstring for the definition.
    """
    return UncertaintyEstimator(params).scores(labels, flows, cellprob)

