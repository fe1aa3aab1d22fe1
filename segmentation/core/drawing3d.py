"""Drawings that reach across planes: shape interpolation between sections, a spherical brush,
and a flood fill of background. Each returns a (Z, Y, X) boolean mask of what the drawing
covers; :mod:`.editing` paints it (on background only) or erases with it.

=======================  ======================================================================
:func:`interpolate_sections`  outlines drawn on two or more planes; the planes between get the
                              shape that morphs from one outline to the next (signed distances
                              blended, the outlines' centres moved along a straight line)
:func:`sphere_mask`           a brush stroke drawn on one plane, swept by a ball of a radius in
                              micrometres: it reaches ``radius / z voxel size`` planes up and down
:func:`background_fill_mask`  the background connected to a seed (4-connected on each plane),
                              within ``radius`` pixels; refused when it is not enclosed there
=======================  ======================================================================

Conventions as in :mod:`.editing`: points are ``(y, x)`` pixels of the array, planes are its
first axis, ``voxel_size`` is (z, y, x) micrometres.

References
----------
G. T. Herman, J. Zheng, C. A. Bucholtz, "Shape-based interpolation", IEEE Computer Graphics and
Applications 12(3), 1992 (interpolating distance maps between slices).
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from .errors import InvalidInputError

__all__ = ["background_fill_mask", "interpolate_sections", "sphere_mask", "sphere_reach"]


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Negative inside, positive outside, about zero on the outline (pixels)."""
    inside = ndi.distance_transform_edt(mask)
    outside = ndi.distance_transform_edt(~mask)
    return np.where(mask, 0.5 - inside, outside - 0.5)


def interpolate_sections(sections: Sequence[tuple[int, np.ndarray]], shape: tuple[int, int, int]) -> np.ndarray:
    """The solid whose sections on some planes are given, the planes between interpolated.

    Parameters
    ----------
    sections : ``[(z, mask), ...]``, each mask a (Y, X) boolean drawing on plane ``z``; two or
        more, on different planes, none empty. Not modified.
    shape : (Z, Y, X) of the answer.

    Returns
    -------
    (Z, Y, X) boolean: the drawn sections on their planes, and on each plane between two drawn
    ones the zero level of their signed distances blended linearly, after moving both to the
    centre that moves linearly between theirs (so a section drawn off to the side leans the
    shape instead of pinching it). Planes outside the drawn range stay empty.

    Examples
    --------
    >>> import numpy as np
    >>> small = np.zeros((9, 9), bool); small[3:6, 3:6] = True
    >>> large = np.zeros((9, 9), bool); large[1:8, 1:8] = True
    >>> solid = interpolate_sections([(0, small), (4, large)], (5, 9, 9))
    >>> [int(p.sum()) for p in solid]
    [9, 21, 25, 37, 49]
    """
    Z, Y, X = (int(s) for s in shape)
    drawn = sorted(((int(z), np.asarray(m, bool)) for z, m in sections), key=lambda s: s[0])
    if len(drawn) < 2:
        raise InvalidInputError("interpolation needs outlines drawn on at least two planes")
    planes = [z for z, _ in drawn]
    if len(set(planes)) != len(planes):
        raise InvalidInputError("two outlines are drawn on the same plane: draw one a plane")
    for z, mask in drawn:
        if mask.shape != (Y, X):
            raise InvalidInputError(f"the outline on plane {z} is {mask.shape}, not the planes' {(Y, X)}")
        if not 0 <= z < Z:
            raise InvalidInputError(f"plane {z} lies outside 0..{Z - 1}")
        if not mask.any():
            raise InvalidInputError(f"the outline on plane {z} covers no pixel")
    out = np.zeros((Z, Y, X), bool)
    for (za, ma), (zb, mb) in pairwise(drawn):
        da, db = _signed_distance(ma), _signed_distance(mb)
        ca, cb = np.array(ndi.center_of_mass(ma)), np.array(ndi.center_of_mass(mb))
        out[za], out[zb] = ma, mb
        for z in range(za + 1, zb):
            t = (z - za) / (zb - za)
            centre = (1 - t) * ca + t * cb
            # Each distance map moved so its outline's centre sits at this plane's centre.
            sa = ndi.shift(da, centre - ca, order=1, mode="nearest")
            sb = ndi.shift(db, centre - cb, order=1, mode="nearest")
            out[z] = (1 - t) * sa + t * sb <= 0
    return out


