"""Edits of a label image: split, merge, delete, add, modify, as a person draws them.

Each function takes a label array and returns a new one (the input is never modified) in
which only the edited nuclei differ; any rule the edit breaks raises
:class:`~.errors.InvalidInputError` with one line saying what to do instead. They work on
whole images or on crops (the web app passes the bounding box of the nuclei involved plus the
drawing), with geometry in the array's own pixel coordinates.

Conventions: ``labels`` is a (Z, Y, X) integer array, 0 = background ((Y, X) is taken as
Z = 1 and returned as (Y, X)); points are ``(y, x)`` floats in pixels; a drawing made on one
plane applies to the planes the caller names (``planes``) or, for a split, to every plane of
the nucleus (a 3D split carries through the nucleus' z-range).

=============  ===========================================================================
split          :func:`split_nucleus`: by a line drawn across it, or by two seeds
               (watershed of the distance to the boundary, each seed a column through z)
merge          :func:`merge_nuclei`: two or more become one, the smallest id kept
delete         :func:`delete_nuclei`
add            :func:`add_nucleus`: a polygon or brush mask, painted on background only
modify         :func:`modify_nucleus`: brush (grow into background) or eraser (shrink)
add, modify    across planes (:mod:`.drawing3d`): a solid interpolated between outlines drawn
               on two or more planes, a spherical brush or eraser (radius in µm), a flood
               fill of enclosed background
confirm        a person checked the nucleus: nothing changes (:func:`apply_edit` checks it
               is there and returns the labels as they are)
=============  ===========================================================================

Painting never takes pixels from another nucleus: an edit changes the nuclei it names and
the background, nothing else, so it cannot corrupt a neighbour a person did not touch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from ._validation import check_fields
from .errors import InvalidInputError

__all__ = ["DRAWINGS", "EDIT_KINDS", "EDIT_TYPES", "Edit", "EditKind", "SPLIT_PLANES", "add_nucleus", "apply_edit",
           "delete_nuclei", "edit_kind", "merge_nuclei", "modify_nucleus", "polygon_mask", "register_edit_kind",
           "split_nucleus", "stroke_mask"]


def _as_volume(labels) -> tuple[np.ndarray, bool]:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise InvalidInputError(f"labels must be integers (0 = background), got dtype {labels.dtype}")
    if labels.ndim == 2:
        return labels[np.newaxis], True
    if labels.ndim != 3:
        raise InvalidInputError(f"labels must be (Z, Y, X) or (Y, X), got shape {labels.shape}")
    return labels, False


def _points(points, what: str, minimum: int) -> np.ndarray:
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be a list of [y, x] points") from None
    if array.ndim != 2 or array.shape[1] != 2 or len(array) < minimum:
        raise InvalidInputError(f"{what} must be a list of at least {minimum} [y, x] points")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{what} holds a point that is not a finite number")
    return array


def _present(labels: np.ndarray, ids: Sequence[int]) -> list[int]:
    ids = [int(i) for i in ids]
    if any(i <= 0 for i in ids):
        raise InvalidInputError("nucleus ids are whole numbers >= 1 (0 is the background)")
    found = set(np.unique(labels[np.isin(labels, ids)]).tolist())
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInputError(f"no nucleus {', '.join(map(str, missing))} in this label version")
    return ids


def polygon_mask(points, shape: tuple[int, int]) -> np.ndarray:
    """(Y, X) boolean mask of the pixels whose centres lie inside the polygon ``points``."""
    from skimage.draw import polygon  # scikit-image: loaded by the first edit only

    pts = _points(points, "polygon", 3)
    mask = np.zeros(shape, bool)
    rr, cc = polygon(pts[:, 0], pts[:, 1], shape=shape)
    mask[rr, cc] = True
    return mask


def stroke_mask(points, radius: float, shape: tuple[int, int]) -> np.ndarray:
    """(Y, X) boolean mask of the pixels within ``radius`` of the polyline ``points`` (a brush
    stroke; one point is a dot)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not np.isfinite(radius) or radius <= 0:
        raise InvalidInputError(f"the brush radius must be a positive number of pixels, got {radius!r}")
    pts = _points(points, "stroke", 1)
    lo = np.floor(pts.min(axis=0) - radius).astype(int)
    hi = np.ceil(pts.max(axis=0) + radius).astype(int) + 1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)
    mask = np.zeros(shape, bool)
    if (hi <= lo).any():
        return mask
    yy, xx = np.mgrid[lo[0]:hi[0], lo[1]:hi[1]].astype(np.float64)
    best = np.full(yy.shape, np.inf)
    segments = pairwise(pts) if len(pts) > 1 else [(pts[0], pts[0])]
    for a, b in segments:  # distance of each pixel centre to the segment a-b
        d = b - a
        length2 = float(d @ d)
        t = 0.0 if length2 == 0 else np.clip(((yy - a[0]) * d[0] + (xx - a[1]) * d[1]) / length2, 0, 1)
        best = np.minimum(best, (yy - a[0] - t * d[0]) ** 2 + (xx - a[1] - t * d[1]) ** 2)
    mask[lo[0]:hi[0], lo[1]:hi[1]] = best <= radius ** 2
    return mask


