"""3D segmentation backends, registered by name.

Every backend turns a normalised (Z, Y, X) volume into labels with the same network, and
differs only in how the third dimension is used:

``slice``
    Each z-slice is segmented on its own and keeps its own nuclei: a nucleus seen on five
    slices is five labels. Ids are unique across the volume (slice by slice, top to bottom),
    so no two objects ever share an id by accident. Fast; right for thin stacks.
``hybrid2d3d``
    The slice masks linked across z into 3D nuclei by IoU with optimal (Hungarian) assignment,
    bridging gaps of up to ``max_distance_z - 1`` slices (:func:`linking.link_slices`).
``true3d``
    Volumetric: Cellpose's 3D mode runs the 2D network on the YX, ZY and ZX planes (after
    stretching z by the anisotropy), averages the three flow fields into one 3D field and
    follows it in 3D, so a nucleus is one object by construction.

Adding a backend is adding one class with a ``name``, a ``summary`` and a ``segment`` method,
decorated with :func:`register`. Its options are the entries of
:data:`~.backend_options.BACKEND_OPTIONS` that name it (each a :class:`~.params.SegmentationParams`
field, with its default, bounds and help): :func:`register` sets them as the class's ``options``,
the viewer's job form shows them (``params.backend_catalogue``) and ``from_params`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from .backend_options import BackendOption, backend_options_of, option_default
from .runner import ModelRunner

__all__ = ["BACKENDS", "Backend", "BackendOutput", "SliceBackend", "Hybrid2D3DBackend", "True3DBackend", "register",
           "trim_z_blur"]

Progress = Callable[[float, str], None]


@dataclass
class BackendOutput:
    """What a backend returns.

    labels : (Z, Y, X) uint32, 0 = background.
    flows : (3, Z, Y, X) float32 for true3d (dz, dy, dx), (2, Z, Y, X) for slice backends (dy, dx).
    cellprob : (Z, Y, X) float32 logits.
    """

    labels: np.ndarray
    flows: np.ndarray
    cellprob: np.ndarray


class Backend:
    """Base class: ``segment(volume, runner, params, progress) -> BackendOutput``.

    ``runner`` is a :class:`runner.ModelRunner` (the engine passes a ``CellposeRunner``):
    ``runner.eval_2d(image)`` returns ``(labels, flows (2, Y, X), cellprob)`` and
    ``runner.eval_3d(volume, anisotropy)`` returns ``(labels, flows (3, Z, Y, X), cellprob)``.
    """

    name: ClassVar[str] = ""
    #: One line for the pages' backend menus.
    summary: ClassVar[str] = ""
    #: The SegmentationParams fields it reads: set by :func:`register` from
    #: :data:`~.backend_options.BACKEND_OPTIONS` (the entries that name this backend).
    options: ClassVar[tuple[BackendOption, ...]] = ()

    @classmethod
    def from_params(cls, params) -> "Backend":
        """Build the backend a :class:`SegmentationParams` asks for: its ``options`` read from it."""
        return cls(**{option.name: getattr(params, option.name) for option in cls.options})

    def segment(self, volume, runner: ModelRunner, params, progress: Progress) -> BackendOutput:  # pragma: no cover
        raise NotImplementedError


BACKENDS: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Add a backend class to :data:`BACKENDS` under its ``name``, with its ``options``: those of
    :data:`~.backend_options.BACKEND_OPTIONS` that name it (declared there, never on the class)."""
    if not cls.name or cls.name in BACKENDS:
        raise ValueError(f"backend name {cls.name!r} is empty or taken")
    if "options" in vars(cls):
        raise ValueError(f"backend {cls.name!r} declares options: list them in backend_options.BACKEND_OPTIONS, "
                         "naming the backend, so the parameters, their checks and the form share them")
    cls.options = backend_options_of(cls.name)
    BACKENDS[cls.name] = cls
    return cls


def _segment_slices(volume: np.ndarray, runner: ModelRunner, progress: Progress) -> BackendOutput:
    nz = volume.shape[0]
    labels = np.zeros(volume.shape, np.uint32)
    flows = np.zeros((2, *volume.shape), np.float32)
    cellprob = np.zeros(volume.shape, np.float32)
    next_id = 0
    for z in range(nz):
        progress(z / nz, f"slice {z + 1}/{nz}")
        lab, dp, prob = runner.eval_2d(volume[z])
        lab = lab.astype(np.uint32)
        # Offset this slice's ids past all earlier ones: ids stay unique across the volume.
        labels[z] = np.where(lab > 0, lab + np.uint32(next_id), 0)
        next_id += int(lab.max())
        flows[:, z] = dp
        cellprob[z] = prob
    progress(1.0, f"{nz} slices segmented")
    return BackendOutput(labels, flows, cellprob)


@register
class SliceBackend(Backend):
    name = "slice"
    summary = "slice: each plane on its own"

    def segment(self, volume, runner, params, progress):
        return _segment_slices(volume, runner, progress)


