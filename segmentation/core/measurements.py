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

Counts, sums and centroids are accumulated plane by plane with :func:`numpy.bincount`, so
memory stays at a few planes whatever the volume; bounding boxes come from one pass of
:func:`scipy.ndimage.find_objects`.

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
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .errors import InvalidInputError

__all__ = ["NUCLEUS_FIELDS", "nucleus_table"]

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
    oz, oy, ox = (int(v) for v in offset)
    if labels.size == 0 or not labels.any():
        return []
    ids = None  # None: labels are their own index (ids = positions in find_objects)
    if int(labels.max()) > _DIRECT_ID_LIMIT:
        ids, inverse = np.unique(labels, return_inverse=True)
        labels = inverse.reshape(labels.shape).astype(np.uint32)  # 0 stays 0: it sorts first
        if ids[0] != 0:
            labels += 1
            ids = np.concatenate([[0], ids])
    boxes = ndi.find_objects(labels)
    n = len(boxes) + 1
    counts = np.zeros(n, np.int64)
    sums = np.zeros(n, np.float64)
    sum_z = np.zeros(n, np.float64)
    sum_y = np.zeros(n, np.float64)
    sum_x = np.zeros(n, np.float64)
    _, height, width = labels.shape
    yy = np.repeat(np.arange(height, dtype=np.float64), width)
    xx = np.tile(np.arange(width, dtype=np.float64), height)
    for z in range(labels.shape[0]):
        plane = labels[z].ravel().astype(np.intp)
        if not plane.any():
            continue
        c = np.bincount(plane, minlength=n)
        counts += c
        sum_z += c * z
        sums += np.bincount(plane, weights=image[z].ravel().astype(np.float64), minlength=n)
        sum_y += np.bincount(plane, weights=yy, minlength=n)
        sum_x += np.bincount(plane, weights=xx, minlength=n)
    voxel_um3 = voxel_size[0] * voxel_size[1] * voxel_size[2]
    rows = []
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        label_id = int(ids[index]) if ids is not None else index
        count = int(counts[index])
        score = None if uncertainty is None else uncertainty.get(label_id)
        rows.append({
            "label_id": label_id,
            "z_min": box[0].start + oz,
            "z_max": box[0].stop - 1 + oz,
            "y_min": box[1].start + oy,
            "y_max": box[1].stop - 1 + oy,
            "x_min": box[2].start + ox,
            "x_max": box[2].stop - 1 + ox,
            "centroid_z": float(sum_z[index] / count) + oz,
            "centroid_y": float(sum_y[index] / count) + oy,
            "centroid_x": float(sum_x[index] / count) + ox,
            "volume_voxels": count,
            "volume_um3": count * voxel_um3,
            "mean_intensity": float(sums[index] / count),
            "integrated_intensity": float(sums[index]),
            "solidity": _solidity(labels[box] == index),
            "uncertainty": None if score is None else float(score),
        })
    return rows