def _cut_line_mask(points, shape: tuple[int, int]) -> np.ndarray:
    """The pixels a drawn line cuts: a 4-connected path, so no diagonal step lets a region leak
    through it."""
    pts = _points(points, "line", 2)
    # Half a pixel of width either side of the line's centre: every pixel it passes through.
    return stroke_mask(pts, 0.75, shape)


def _reaching_edges(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The polyline with its first and last segments carried on past the edges of ``shape``."""
    reach = float(np.hypot(*shape)) + 2.0
    out = points.copy()
    for end, inner in ((0, 1), (-1, -2)):
        direction = points[end] - points[inner]
        length = float(np.hypot(*direction))
        if length > 0:
            out[end] = points[end] + direction / length * reach
    return out


def split_nucleus(labels, nucleus_id: int, *, line=None, seeds=None, new_id: int, plane: str = "xy") -> np.ndarray:
    """Split one nucleus in two, through all the planes it occupies.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) integer array, 0 = background. Not modified.
    nucleus_id : the nucleus to split.
    line : [[y, x], ...], a polyline drawn across the nucleus. The nucleus minus the line's
        pixels must fall apart into (at least) two pieces; the two largest are the halves, and
        the line's pixels and any crumbs go to the nearer half.
    seeds : [[y, x], [y, x]], one point inside each half (on the drawn plane, at least); the
        halves are the watershed basins of the distance to the nucleus' boundary.
    new_id : the id of the second half (the larger keeps ``nucleus_id``); must be unused.
    plane : where the line was drawn: ``"xy"`` (points [y, x], the cut carried through z), or
        an orthogonal plane, ``"xz"`` (points [z, x], carried through y) or ``"yz"`` ([z, y],
        through x): a z-cut, what a nucleus merged with the one above it needs. On those planes
        the line's end segments are carried on to the array's edges, so the cut crosses the
        nucleus at every y (x), also where it is wider than on the plane drawn on. Seeds are
        for ``"xy"`` only.

    Returns
    -------
    The new labels, same shape and dtype.
    """
    if (line is None) == (seeds is None):
        raise InvalidInputError("a split needs either a line drawn across the nucleus or two seeds, not both")
    volume, flat = _as_volume(labels)
    _present(volume, [nucleus_id])
    if int(new_id) <= 0 or (volume == new_id).any():
        raise InvalidInputError(f"the new id {new_id} is 0 or already in use")
    mask = volume == nucleus_id
    plane_shape = volume.shape[1:]
    if plane not in SPLIT_PLANES:
        raise InvalidInputError(f"plane must be one of {', '.join(SPLIT_PLANES)}, got {plane!r}")
    if plane != "xy" and line is None:
        raise InvalidInputError(f"on the {plane} plane a split is drawn as a line")
    if line is not None:
        if plane == "xy":
            cut = _cut_line_mask(line, plane_shape)[np.newaxis]
        else:
            section = (volume.shape[0], volume.shape[2] if plane == "xz" else volume.shape[1])
            cut = _cut_line_mask(_reaching_edges(_points(line, "line", 2), section), section)
            cut = cut[:, np.newaxis, :] if plane == "xz" else cut[:, :, np.newaxis]
        pieces, n = ndi.label(mask & ~cut)  # 6-connected in 3D, 4 in 2D
        if n < 2:
            raise InvalidInputError("the line does not cut the nucleus in two: draw it from one side across to "
                                    "the other")
        sizes = np.bincount(pieces.ravel())[1:]
        first, second = (np.argsort(sizes)[::-1][:2] + 1).tolist()
        markers = np.zeros(volume.shape, np.int32)
        markers[pieces == first] = 1
        markers[pieces == second] = 2
        # Everything else of the nucleus (the line's pixels, crumbs) joins the nearest half.
        _, nearest = ndi.distance_transform_edt(markers == 0, return_indices=True)
        halves = markers[tuple(nearest)] * mask
    else:
        from skimage.segmentation import watershed  # scikit-image: loaded by the first split only

        pts = _points(seeds, "seeds", 2)
        if len(pts) != 2:
            raise InvalidInputError(f"a split by seeds needs exactly two seeds, got {len(pts)}")
        markers = np.zeros(volume.shape, np.int32)
        for k, (y, x) in enumerate(np.round(pts).astype(int), start=1):
            if not (0 <= y < plane_shape[0] and 0 <= x < plane_shape[1]) or not mask[:, y, x].any():
                raise InvalidInputError(f"seed {k} does not lie inside nucleus {nucleus_id}")
            markers[:, y, x] = np.where(mask[:, y, x], k, 0)
        if len(np.unique(markers)) < 3:  # the second seed overwrote the first
            raise InvalidInputError("the two seeds fall on the same pixel: place one in each half")
        distance = ndi.distance_transform_edt(mask)
        halves = watershed(-distance, markers, mask=mask)
    sizes = np.bincount(halves.ravel(), minlength=3)
    if sizes[1] == 0 or sizes[2] == 0:
        raise InvalidInputError("the split leaves one half empty")
    keep = 1 if sizes[1] >= sizes[2] else 2  # the larger half keeps the id
    out = volume.copy()
    out[halves == 3 - keep] = new_id
    return out[0] if flat else out


def merge_nuclei(labels, nucleus_ids: Sequence[int]) -> np.ndarray:
    """Two or more nuclei become one, with the smallest of their ids. They need not touch (a
    nucleus cut by a bad z-link is two pieces that a person knows are one)."""
    volume, flat = _as_volume(labels)
    ids = sorted(set(_present(volume, nucleus_ids)))
    if len(ids) < 2:
        raise InvalidInputError("a merge needs at least two different nuclei")
    out = volume.copy()
    out[np.isin(volume, ids[1:])] = ids[0]
    return out[0] if flat else out


def delete_nuclei(labels, nucleus_ids: Sequence[int]) -> np.ndarray:
    """The nuclei become background."""
    volume, flat = _as_volume(labels)
    ids = _present(volume, nucleus_ids)
    if not ids:
        raise InvalidInputError("name at least one nucleus to delete")
    out = volume.copy()
    out[np.isin(volume, ids)] = 0
    return out[0] if flat else out


def _planes_mask(shape: tuple[int, int, int], mask2d: np.ndarray, planes: tuple[int, int]) -> np.ndarray:
    z0, z1 = int(planes[0]), int(planes[1])
    if not 0 <= z0 <= z1 < shape[0]:
        raise InvalidInputError(f"planes {z0}..{z1} lie outside 0..{shape[0] - 1}")
    full = np.zeros(shape, bool)
    full[z0:z1 + 1] = mask2d
    return full


def add_nucleus(labels, mask2d: np.ndarray, *, planes: tuple[int, int], new_id: int) -> np.ndarray:
    """A new nucleus ``new_id`` where ``mask2d`` (a (Y, X) boolean drawing) covers background,
    on planes ``planes[0]..planes[1]`` (inclusive)."""
    volume, flat = _as_volume(labels)
    if int(new_id) <= 0 or (volume == new_id).any():
        raise InvalidInputError(f"the new id {new_id} is 0 or already in use")
    paint = _planes_mask(volume.shape, np.asarray(mask2d, bool), planes) & (volume == 0)
    if not paint.any():
        raise InvalidInputError("the drawing covers no background: a new nucleus cannot take another's pixels")
    out = volume.copy()
    out[paint] = new_id
    return out[0] if flat else out


def modify_nucleus(labels, nucleus_id: int, mask2d: np.ndarray, *, planes: tuple[int, int],
                   erase: bool) -> np.ndarray:
    """Brush (``erase=False``: background under ``mask2d`` joins the nucleus) or eraser
    (``erase=True``: the nucleus' pixels under it become background), on ``planes``."""
    volume, flat = _as_volume(labels)
    _present(volume, [nucleus_id])
    region = _planes_mask(volume.shape, np.asarray(mask2d, bool), planes)
    own = volume == nucleus_id
    out = volume.copy()
    if erase:
        change = region & own
        if not change.any():
            raise InvalidInputError(f"the eraser touches no pixel of nucleus {nucleus_id}")
        if change.sum() == own.sum():
            raise InvalidInputError(f"that erases all of nucleus {nucleus_id}: delete it instead")
        out[change] = 0
    else:
        change = region & (volume == 0)
        if not change.any():
            raise InvalidInputError("the brush covers no background: a nucleus cannot take another's pixels")
        out[change] = nucleus_id
    return out[0] if flat else out


# ---------------------------------------------------------------------------------------------
# one edit as a validated, serialisable parameter object

#: The views an edit can be made in: the XY plane ([y, x] points) or an orthogonal one ([z, x], [z, y]).
SPLIT_PLANES = ("xy", "xz", "yz")
#: What a person can draw; an edit carries one of them (or none: merge, delete, confirm).
DRAWINGS = ("line", "seeds", "polygon", "stroke", "sections", "fill")
Point = tuple[float, float]


@dataclass(frozen=True)
class EditKind:
    """One kind of correction (``split``, ``merge``, ...): everything that differs between kinds.

    The registry :data:`EDIT_KINDS` (filled by :func:`register_edit_kind`) is the one list of
    kinds: :class:`Edit` validates against it, :func:`apply_edit` dispatches through it, the
    correction records check their masks with it, and the web app derives from it the model's
    choices, the API's choices, the review page's options and the viewer's tools.

    Parameters
    ----------
    name : lower case, no spaces; what records and the API carry (``correction_type``).
    label : the name people read (``"Split"``; a check mark reads ``"Checked"``).
    summary : one line saying what it does, for the API schema and the pages.
    nuclei : ``(fewest, most)`` nucleus ids an edit names; ``most`` None: no upper bound.
    drawings : the :data:`DRAWINGS` it takes, exactly one of them; empty: it takes none (it acts
        on the nuclei named).
    planes : the views (:data:`SPLIT_PLANES`) it can be drawn in.
    apply : ``apply(volume, edit, new_id, voxel_size) -> labels``: carry the edit out on a copy
        of the (Z, Y, X) ``volume`` (never modify it); ``new_id`` is the id a new nucleus gets.
    consistent : ``consistent(n_before, n_after) -> bool``: do the counts of nuclei in the
        original and corrected masks of a record fit this kind?
    rule : the one-line message when they do not (what was expected).
    changes_voxels : False for a kind that changes no voxel (``confirm``): its masks before and
        after must be equal, and the web app makes no label version for it.
    new_id : True when it makes a nucleus with a fresh id (a split's second half, an addition).
    done : what the pages say a person did, in the past tense; ``{before}`` and ``{after}`` are
        the ids of the nuclei before and after the edit (``"split nucleus {before} into {after}"``).
    """

    name: str
    label: str
    summary: str
    nuclei: tuple[int, int | None]
    drawings: tuple[str, ...]
    apply: Callable[..., np.ndarray]
    consistent: Callable[[int, int], bool]
    rule: str
    planes: tuple[str, ...] = SPLIT_PLANES
    changes_voxels: bool = True
    new_id: bool = False
    done: str = ""

    def to_dict(self) -> dict[str, Any]:
        """What a page needs to know of the kind (JSON-ready: no functions)."""
        return {"name": self.name, "label": self.label, "summary": self.summary, "nuclei": list(self.nuclei),
                "drawings": list(self.drawings), "planes": list(self.planes), "changes_voxels": self.changes_voxels,
                "new_id": self.new_id, "done": self.done}


#: Every kind of correction by name, in the order pages list them: see :class:`EditKind`.
EDIT_KINDS: dict[str, EditKind] = {}


def register_edit_kind(kind: EditKind) -> EditKind:
    """Add ``kind`` to :data:`EDIT_KINDS`; a name that is empty, badly spelt or taken fails."""
    if not isinstance(kind, EditKind):
        raise TypeError(f"register an EditKind, got {type(kind).__name__}")
    if not kind.name or not kind.name.isidentifier() or kind.name != kind.name.lower() or len(kind.name) > 16:
        raise ValueError(f"an edit kind's name is a lower-case word of at most 16 characters, got {kind.name!r}")
    if kind.name in EDIT_KINDS:
        raise ValueError(f"an edit kind named {kind.name!r} is already registered")
    unknown = [d for d in kind.drawings if d not in DRAWINGS] + [p for p in kind.planes if p not in SPLIT_PLANES]
    low, high = kind.nuclei
    if unknown or low < 0 or (high is not None and high < low) or not kind.planes:
        raise ValueError(f"edit kind {kind.name!r}: bad drawings, planes or nuclei ({unknown or kind.nuclei})")
    EDIT_KINDS[kind.name] = kind
    return kind


def edit_kind(name: Any) -> EditKind:
    """The registered kind ``name``; an unknown one raises :class:`~.errors.InvalidInputError`."""
    kind = EDIT_KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidInputError(f"unknown correction type {name!r}; choose one of {', '.join(EDIT_KINDS)}")
    return kind


def _point_tuple(points, what: str, minimum: int) -> tuple[Point, ...] | None:
    if points is None:
        return None
    return tuple((float(y), float(x)) for y, x in _points(points, what, minimum))


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value or value < 0:
        raise InvalidInputError(f"{what} must be a whole number >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Edit:
    """What a person drew, in the volume's level-0 pixel coordinates.

    Parameters
    ----------
    correction_type : a name in :data:`EDIT_KINDS`.
    nucleus_ids : the nuclei edited: split, modify and confirm one, merge two or more, delete one or
        more, add none.
    z : the plane the drawing was made on.
    z_range : (z0, z1) inclusive, the planes an ``add`` or ``modify`` applies to (default
        ``(z, z)``); a split always spans its nucleus' planes, and merge and delete whole nuclei.
    line, seeds : a split's line across the nucleus ([y, x] points), or its two seeds.
    polygon : an ``add``'s outline.
    stroke, radius, erase : a brush stroke ([y, x] points) and its radius in pixels: an
        ``add`` painted with a brush, or a ``modify`` (``erase=True`` for the eraser).
    sections : ``[{"z": plane, "polygon": [[y, x], ...]}, ...]``, outlines drawn on two or more
        planes: an ``add`` or ``modify`` of the solid interpolated between them
        (:func:`~.drawing3d.interpolate_sections`); ``z_range`` is their span and ``z`` one of
        their planes.
    radius_um : with a ``stroke`` instead of ``radius``: the spherical brush (or eraser), a ball
        of this radius in micrometres swept along the stroke through the planes it reaches
        (:func:`~.drawing3d.sphere_mask`; no ``z_range``).
    fill, radius : ``[y, x]``: an ``add`` or ``modify`` of the background connected to that
        pixel on each of ``planes``, within ``radius`` pixels of it
        (:func:`~.drawing3d.background_fill_mask`).
    plane : the view the edit was made in: ``"xy"``, or ``"xz"`` / ``"yz"``, where a split's
        ``line`` is [z, x] / [z, y] points and cuts through the nucleus' y / x range
        (:func:`split_nucleus`); merge, delete and confirm are the same from any view; add and
        modify are drawn on XY planes.
    """

    correction_type: str
    nucleus_ids: tuple[int, ...] = ()
    z: int = 0
    z_range: tuple[int, int] | None = None
    line: tuple[Point, ...] | None = None
    seeds: tuple[Point, ...] | None = None
    polygon: tuple[Point, ...] | None = None
    stroke: tuple[Point, ...] | None = None
    radius: float | None = None
    erase: bool = False
    sections: tuple[tuple[int, tuple[Point, ...]], ...] | None = None
    radius_um: float | None = None
    fill: Point | None = None
    plane: str = "xy"

    def __post_init__(self) -> None:
        kind = self.correction_type
        spec = edit_kind(kind)
        if isinstance(self.nucleus_ids, (str, bytes)) or not isinstance(self.nucleus_ids, (list, tuple)):
            raise InvalidInputError(f"nucleus_ids must be a list of ids, got {self.nucleus_ids!r}")
        ids = tuple(_whole(i, "each nucleus id") for i in self.nucleus_ids)
        if 0 in ids:
            raise InvalidInputError("nucleus ids start at 1 (0 is the background)")
        object.__setattr__(self, "nucleus_ids", ids)
        object.__setattr__(self, "z", _whole(self.z, "z"))
        self._check_3d()
        if self.z_range is not None:
            if isinstance(self.z_range, (str, bytes)) or len(self.z_range) != 2:
                raise InvalidInputError(f"z_range must be [z0, z1], got {self.z_range!r}")
            z0, z1 = (_whole(v, "z_range") for v in self.z_range)
            if z0 > z1 or not z0 <= self.z <= z1:
                raise InvalidInputError(f"z_range [{z0}, {z1}] must be ordered and contain the plane drawn on, "
                                        f"z={self.z}")
            object.__setattr__(self, "z_range", (z0, z1))
        for name, minimum in (("line", 2), ("seeds", 2), ("polygon", 3), ("stroke", 1)):
            object.__setattr__(self, name, _point_tuple(getattr(self, name), name, minimum))
        if not isinstance(self.erase, bool):
            raise InvalidInputError(f"erase must be true or false, got {self.erase!r}")
        if self.stroke is not None and self.radius_um is None or self.fill is not None:
            r = self.radius
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or not 0 < r <= 500:
                raise InvalidInputError(f"a brush stroke or a fill needs a radius in (0, 500] pixels, got {r!r}")
            object.__setattr__(self, "radius", float(r))
        elif self.radius is not None:
            raise InvalidInputError("a radius in pixels goes with a brush stroke or a fill only")
        given = [name for name in DRAWINGS if getattr(self, name) is not None]
        (low, high), drawings = spec.nuclei, spec.drawings
        n = len(ids)
        if n < low or (high is not None and n > high):
            count = f"{low}" if low == high else f"at least {low}"
            raise InvalidInputError(f"a {kind} names {count} nucleus id(s), got {n}")
        if len(set(ids)) != n:
            raise InvalidInputError("a nucleus id is named twice")
        if drawings and len(given) != 1 or not drawings and given or given and given[0] not in drawings:
            need = " or ".join(drawings) if drawings else "no drawing"
            raise InvalidInputError(f"a {kind} takes {need}, got {', '.join(given) or 'none'}")
        if self.erase and kind != "modify":
            raise InvalidInputError("only a modify can erase")
        if kind == "split" and self.seeds is not None and len(self.seeds) != 2:
            raise InvalidInputError(f"a split by seeds needs exactly two seeds, got {len(self.seeds)}")
        if self.plane not in SPLIT_PLANES:
            raise InvalidInputError(f"plane must be one of {', '.join(SPLIT_PLANES)}, got {self.plane!r}")
        if self.plane != "xy" and (self.plane not in spec.planes or self.seeds is not None):
            raise InvalidInputError(f"on the {self.plane} plane a split is drawn as a line; seeds, add and modify "
                                    "are drawn on an xy plane")

    def _check_3d(self) -> None:
        """The drawings across planes: sections (which set ``z_range``), the ball's radius, the
        fill's seed."""
        if self.sections is not None:
            if isinstance(self.sections, (str, bytes, dict)) or not isinstance(self.sections, (list, tuple)):
                raise InvalidInputError("sections must be a list of {z, polygon} outlines")
            sections = []
            for section in self.sections:
                if isinstance(section, dict):
                    if set(section) - {"z", "polygon"} or "z" not in section or "polygon" not in section:
                        raise InvalidInputError("each section is {\"z\": plane, \"polygon\": [[y, x], ...]}")
                    z, polygon = section["z"], section["polygon"]
                elif isinstance(section, (list, tuple)) and len(section) == 2:
                    z, polygon = section
                else:
                    raise InvalidInputError("each section is {\"z\": plane, \"polygon\": [[y, x], ...]}")
                sections.append((_whole(z, "a section's z"), _point_tuple(polygon, "a section's polygon", 3)))
            sections.sort(key=lambda s: s[0])
            planes = [z for z, _ in sections]
            if len(planes) < 2 or len(set(planes)) != len(planes):
                raise InvalidInputError("interpolation needs outlines on two or more different planes, "
                                        f"got planes {planes}")
            if self.z_range is not None and tuple(self.z_range) != (planes[0], planes[-1]):
                raise InvalidInputError(f"the sections span planes {planes[0]}..{planes[-1]}; z_range says "
                                        f"{list(self.z_range)}")
            if self.z not in planes:
                raise InvalidInputError(f"z={self.z} is none of the sections' planes {planes}")
            object.__setattr__(self, "sections", tuple(sections))
            object.__setattr__(self, "z_range", (planes[0], planes[-1]))
        if self.radius_um is not None:
            r = self.radius_um
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or not 0 < r <= 500:
                raise InvalidInputError(f"the spherical brush needs a radius in (0, 500] micrometres, got {r!r}")
            if self.stroke is None:
                raise InvalidInputError("radius_um is the spherical brush's: it goes with a stroke")
            if self.radius is not None or self.z_range is not None:
                raise InvalidInputError("the spherical brush takes radius_um alone: no radius in pixels, no z_range "
                                        "(the ball reaches its own planes)")
            object.__setattr__(self, "radius_um", float(r))
        if self.fill is not None:
            point = _point_tuple([self.fill] if not isinstance(self.fill, (str, bytes)) else self.fill, "fill", 1)
            if point is None or len(point) != 1:
                raise InvalidInputError("fill is one [y, x] point")
            object.__setattr__(self, "fill", point[0])
            if self.erase:
                raise InvalidInputError("a fill paints background: it cannot erase")

    @property
    def kind(self) -> EditKind:
        """Its entry in :data:`EDIT_KINDS`."""
        return EDIT_KINDS[self.correction_type]

    @property
    def has_plane(self) -> bool:
        """Whether ``z`` (and ``z_range``) name planes of this edit: a kind that takes a drawing.
        Merge, delete and confirm act on whole nuclei, wherever they lie: their ``z`` names no
        plane (so an edit's region is their nuclei's boxes alone, and a crop moves no plane)."""
        return bool(self.kind.drawings)

    @property
    def planes(self) -> tuple[int, int]:
        """The planes (inclusive) a drawing applies to: ``z_range``, else ``(z, z)`` (a spherical
        brush: see :meth:`planes_for`)."""
        return self.z_range if self.z_range is not None else (self.z, self.z)

    def planes_for(self, voxel_size=None) -> tuple[int, int]:
        """:attr:`planes`, or for a spherical brush the planes its ball reaches (needs the
        ``voxel_size``; the lower end may be negative, callers clip)."""
        if self.radius_um is None:
            return self.planes
        from .drawing3d import sphere_reach

        depth, _ = sphere_reach(self.radius_um, voxel_size)
        return self.z - depth, self.z + depth

    def drawing_bounds(self, voxel_size=None) -> tuple[int, int, int, int] | None:
        """(y0, y1, x0, x1), end exclusive, of the pixels the drawing can touch (None: none); a
        spherical brush needs the ``voxel_size``."""
        if self.plane != "xy":  # [z, x] or [z, y]: the cut stays inside the nucleus' own box
            return None
        if self.sections is not None:
            points = [p for _, polygon in self.sections for p in polygon]
        elif self.fill is not None:
            points = [self.fill]
        else:
            points = next((getattr(self, n) for n in ("line", "seeds", "polygon", "stroke") if getattr(self, n)), None)
        if points is None:
            return None
        pad = (self.radius or 0.0) + 1.0
        if self.radius_um is not None:
            from .drawing3d import sphere_reach

            pad = sphere_reach(self.radius_um, voxel_size)[1] + 1.0
        ys, xs = [p[0] for p in points], [p[1] for p in points]
        return (math.floor(min(ys) - pad), math.ceil(max(ys) + pad) + 1,
                math.floor(min(xs) - pad), math.ceil(max(xs) + pad) + 1)

    def shifted(self, dz: int, dy: int, dx: int) -> "Edit":
        """The same edit in the coordinates of a crop starting at (dz, dy, dx)."""
        def move(points):
            return None if points is None else tuple((y - dy, x - dx) for y, x in points)
        if not self.has_plane:  # whole nuclei: no plane to move, nothing drawn
            return self
        z_range = None if self.z_range is None else (self.z_range[0] - dz, self.z_range[1] - dz)
        sections = None if self.sections is None else tuple((z - dz, move(p)) for z, p in self.sections)
        fill = None if self.fill is None else (self.fill[0] - dy, self.fill[1] - dx)
        if self.plane != "xy":  # a line of [z, x] or [z, y] points
            across = dx if self.plane == "xz" else dy
            line = None if self.line is None else tuple((z - dz, a - across) for z, a in self.line)
            return dataclasses.replace(self, z=self.z - dz, z_range=z_range, line=line)
        return dataclasses.replace(self, z=self.z - dz, z_range=z_range, line=move(self.line), seeds=move(self.seeds),
                                   polygon=move(self.polygon), stroke=move(self.stroke), sections=sections, fill=fill)

    def to_dict(self) -> dict[str, Any]:
        data = {"correction_type": self.correction_type, "nucleus_ids": list(self.nucleus_ids), "z": self.z,
                "z_range": None if self.z_range is None else list(self.z_range), "radius": self.radius,
                "erase": self.erase}
        for name in ("line", "seeds", "polygon", "stroke"):
            points = getattr(self, name)
            data[name] = None if points is None else [list(p) for p in points]
        data["sections"] = None if self.sections is None else [
            {"z": z, "polygon": [list(p) for p in polygon]} for z, polygon in self.sections]
        data["radius_um"] = self.radius_um
        data["fill"] = None if self.fill is None else list(self.fill)
        data["plane"] = self.plane
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Edit":
        # InvalidInputError, not the parameters' error: the API answers a bad edit with 400.
        return cls(**check_fields(cls, data, what="edit fields", error=InvalidInputError))


def _drawing3d(volume: np.ndarray, edit: Edit, voxel_size) -> np.ndarray:
    """The (Z, Y, X) mask of an edit drawn across planes: sections, a ball, or a fill."""
    from . import drawing3d

    if edit.sections is not None:
        z0, z1 = edit.planes
        if not 0 <= z0 <= z1 < volume.shape[0]:
            raise InvalidInputError(f"planes {z0}..{z1} lie outside 0..{volume.shape[0] - 1}")
        return drawing3d.interpolate_sections([(z, polygon_mask(p, volume.shape[1:])) for z, p in edit.sections],
                                              volume.shape)
    if edit.fill is not None:
        return drawing3d.background_fill_mask(volume, edit.fill, edit.planes, edit.radius)
    if voxel_size is None:
        raise InvalidInputError("the spherical brush needs the voxel size")
    return drawing3d.sphere_mask(edit.stroke, edit.z, edit.radius_um, voxel_size=voxel_size, shape=volume.shape)


def _paint3d(volume: np.ndarray, edit: Edit, region: np.ndarray, new_id: int) -> np.ndarray:
    """Paint (add, modify) or erase (modify, ``erase``) with a (Z, Y, X) mask, background only."""
    out = volume.copy()
    if edit.correction_type == "add":
        if int(new_id) <= 0 or (volume == new_id).any():
            raise InvalidInputError(f"the new id {new_id} is 0 or already in use")
        paint = region & (volume == 0)
        if not paint.any():
            raise InvalidInputError("the drawing covers no background: a new nucleus cannot take another's pixels")
        out[paint] = new_id
        return out
    nucleus_id = edit.nucleus_ids[0]
    _present(volume, [nucleus_id])
    own = volume == nucleus_id
    if edit.erase:
        change = region & own
        if not change.any():
            raise InvalidInputError(f"the eraser touches no pixel of nucleus {nucleus_id}")
        if change.sum() == own.sum():
            raise InvalidInputError(f"that erases all of nucleus {nucleus_id}: delete it instead")
        out[change] = 0
        return out
    change = region & (volume == 0)
    if edit.fill is not None and not (ndi.binary_dilation(change) & own).any():
        raise InvalidInputError(f"the filled background does not touch nucleus {nucleus_id}")
    if not change.any():
        raise InvalidInputError("the drawing covers no background: a nucleus cannot take another's pixels")
    out[change] = nucleus_id
    return out


def apply_edit(labels, edit: Edit, *, new_id: int, voxel_size=None) -> np.ndarray:
    """Carry out ``edit`` (in ``labels``' own coordinates: see :meth:`Edit.shifted`) on a copy of
    ``labels``; ``new_id`` is the id a split's second half or an added nucleus gets;
    ``voxel_size`` ((z, y, x) µm) is needed by the spherical brush only. The kind's
    :attr:`EditKind.apply` does the work."""
    volume, flat = _as_volume(labels)
    if edit.has_plane and not 0 <= edit.z < volume.shape[0]:
        raise InvalidInputError(f"plane z={edit.z} lies outside the volume's planes")
    out = edit_kind(edit.correction_type).apply(volume, edit, new_id, voxel_size)
    return out[0] if flat else out


# ---------------------------------------------------------------------------------------------
# the kinds: to add one, copy the nearest of these (CONTRIBUTING.md, "Recipe: add a correction type")


def _apply_split(volume: np.ndarray, edit: Edit, new_id: int, voxel_size) -> np.ndarray:
    return split_nucleus(volume, edit.nucleus_ids[0], line=edit.line, seeds=edit.seeds, new_id=new_id,
                         plane=edit.plane)


def _apply_confirm(volume: np.ndarray, edit: Edit, new_id: int, voxel_size) -> np.ndarray:
    _present(volume, edit.nucleus_ids)
    return volume.copy()


def _apply_paint(volume: np.ndarray, edit: Edit, new_id: int, voxel_size) -> np.ndarray:
    """An ``add`` or ``modify``: a drawing on one plane applied to ``planes``, or one across planes."""
    if edit.sections is not None or edit.fill is not None or edit.radius_um is not None:
        return _paint3d(volume, edit, _drawing3d(volume, edit, voxel_size), new_id)
    plane = volume.shape[1:]
    drawing = polygon_mask(edit.polygon, plane) if edit.polygon is not None \
        else stroke_mask(edit.stroke, edit.radius, plane)
    if edit.correction_type == "add":
        return add_nucleus(volume, drawing, planes=edit.planes, new_id=new_id)
    return modify_nucleus(volume, edit.nucleus_ids[0], drawing, planes=edit.planes, erase=edit.erase)


register_edit_kind(EditKind(
    "split", "Split", "one nucleus cut in two, by a line drawn across it or by two seeds",
    nuclei=(1, 1), drawings=("line", "seeds"), apply=_apply_split,
    consistent=lambda before, after: before >= 1 and after >= 2,
    rule="'split' needs a non-empty original and at least two nuclei in the corrected mask "
         "(distinct ids, or separate components of a boolean mask)", new_id=True,
    done="split nucleus {before} into {after}"))
register_edit_kind(EditKind(
    "merge", "Merge", "two or more nuclei become one (the smallest id kept)",
    nuclei=(2, None), drawings=(),
    apply=lambda volume, edit, new_id, voxel_size: merge_nuclei(volume, edit.nucleus_ids),
    consistent=lambda before, after: before >= 2 and after >= 1,
    rule="'merge' needs at least two nuclei in the original (distinct ids, or separate components "
         "of a boolean mask) and a non-empty corrected mask", done="merged nuclei {before} into {after}"))
register_edit_kind(EditKind(
    "delete", "Delete", "the nuclei named become background",
    nuclei=(1, None), drawings=(),
    apply=lambda volume, edit, new_id, voxel_size: delete_nuclei(volume, edit.nucleus_ids),
    consistent=lambda before, after: before >= 1 and after == 0,
    rule="'delete' needs a non-empty original and an empty corrected mask", done="deleted nucleus {before}"))
register_edit_kind(EditKind(
    "add", "Add", "a new nucleus drawn on background (an outline, a brush, outlines on several planes, a fill)",
    nuclei=(0, 0), drawings=("polygon", "stroke", "sections", "fill"), planes=("xy",), apply=_apply_paint,
    consistent=lambda before, after: before == 0 and after >= 1,
    rule="'add' needs an empty original and a non-empty corrected mask", new_id=True, done="added nucleus {after}"))
register_edit_kind(EditKind(
    "modify", "Modify", "one nucleus grown onto background or erased from (a brush, outlines, a fill)",
    nuclei=(1, 1), drawings=("stroke", "sections", "fill"), planes=("xy",), apply=_apply_paint,
    consistent=lambda before, after: before >= 1 and after >= 1,
    rule="'modify' needs both masks non-empty", done="reshaped nucleus {after}"))
register_edit_kind(EditKind(
    "confirm", "Checked", "the one nucleus named is right (a check mark): no voxel changes",
    nuclei=(1, 1), drawings=(), apply=_apply_confirm,
    consistent=lambda before, after: before >= 1,
    rule="'confirm' needs the same non-empty mask before and after (the nucleus checked)", changes_voxels=False,
    done="checked nucleus {before}"))

#: The names of the kinds registered here, in order (:data:`EDIT_KINDS` also holds any
#: registered later).
EDIT_TYPES = tuple(EDIT_KINDS)
