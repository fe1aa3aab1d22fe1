"""Surface meshes of nuclei, for a 3D look at one nucleus and its neighbours.

:func:`nucleus_mesh` runs marching cubes (Lorensen & Cline) on one nucleus' mask, in physical
micrometres (the voxel size is the spacing), and simplifies the surface by vertex clustering
until it has at most ``max_triangles`` triangles, so a browser can draw it however large the
nucleus. :func:`z_profile` and :func:`z_merge_signs` say, in numbers, what the mesh shows: a
nucleus whose area per plane has a waist, or that is much taller than it is wide, is likely two
nuclei stacked in z that the linking joined (a *z-merge*).

Conventions: ``labels`` is a (Z, Y, X) integer array, 0 = background ((Y, X) is taken as
Z = 1); ``voxel_size`` is (z, y, x) in micrometres; vertices are (z, y, x) micrometres from
the volume's origin (``offset`` is where the array starts in the volume, in voxels).

References
----------
W. E. Lorensen, H. E. Cline, "Marching cubes: a high resolution 3D surface construction
algorithm", SIGGRAPH 1987. J. Rossignac, P. Borrel, "Multi-resolution 3D approximations for
rendering complex scenes", 1993 (vertex clustering).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from .errors import InvalidInputError

__all__ = ["NucleusMesh", "nucleus_mesh", "touching_labels", "z_merge_signs", "z_profile", "z_waist"]

#: Above this many voxels the marching cubes steps over voxels (its ``step_size``): the mesh is
#: simplified anyway, and a 20-million-voxel blob would otherwise take seconds.
_FULL_RESOLUTION_VOXELS = 2_000_000


@dataclass(frozen=True)
class NucleusMesh:
    """The surface of one nucleus.

    Attributes
    ----------
    label_id : the nucleus.
    vertices : (N, 3) float32, (z, y, x) micrometres from the volume's origin.
    faces : (M, 3) int32 indices into ``vertices``, counter-clockwise seen from outside.
    volume_um3 : the nucleus' volume, voxels times the voxel volume (not the mesh's).
    z_range : (z_min, z_max), the planes it occupies (inclusive, in the volume's planes).
    """

    label_id: int
    vertices: np.ndarray
    faces: np.ndarray
    volume_um3: float
    z_range: tuple[int, int]

    @property
    def n_triangles(self) -> int:
        return int(len(self.faces))


def _volume(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise InvalidInputError(f"labels must be integers (0 = background), got dtype {labels.dtype}")
    if labels.ndim == 2:
        return labels[np.newaxis]
    if labels.ndim != 3:
        raise InvalidInputError(f"labels must be (Z, Y, X) or (Y, X), got shape {labels.shape}")
    return labels


def _spacing(voxel_size) -> tuple[float, float, float]:
    try:
        size = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) == 2:
        size = (1.0, *size)
    if len(size) != 3 or not all(math.isfinite(v) and v > 0 for v in size):
        raise InvalidInputError(f"voxel_size must be (z, y, x) positive micrometres, got {voxel_size!r}")
    return size


def _mask_of(volume: np.ndarray, nucleus_id: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    if isinstance(nucleus_id, bool) or int(nucleus_id) != nucleus_id or nucleus_id <= 0:
        raise InvalidInputError(f"a nucleus id is a whole number >= 1, got {nucleus_id!r}")
    found = ndi.find_objects((volume == nucleus_id).astype(np.uint8))
    if not found or found[0] is None:
        raise InvalidInputError(f"no nucleus {nucleus_id} in these labels")
    box = found[0]
    return volume[box] == nucleus_id, box


def _cluster(vertices: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: every vertex in one cubic cell of side ``cell`` becomes their mean;
    triangles that collapse, and repeated ones, are dropped."""
    cells = np.floor(vertices / cell).astype(np.int64)
    cells -= cells.min(axis=0)
    span = cells.max(axis=0) + 1
    # One integer a cell (1-D unique is many times faster than unique over rows).
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    merged = np.zeros((len(counts), 3), np.float64)
    np.add.at(merged, inverse, vertices)
    merged /= counts[:, None]
    remapped = inverse[faces]
    keep = (remapped[:, 0] != remapped[:, 1]) & (remapped[:, 1] != remapped[:, 2]) & (remapped[:, 0] != remapped[:, 2])
    remapped = remapped[keep]
    # The same triangle twice (either winding) after the collapse: keep one.
    ordered = np.sort(remapped, axis=1).astype(np.int64)
    n = int(len(counts))
    _, first = np.unique((ordered[:, 0] * n + ordered[:, 1]) * n + ordered[:, 2], return_index=True)
    remapped = remapped[np.sort(first)]
    used, compact = np.unique(remapped, return_inverse=True)
    return merged[used], compact.reshape(-1, 3)


def _simplify(vertices: np.ndarray, faces: np.ndarray, max_triangles: int,
              spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    if len(faces) <= max_triangles:
        return vertices, faces
    # Triangles fall roughly as the square of the cell size: start near the size that fits.
    cell = min(spacing) * math.sqrt(len(faces) / max_triangles)
    for _ in range(60):
        v, f = _cluster(vertices, faces, cell)
        if len(f) <= max_triangles:
            return v, f
        cell *= 1.25
    raise InvalidInputError(f"the surface could not be simplified to {max_triangles} triangles")


def nucleus_mesh(labels, nucleus_id: int, *, voxel_size, offset: Sequence[int] = (0, 0, 0),
                 max_triangles: int = 5000) -> NucleusMesh:
    """The surface of nucleus ``nucleus_id``, in micrometres, with at most ``max_triangles``.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) integer array, 0 = background. Not modified. A crop of a
        volume is fine (the web app passes the nucleus' bounding box and its surroundings);
        a nucleus cut by the crop's edge is closed along the edge.
    nucleus_id : the nucleus.
    voxel_size : (z, y, x) micrometres, the spacing of the marching cubes.
    offset : (z, y, x) voxels, where ``labels`` starts in the volume.
    max_triangles : at most this many triangles (vertex clustering beyond it), >= 12.

    Returns
    -------
    :class:`NucleusMesh`.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((5, 5, 5), np.uint8)
    >>> labels[1:4, 1:4, 1:4] = 7
    >>> mesh = nucleus_mesh(labels, 7, voxel_size=(2.0, 1.0, 1.0))
    >>> mesh.volume_um3, mesh.z_range
    (54.0, (1, 3))
    >>> bool(mesh.vertices[:, 0].max() <= 4 * 2.0)
    True
    """
    volume = _volume(labels)
    spacing = _spacing(voxel_size)
    if isinstance(max_triangles, bool) or not isinstance(max_triangles, (int, np.integer)) or max_triangles < 12:
        raise InvalidInputError(f"max_triangles must be a whole number >= 12, got {max_triangles!r}")
    try:
        origin = np.array([int(v) for v in offset], np.float64)
    except (TypeError, ValueError):
        origin = np.zeros(0)
    if origin.shape != (3,):
        raise InvalidInputError(f"offset must be (z, y, x) voxels, got {offset!r}")
    from skimage.measure import marching_cubes  # scikit-image: loaded by the first mesh only

    mask, box = _mask_of(volume, nucleus_id)
    voxels = int(mask.sum())
    field = np.pad(mask.astype(np.float32), 1)
    # A light smoothing takes the voxel staircase off the surface; none across planes, which are
    # far apart in most stacks. A nucleus too thin to survive it is meshed as it is.
    smooth = ndi.gaussian_filter(field, sigma=(0.0, 0.7, 0.7))
    if smooth.max() > 0.5:
        field = smooth
    # Past the full-resolution budget, a step that brings the voxels marched back under it.
    step = 1
    if field.size > _FULL_RESOLUTION_VOXELS:
        step = int(math.ceil((field.size / _FULL_RESOLUTION_VOXELS) ** (1 / 3)))
    vertices, faces, _, _ = marching_cubes(field, level=0.5, spacing=spacing, step_size=step,
                                           allow_degenerate=False)
    vertices, faces = _simplify(vertices.astype(np.float64), faces.astype(np.int64), int(max_triangles), spacing)
    # Back to the volume's frame: the pad of one voxel, the box, the crop's offset.
    start = np.array([s.start for s in box], np.float64) + origin - 1.0
    vertices = vertices + start * np.array(spacing)
    z0 = int(box[0].start + origin[0])
    return NucleusMesh(label_id=int(nucleus_id), vertices=vertices.astype(np.float32), faces=faces.astype(np.int32),
                       volume_um3=float(voxels * spacing[0] * spacing[1] * spacing[2]),
                       z_range=(z0, z0 + mask.shape[0] - 1))


def touching_labels(labels, nucleus_id: int) -> list[int]:
    """The ids of the nuclei that share a face with nucleus ``nucleus_id`` (6-connected in 3D,
    4 in 2D), ascending.

    >>> import numpy as np
    >>> touching_labels(np.array([[1, 1, 2], [0, 0, 0], [3, 0, 0]]), 1)
    [2]
    """
    volume = _volume(labels)
    mask, box = _mask_of(volume, nucleus_id)
    grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, volume.shape, strict=True))
    around = volume[grown]
    inner = np.zeros(around.shape, bool)
    inner[tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown, strict=True))] = mask
    ring = ndi.binary_dilation(inner, ndi.generate_binary_structure(3, 1)) & ~inner
    return sorted(set(np.unique(around[ring]).tolist()) - {0, int(nucleus_id)})