@register
class Hybrid2D3DBackend(Backend):
    """2D masks per slice, linked across z by IoU with Hungarian assignment.

    Parameters
    ----------
    min_overlap_ratio : minimum IoU between a slice's object and a track to link them (0.3).
    max_distance_z : how many slices back a track may be continued from (2: one empty slice
        is bridged).
    overlap_measure, split_dip, max_z_elongation : see :class:`linking.LinkingParams`; the last
        two cut a track that holds nuclei stacked in z (a dip in its section profile, or a z
        extent too long for its width).

    The guide's two-parameter form, ``Hybrid2D3DBackend(min_overlap_ratio, max_distance_z)``,
    keeps its meaning; the stacking rules apply with their defaults.
    """

    name = "hybrid2d3d"
    summary = "hybrid2d3d: planes linked across z (fast)"

    def __init__(self, min_overlap_ratio: float = option_default("min_overlap_ratio"),
                 max_distance_z: int = option_default("max_distance_z"),
                 overlap_measure: str = option_default("overlap_measure"),
                 split_dip: float = option_default("split_dip"),
                 max_z_elongation: float = option_default("max_z_elongation")):
        from .linking import LinkingParams

        # LinkingParams validates the values and raises InvalidParameterError.
        self.linking = LinkingParams(min_overlap_ratio=min_overlap_ratio, max_distance_z=max_distance_z,
                                     overlap_measure=overlap_measure, split_dip=split_dip,
                                     max_z_elongation=max_z_elongation)

    def link(self, labels: np.ndarray, *, anisotropy: float = 1.0, cellprob: np.ndarray | None = None) -> np.ndarray:
        """Link a (Z, Y, X) stack of 2D label images into 3D nuclei (ids 1..N)."""
        from .linking import link_slices

        return link_slices(labels, **self.linking.to_dict(), anisotropy=anisotropy, cellprob=cellprob)

    def segment(self, volume, runner, params, progress):
        out = _segment_slices(volume, runner, lambda f, m: progress(0.95 * f, m))
        progress(0.95, "linking slices across z")
        linked = self.link(out.labels, anisotropy=params.anisotropy, cellprob=out.cellprob)
        progress(1.0, f"{int(linked.max())} nuclei linked in 3D")
        return BackendOutput(linked, out.flows, out.cellprob)


@register
class True3DBackend(Backend):
    """Volumetric segmentation with Cellpose's 3D flow mode (YX, ZY and ZX views combined).

    Anisotropy (z step / pixel size, from ``voxel_size``) stretches z before the network sees
    the ZY and ZX planes, so nuclei look round in every view.
    """

    name = "true3d"
    summary = "true3d: volumetric flows (best on most stacks)"

    def __init__(self, z_trim: float = option_default("z_trim")):
        self.z_trim = z_trim

    @classmethod
    def from_params(cls, params) -> "True3DBackend":
        # Its other options are the runner's: CellposeRunner reads params.flow3d_smooth and isotropic_masks.
        return cls(z_trim=params.z_trim)

    def segment(self, volume, runner, params, progress):
        if volume.shape[0] < 2:
            # One plane has no third dimension to use: the 2D result is the volumetric one.
            return _segment_slices(volume, runner, progress)
        progress(0.0, "running the network on YX, ZY and ZX planes")
        labels, flows, cellprob = runner.eval_3d(volume, anisotropy=params.anisotropy)
        labels = labels.astype(np.uint32)
        if self.z_trim > 0:
            labels = trim_z_blur(labels, volume, self.z_trim)
        progress(1.0, f"{int(labels.max())} nuclei in 3D")
        return BackendOutput(labels, flows, cellprob)


def trim_z_blur(labels: np.ndarray, volume: np.ndarray, fraction: float) -> np.ndarray:
    """Drop the end planes of each nucleus that are only its light blurred along z.

    A nucleus's profile is the mean of ``volume`` over its section on each plane, less the
    background (the median of ``volume`` outside every nucleus). From its brightest plane
    outwards, the planes whose profile stays at ``fraction`` of the peak or more are kept: the
    first plane below it, and every plane beyond, lose the nucleus's voxels (they become
    background). The brightest plane is always kept, so no nucleus is lost and ids stay as
    they are; planes a nucleus is absent from do not end its run, and a nucleus no brighter
    than the background is kept whole. ``labels`` is not changed; a new array is returned.
    """
    labels = np.asarray(labels)
    n = int(labels.max())
    if n == 0:
        return labels.copy()
    background = labels == 0
    level = float(np.median(volume[background])) if background.any() else 0.0
    nz = labels.shape[0]
    sums = np.zeros((nz, n + 1))
    counts = np.zeros((nz, n + 1))
    for z in range(nz):
        plane = labels[z].ravel()
        sums[z] = np.bincount(plane, weights=volume[z].ravel(), minlength=n + 1)
        counts[z] = np.bincount(plane, minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(counts > 0, sums / counts - level, -np.inf)  # (Z, ids)
    peak_plane = np.argmax(profile, axis=0)
    peak = profile[peak_plane, np.arange(n + 1)]
    bright = (profile >= fraction * peak) | (counts == 0) | (peak <= 0)  # (Z, ids)
    # Keep, per id, the run of bright planes around its peak: walk out from the peak both ways.
    z = np.arange(nz)[:, None]
    below = np.where(~bright & (z < peak_plane), z, -1).max(axis=0)  # last dim plane before the peak
    above = np.where(~bright & (z > peak_plane), z, nz).min(axis=0)  # first dim plane after it
    keep = (z > below) & (z < above)
    out = labels.copy()
    for plane in range(nz):
        drop = ~keep[plane][out[plane]]
        out[plane][drop] = 0
    return out
