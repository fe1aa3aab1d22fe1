"""Per-nucleus measurements: the table a lab exports and the review pages sort.

One row per label id present in ``labels``:

==========================  ===============================================================
``label_id``                the id in ``labels``
``z_min``, ``z_max``        first and last plane the nucleus occupies (inclusive)
``y_min`` ... ``x_max``     its bounding box in y and x (inclusive), so an edit reads only it
``centroid_z/y/x``          mean voxel index along each axis, in voxels of ``labels`` (not
                            micrometres), so a viewer can jump to it
``volume_voxels``           number of voxels
``volume_um3``              ``volume_voxels * z * y * x`` of ``voxel_size``, in cubic micrometres
``mean_intensity``          mean of ``image`` over the nucleus
``integrated_intensity``    sum of ``image`` over the nucleus
``solidity``                voxels over voxels of the convex hull, see below
``uncertainty``             ``uncertainty[label_id]`` if given, else ``None``
==========================  ===============================================================

One rule measures every table, whole arrays and volumes too large to hold alike: counts,
intensity sums, centroids and bounding boxes are accumulated plane by plane with
:func:`numpy.bincount` (:func:`measure_planes`, into a :class:`NucleusSums` whose rows are made
as they are iterated), so memory stays at a few planes and a few numbers per nucleus whatever
the volume. What a plane cannot tell, solidity and the uncertainty score, which need a
nucleus' whole mask, is given to it by id: :func:`nucleus_table` measures solidity on each
nucleus' :func:`scipy.ndimage.find_objects` box of the array (:func:`solidities`); a blockwise
segmentation takes it from the block that saw the nucleus whole.

Solidity is scikit-image's (:func:`skimage.measure.regionprops`, measured on each nucleus'
bounding-box crop): the object's voxel count over the voxel count of the convex hull of its
voxels, each voxel extended by +-0.5 along each axis. The 3D hull needs the voxel centres to
span three dimensions, so:

* a nucleus in one plane (every nucleus of a 2D image, Z = 1), or whose centres all lie on one
  oblique plane or line, is measured slice by slice: ``sum of voxels / sum of each plane's 2D
  convex-hull area`` (a voxel-weighted mean of the per-plane 2D solidities);
* a nucleus of one voxel has solidity 1.0.

This is the usual regionprops figure, comparable with other tools; it is biased low for small
digital disks and balls (a digital disk of radius 3 scores about 0.8). The uncertainty score of
:mod:`.uncertainty` uses an unbiased *digital* solidity instead; the two are not the same number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import ndimage as ndi

from .errors import InvalidInputError

__all__ = ["NUCLEUS_FIELDS", "NucleusSums", "measure_planes", "nucleus_table", "solidities"]

#: The keys of every row of :func:`nucleus_table`, in order.
NUCLEUS_FIELDS = (
    "label_id", "z_min", "z_max", "y_min", "y_max", "x_min", "x_max", "centroid_z", "centroid_y", "centroid_x",
    "volume_voxels", "volume_um3", "mean_intensity", "integrated_intensity", "solidity", "uncertainty",
)

# Above this largest id, labels are renumbered 1..n first (find_objects and bincount allocate
# one entry per possible id).
_DIRECT_ID_LIMIT = 2 ** 24


def _check(labels: Any, image: Any, voxel_size: Any) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    labels, image = np.asarray(labels), np.asarray(image)
    if labels.ndim == 2:
        labels = labels[np.newaxis]
    if image.ndim == 2:
        image = image[np.newaxis]
    if labels.ndim != 3:
        raise InvalidInputError(f"labels must be (Z, Y, X) or (Y, X), got shape {labels.shape}")
    if image.shape != labels.shape:
        raise InvalidInputError(f"image has shape {image.shape}, labels {labels.shape}: they must match")
    if labels.dtype.kind not in "ui":
        raise InvalidInputError(f"labels must be integers (0 = background), got dtype {labels.dtype}")
    if labels.size and labels.dtype.kind == "i" and labels.min() < 0:
        raise InvalidInputError("labels contain negative ids")
    if image.dtype.kind not in "uifb":
        raise InvalidInputError(f"image must be real numbers, got dtype {image.dtype}")
    try:
        size = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) == 2:
        size = (1.0, *size)
    if len(size) != 3 or not all(math.isfinite(v) and v > 0 for v in size):
        raise InvalidInputError(f"voxel_size must be (z, y, x) positive numbers, got {voxel_size!r}")
    return labels, image, size


def _solidity(mask: np.ndarray) -> float:
    """Solidity of one nucleus given as a (Z, Y, X) boolean crop (see the module docstring)."""
    from skimage.measure import regionprops  # scikit-image: heavier import, only for this

    n = int(np.count_nonzero(mask))
    if n <= 1:
        return 1.0
    coords = np.argwhere(mask).astype(np.float64)
    if np.linalg.matrix_rank(coords - coords.mean(axis=0)) == 3:
        return float(regionprops(mask.astype(np.uint8))[0].solidity)
    # Flat or degenerate in 3D: the 2D hull of each plane. A plane of one voxel, or a straight
    # run of voxels, is fine here: the +-0.5 offsets give every 2D hull an area.
    hull = 0
    for plane in mask:
        if plane.any():
            hull += int(regionprops(plane.astype(np.uint8))[0].area_convex)
    return n / hull


def solidities(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """Solidity of every nucleus of a label array, by id.

    Parameters
    ----------
    labels : (Z, Y, X) integer array, 0 = background. Not modified.
    n : the length of the result (ids ``0 .. n - 1``); default ``labels.max() + 1``.

    Returns
    -------
    (n,) float array
        ``_solidity`` of each id's mask on its :func:`scipy.ndimage.find_objects` box (see the
        module docstring); 1.0 for ids absent and for the background.
    """
    n = int(labels.max()) + 1 if n is None else int(n)
    out = np.ones(n)
    for label_id, box in enumerate(ndi.find_objects(labels, max_label=n - 1), start=1):
        if box is not None:
            out[label_id] = _solidity(labels[box] == label_id)
    return out


@dataclass
class NucleusSums:
    """Per-nucleus sums of a label volume measured a plane at a time (:func:`measure_planes`):
    a few numbers per nucleus in arrays indexed by id, each row made only when it is iterated,
    so a volume's table reaches its store in batches instead of as a list of dicts.

    ``len()`` is the number of nuclei (ids with voxels); iterating yields their rows by
    increasing id, with the fields of :data:`NUCLEUS_FIELDS`. ``ids`` (index -> label id) names
    the nuclei of labels that were measured renumbered; ``offset`` (z, y, x) is added to their
    planes, boxes and centroids.
    """

    count: np.ndarray
    total: np.ndarray
    sum_zyx: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    solidity: np.ndarray
    uncertainty: np.ndarray
    voxel_um3: float
    ids: np.ndarray | None = None
    offset: tuple[int, int, int] = (0, 0, 0)

    def __len__(self) -> int:
        return int(np.count_nonzero(self.count[1:]))

    def __iter__(self):
        count, lo, hi, sums, total = self.count, self.lo, self.hi, self.sum_zyx, self.total
        oz, oy, ox = (int(v) for v in self.offset)
        for k in np.flatnonzero(count[1:]) + 1:  # ids left without voxels (covered by others) are no nuclei
            voxels = int(count[k])
            score = float(self.uncertainty[k])
            yield {
                "label_id": int(self.ids[k]) if self.ids is not None else int(k),
                "z_min": int(lo[0, k]) + oz, "z_max": int(hi[0, k]) + oz,
                "y_min": int(lo[1, k]) + oy, "y_max": int(hi[1, k]) + oy,
                "x_min": int(lo[2, k]) + ox, "x_max": int(hi[2, k]) + ox,
                "centroid_z": float(sums[0, k] / voxels) + oz,
                "centroid_y": float(sums[1, k] / voxels) + oy,
                "centroid_x": float(sums[2, k] / voxels) + ox,
                "volume_voxels": voxels,
                "volume_um3": voxels * self.voxel_um3,
                "mean_intensity": float(total[k] / voxels),
                "integrated_intensity": float(total[k]),
                "solidity": float(self.solidity[k]),
                "uncertainty": None if math.isnan(score) else score,
            }


def measure_planes(plane_of: Callable[[int], np.ndarray], shape: tuple[int, int, int], image: Any,
                   voxel_size: tuple[float, ...], *, solidity: np.ndarray, uncertainty: np.ndarray,
                   ids: np.ndarray | None = None, offset: tuple[int, int, int] = (0, 0, 0),
                   measure_solidity: np.ndarray | None = None) -> NucleusSums:
    """Measure the nuclei of a label volume given a plane at a time.

    Parameters
    ----------
    plane_of : ``plane_of(z)`` gives plane ``z`` of the labels, (Y, X) integer ids, 0 =
        background; called once per plane, in order.
    shape : (Z, Y, X) of the volume.
    image : (Z, Y, X) array-like of the intensities (read a plane at a time); (Y, X) when Z = 1.
    voxel_size : (z, y, x) or (y, x) in micrometres.
    solidity, uncertainty : (n + 1,) float arrays by id: what a plane cannot tell (a nucleus'
        whole mask is needed), given; ``nan`` uncertainty is none. ``n`` is the largest id.
    ids : (n + 1,) the label id of each id the planes hold, when they hold renumbered labels.
    offset : (z, y, x) of the planes' first voxel in the whole volume.
    measure_solidity : ids whose solidity is measured here, on the voxels the planes give them,
        instead of taken from ``solidity``: nuclei whose mask changed after it was measured
        (a model nucleus trimmed by a person's). Only their voxels are kept, then one
        nucleus' box at a time. ``solidity`` itself is not modified.

    Returns
    -------
    NucleusSums
        Its rows are :func:`nucleus_table`'s.
    """
    shape = tuple(int(v) for v in shape)
    size = tuple(float(v) for v in voxel_size)
    if len(size) == 2:
        size = (1.0, *size)
    image_shape = tuple(getattr(image, "shape", ()))
    if shape[0] == 1 and image_shape == shape[1:]:
        image = np.asarray(image)[np.newaxis]
    elif image_shape != shape:
        raise InvalidInputError(f"image has shape {image_shape}, the labels {shape}: they must match")
    n = int(np.asarray(solidity).size)
    if np.asarray(uncertainty).size != n:
        raise InvalidInputError(f"solidity has {n} values and uncertainty {np.asarray(uncertainty).size}")
    count = np.zeros(n, np.int64)
    total = np.zeros(n)
    sum_zyx = np.zeros((3, n))
    lo = np.full((3, n), np.iinfo(np.int64).max, np.int64)
    hi = np.full((3, n), -1, np.int64)
    wanted = None
    if measure_solidity is not None:
        wanted = np.zeros(n, bool)
        measured = np.asarray(measure_solidity, np.int64).ravel()
        if measured.size and not (0 < measured.min() and measured.max() < n):
            raise InvalidInputError(f"solidity is measured for ids 1..{n - 1}, not {measured.min()}..{measured.max()}")
        wanted[measured] = True
    voxels: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (z, ids, ys, xs) of the wanted ids
    width = shape[2]
    for z in range(shape[0]):
        flat = np.asarray(plane_of(z)).ravel()
        inside = np.flatnonzero(flat)
        if inside.size == 0:
            continue
        ids_here = flat[inside].astype(np.intp)
        if int(ids_here.max()) >= n:
            raise InvalidInputError(f"plane {z} holds id {int(ids_here.max())}, above the {n - 1} measured")
        ys, xs = inside // width, inside % width
        c = np.bincount(ids_here, minlength=n)
        count += c
        total += np.bincount(ids_here, weights=np.asarray(image[z]).ravel()[inside].astype(np.float64), minlength=n)
        sum_zyx[0] += c * z
        sum_zyx[1] += np.bincount(ids_here, weights=ys, minlength=n)
        sum_zyx[2] += np.bincount(ids_here, weights=xs, minlength=n)
        here = c > 0
        lo[0, here] = np.minimum(lo[0, here], z)
        hi[0, here] = z
        for axis, coords in ((1, ys), (2, xs)):
            np.minimum.at(lo[axis], ids_here, coords)
            np.maximum.at(hi[axis], ids_here, coords)
        if wanted is not None and wanted[ids_here].any():
            pick = wanted[ids_here]
            voxels.append((z, ids_here[pick], ys[pick], xs[pick]))
    solidity = np.asarray(solidity, np.float64)
    if wanted is not None:
        solidity = solidity.copy()
        for label_id, mask in _masks(voxels):
            solidity[label_id] = _solidity(mask)
    return NucleusSums(count=count, total=total, sum_zyx=sum_zyx, lo=lo, hi=hi,
                       solidity=solidity, uncertainty=np.asarray(uncertainty, np.float64),
                       voxel_um3=size[0] * size[1] * size[2], ids=ids, offset=tuple(int(v) for v in offset))


def _masks(voxels: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]):
    """``(id, (Z, Y, X) boolean mask on its box)`` of each id among ``voxels`` ((z, ids, ys,
    xs) per plane), one at a time."""
    if not voxels:
        return
    ids = np.concatenate([v[1] for v in voxels])
    zyx = np.stack([np.concatenate([np.full(v[1].size, v[0]) for v in voxels]),
                    np.concatenate([v[2] for v in voxels]), np.concatenate([v[3] for v in voxels])])
    order = np.argsort(ids, kind="stable")
    ids, zyx = ids[order], zyx[:, order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], ids.size], strict=True):
        coords = zyx[:, start:stop]
        low = coords.min(axis=1)
        mask = np.zeros(tuple(coords.max(axis=1) - low + 1), bool)
        mask[tuple(coords - low[:, np.newaxis])] = True
        yield int(ids[start]), mask


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels whose largest id is above ``_DIRECT_ID_LIMIT`` renumbered 1..n (0 stays 0), with
    ``ids`` (index -> id); others as they are, with ``None``."""
    if int(labels.max()) <= _DIRECT_ID_LIMIT:
        return labels, None
    ids, inverse = np.unique(labels, return_inverse=True)
    labels = inverse.reshape(labels.shape).astype(np.uint32)  # 0 stays 0: it sorts first
    if ids[0] != 0:
        labels += 1
        ids = np.concatenate([[0], ids])
    return labels, ids


def _scores(uncertainty: dict[int, float] | None, n: int, ids: np.ndarray | None) -> np.ndarray:
    """``uncertainty`` (by label id) by index of the measured labels, ``(n,)``; ``nan``: no
    score (an id ``uncertainty`` lacks, or gives ``None``)."""
    scores = np.full(n, np.nan)
    top = n - 1 if ids is None else int(ids[-1])
    for key, score in (uncertainty or {}).items():
        try:
            label_id = int(key)
        except (TypeError, ValueError):
            continue
        if score is None or label_id != key or not 0 < label_id <= top:
            continue
        index = label_id if ids is None else int(np.searchsorted(ids, label_id))
        if ids is None or ids[index] == label_id:
            scores[index] = float(score)
    return scores


def nucleus_table(labels: np.ndarray, image: np.ndarray, voxel_size: tuple[float, ...],
                  uncertainty: dict[int, float] | None = None,
                  offset: tuple[int, int, int] = (0, 0, 0)) -> list[dict[str, Any]]:
    """Measure every nucleus of a label volume.

    Parameters
    ----------
    labels : (Z, Y, X) integer array, 0 = background; (Y, X) is taken as Z = 1. Not modified.
    image : (Z, Y, X) real array of the same shape: the intensities measured. Not modified.
    voxel_size : (z, y, x) in micrometres; (y, x) for a 2D image (z is then 1).
    uncertainty : per-nucleus scores by label id (e.g. ``nucleus_uncertainty(...)``); ids it
        lacks, or all ids when it is ``None``, get ``None``.
    offset : (z, y, x) of ``labels[0, 0, 0]`` in the whole volume, when ``labels`` is a crop:
        planes, bounding boxes and centroids are then given in the volume's coordinates.

    Returns
    -------
    list of dict
        One dict per label id present, by increasing id, with the keys of
        :data:`NUCLEUS_FIELDS` (see the module docstring). Numbers are plain Python ints and
        floats.

    Notes
    -----
    The steps: the inputs checked (``_check``); ids above ``_DIRECT_ID_LIMIT`` renumbered
    (``_compact``); solidity measured on each nucleus' box (:func:`solidities`); the sums
    accumulated a plane at a time (:func:`measure_planes`), whose :class:`NucleusSums` derives
    the columns.

    Examples
    --------
    >>> labels = np.zeros((1, 4, 5), np.uint32)
    >>> labels[0, 1:3, 1:4] = 7
    >>> image = np.full((1, 4, 5), 10.0)
    >>> [row] = nucleus_table(labels, image, (1.0, 0.5, 0.5))
    >>> row["label_id"], row["volume_voxels"], row["volume_um3"], row["centroid_y"], row["solidity"]
    (7, 6, 1.5, 1.5, 1.0)
    """
    labels, image, voxel_size = _check(labels, image, voxel_size)
    if labels.size == 0 or not labels.any():
        return []
    labels, ids = _compact(labels)
    solidity = solidities(labels)
    sums = measure_planes(labels.__getitem__, labels.shape, image, voxel_size, solidity=solidity,
                          uncertainty=_scores(uncertainty, solidity.size, ids), ids=ids, offset=offset)
    return list(sums)