def z_profile(labels, nucleus_id: int, *, voxel_size) -> list[tuple[int, float]]:
    """The nucleus' area on each plane it occupies: ``[(z, area in µm²), ...]`` (z in the
    array's planes)."""
    volume = _volume(labels)
    spacing = _spacing(voxel_size)
    mask, box = _mask_of(volume, nucleus_id)
    areas = mask.reshape(mask.shape[0], -1).sum(axis=1) * spacing[1] * spacing[2]
    return [(box[0].start + k, float(a)) for k, a in enumerate(areas)]


def _waist(areas: np.ndarray, waist_ratio: float) -> tuple[float, int, float, float] | None:
    best = None
    for k in range(1, len(areas) - 1):
        above, below = areas[:k].max(), areas[k + 1:].max()
        ratio = areas[k] / min(above, below) if min(above, below) > 0 else 1.0
        if ratio < waist_ratio and (best is None or ratio < best[0]):
            best = (ratio, k, above, below)
    return best


def z_waist(profile: Sequence[tuple[int, float]], *, waist_ratio: float = 0.6) -> int | None:
    """The plane of the narrowest waist in a nucleus' area per plane (see
    :func:`z_merge_signs`), or ``None``.

    >>> z_waist([(3, 10.0), (4, 30.0), (5, 8.0), (6, 28.0)])
    5
    """
    best = _waist(np.array([float(a) for _, a in profile]), waist_ratio) if profile else None
    return None if best is None else int(profile[best[1]][0])