def _distance2_to_polyline(points_um: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    best = np.full(np.broadcast(yy, xx).shape, np.inf)
    segments = pairwise(points_um) if len(points_um) > 1 else [(points_um[0], points_um[0])]
    for a, b in segments:
        d = b - a
        length2 = float(d @ d)
        t = 0.0 if length2 == 0 else np.clip(((yy - a[0]) * d[0] + (xx - a[1]) * d[1]) / length2, 0, 1)
        best = np.minimum(best, (yy - a[0] - t * d[0]) ** 2 + (xx - a[1] - t * d[1]) ** 2)
    return best


def _voxel_size(voxel_size) -> tuple[float, float, float]:
    try:
        size = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or not all(math.isfinite(v) and v > 0 for v in size):
        raise InvalidInputError(f"voxel_size must be (z, y, x) positive micrometres, got {voxel_size!r}")
    return size


def sphere_reach(radius_um: float, voxel_size) -> tuple[int, float]:
    """(planes above and below, pixels across) that a ball of ``radius_um`` reaches."""
    vz, vy, vx = _voxel_size(voxel_size)
    return int(math.floor(radius_um / vz + 1e-9)), radius_um / min(vy, vx)


def sphere_mask(points, z: int, radius_um: float, *, voxel_size, shape: tuple[int, int, int]) -> np.ndarray:
    """The voxels within ``radius_um`` micrometres of a stroke drawn on plane ``z``.

    Parameters
    ----------
    points : [[y, x], ...] the stroke on plane ``z`` (one point is a dot).
    z : the plane drawn on.
    radius_um : the ball's radius in micrometres (> 0).
    voxel_size : (z, y, x) micrometres: distances are physical, so on a stack with 2 µm planes
        and 0.5 µm pixels a 3 µm ball is 13 pixels across and 3 planes deep.
    shape : (Z, Y, X) of the answer.

    >>> import numpy as np
    >>> ball = sphere_mask([[5, 5]], 2, 2.0, voxel_size=(1.0, 1.0, 1.0), shape=(5, 11, 11))
    >>> [int(p.sum()) for p in ball]
    [1, 9, 13, 9, 1]
    """
    if isinstance(radius_um, bool) or not isinstance(radius_um, (int, float)) or not math.isfinite(radius_um) \
            or radius_um <= 0:
        raise InvalidInputError(f"the ball's radius must be a positive number of micrometres, got {radius_um!r}")
    vz, vy, vx = _voxel_size(voxel_size)
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError("a stroke must be a list of [y, x] points") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 1 or not np.isfinite(pts).all():
        raise InvalidInputError("a stroke must be a list of at least one finite [y, x] point")
    Z, Y, X = (int(s) for s in shape)
    out = np.zeros((Z, Y, X), bool)
    depth, across = sphere_reach(radius_um, (vz, vy, vx))
    lo = np.maximum(np.floor(pts.min(axis=0) - across - 1).astype(int), 0)
    hi = np.minimum(np.ceil(pts.max(axis=0) + across + 2).astype(int), (Y, X))
    if (hi <= lo).any():
        return out
    yy, xx = np.mgrid[lo[0]:hi[0], lo[1]:hi[1]].astype(np.float64)
    d2 = _distance2_to_polyline(pts * (vy, vx), yy * vy, xx * vx)
    for k in range(-depth, depth + 1):
        plane = int(z) + k
        if 0 <= plane < Z:
            out[plane, lo[0]:hi[0], lo[1]:hi[1]] = d2 + (k * vz) ** 2 <= radius_um ** 2
    return out


def background_fill_mask(labels, seed, planes: tuple[int, int], radius: float) -> np.ndarray:
    """The background connected to ``seed`` on each of ``planes``, within ``radius`` pixels.

    Parameters
    ----------
    labels : (Z, Y, X) integer array, 0 = background. Not modified.
    seed : (y, x), the pixel clicked; on each plane where it is background, the background
        4-connected to it is filled.
    planes : (z0, z1) inclusive.
    radius : how far (pixels, a square around the seed) the fill may go. A fill that reaches
        the square's edge, or the array's, is not enclosed: refused, so a click beside a
        nucleus never floods the whole image.

    Returns
    -------
    (Z, Y, X) boolean, background only.

    >>> import numpy as np
    >>> ring = np.zeros((1, 7, 7), np.uint8); ring[0, 1:6, 1:6] = 1; ring[0, 2:5, 2:5] = 0
    >>> int(background_fill_mask(ring, (3, 3), (0, 0), 5).sum())
    9
    """
    volume = np.asarray(labels)
    if volume.ndim != 3 or volume.dtype.kind not in "ui":
        raise InvalidInputError(f"labels must be a (Z, Y, X) integer array, got {volume.dtype} {volume.shape}")
    Z, Y, X = volume.shape
    try:
        y, x = (int(round(float(v))) for v in seed)
    except (TypeError, ValueError):
        raise InvalidInputError("the fill needs its seed as [y, x]") from None
    if not (0 <= y < Y and 0 <= x < X):
        raise InvalidInputError(f"the fill's seed ({y}, {x}) lies outside the planes")
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius < 1:
        raise InvalidInputError(f"the fill needs a radius of at least 1 pixel, got {radius!r}")
    z0, z1 = int(planes[0]), int(planes[1])
    if not 0 <= z0 <= z1 < Z:
        raise InvalidInputError(f"planes {z0}..{z1} lie outside 0..{Z - 1}")
    r = int(math.ceil(radius))
    box = (slice(max(y - r, 0), min(y + r + 1, Y)), slice(max(x - r, 0), min(x + r + 1, X)))
    out = np.zeros(volume.shape, bool)
    for z in range(z0, z1 + 1):
        window = volume[z][box] == 0
        sy, sx = y - box[0].start, x - box[1].start
        if not window[sy, sx]:
            continue
        pieces, _ = ndi.label(window)
        region = pieces == pieces[sy, sx]
        if region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any():
            raise InvalidInputError(f"the background at the seed is not enclosed within {r} pixels on plane {z}: "
                                    "close the outline first, or fill with a larger radius")
        out[z][box] = region
    if not out.any():
        raise InvalidInputError("the seed lies on a nucleus on every plane: click on background to fill it")
    return out