def z_merge_signs(profile: Sequence[tuple[int, float]], *, z_step: float, waist_ratio: float = 0.6,
                  elongation: float = 1.8) -> list[str]:
    """What, in a nucleus' area per plane, suggests two nuclei stacked in z and joined: one
    sentence per sign, none for a nucleus that looks whole.

    Parameters
    ----------
    profile : :func:`z_profile`'s answer.
    z_step : the voxel size in z, micrometres.
    waist_ratio : a plane whose area is below this fraction of the smaller of the largest areas
        above and below it is a waist.
    elongation : a nucleus whose height is more than this many times its widest diameter is
        too tall.

    >>> z_merge_signs([(0, 10.0), (1, 30.0), (2, 8.0), (3, 28.0), (4, 9.0)], z_step=1.0)
    ['a waist at plane 2: 8 µm² between 30 and 28 µm²']
    >>> z_merge_signs([(0, 10.0), (1, 30.0), (2, 25.0), (3, 9.0)], z_step=1.0)
    []
    """
    if not profile:
        return []
    planes = [int(z) for z, _ in profile]
    areas = np.array([float(a) for _, a in profile])
    signs = []
    best = _waist(areas, waist_ratio)
    if best is not None:
        _, k, above, below = best
        signs.append(f"a waist at plane {planes[k]}: {areas[k]:.3g} µm² between {above:.3g} and {below:.3g} µm²")
    height = len(areas) * float(z_step)
    width = 2.0 * math.sqrt(areas.max() / math.pi)
    if len(areas) > 2 and width > 0 and height > elongation * width:
        signs.append(f"{height:.3g} µm tall but {width:.3g} µm wide: taller than one nucleus")
    return signs
