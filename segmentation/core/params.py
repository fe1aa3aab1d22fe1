"""The parameters of one segmentation run, as one frozen, validated, serialisable object.

A job stores ``SegmentationParams.to_dict()`` in its JSON field and rebuilds it with
``from_dict``; a value that would fail at run time fails here instead, with one line saying why.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameterError

__all__ = ["DEFAULT_3D_BACKEND", "RESTORATION_MODES", "SegmentationParams", "params_for_stack"]

RESTORATION_MODES = ("none", "auto", "denoise", "deblur")

#: The backend a z-stack gets when nobody chooses one (the ``segment`` command, a job started
#: through the API or the viewer). Chosen by ``bench/volumetric.py`` (see the README's "Which
#: 3D backend"); the guide's ``segment_cellpose`` keeps its own defaults (``do_3d=False``).
DEFAULT_3D_BACKEND = "true3d"


def _positive(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidParameterError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class SegmentationParams:
    """What :meth:`SegmentationEngine.segment` needs besides the image.

    Parameters
    ----------
    model_name : a shipped model (``None`` = the shipped default for the image: ``ezq_nuclei_v2``
        for a z-stack, ``ezq_nuclei_v1`` for a 2D image), a Cellpose built-in name, or a path
        to a Cellpose model file.
    diameter : expected nucleus diameter in pixels (xy); ``None`` estimates it from the image.
    do_3d : treat a (Z, Y, X) image as a volume with one id per nucleus across z (with a 3D
        backend); ``False`` segments each slice on its own.
    use_3d_backend : ``"slice"``, ``"hybrid2d3d"`` or ``"true3d"`` (see ``backends``).
    restoration_mode : ``"none"``, ``"auto"``, ``"denoise"`` or ``"deblur"``.
    voxel_size : (z, y, x) micrometres for a volume, or (y, x) for an image; ``None`` = isotropic.
    flow_threshold : Cellpose's maximum flow error of a kept mask (larger keeps more).
    cellprob_threshold : Cellpose's cell-probability logit threshold (lower grows masks).
    min_size : masks smaller than this many pixels (voxels in 3D) are removed.
    min_overlap_ratio, max_distance_z, overlap_measure : linking parameters of the
        ``hybrid2d3d`` backend (see :func:`linking.link_slices`). ``overlap_measure="iou"`` is the
        guide's rule; ``"intersection_over_smaller"`` (with a ratio near 0.7) keeps the small
        top and bottom sections of a nucleus on a coarse z grid linked to its large middle one.
    split_dip, max_z_elongation : how the ``hybrid2d3d`` backend cuts a track that holds
        nuclei stacked in z (see :class:`linking.LinkingParams`): at a dip of its section
        profile to ``split_dip`` of the smaller peak beside it (0 = never), and when its z
        extent in micrometres passes ``max_z_elongation`` times its widest section (0 = never).
    flow3d_smooth : ``true3d`` only: sigma, in voxels, of the Gaussian that smooths the 3D flow
        field before the masks are followed out of it (0 = none). The three views' flows
        disagree most where the z blur is wide; smoothing keeps one nucleus from breaking up.
    normalize_planes : for a stack, scale each plane by its own 1st and 99th percentiles
        (bounded, see :func:`engine.plane_intensity_ranges`), so signal that falls with depth
        or flickers from plane to plane reaches the network at one contrast; ``False`` scales
        the whole stack by one range.
    """

    model_name: str | None = None
    diameter: float | None = None
    do_3d: bool = False
    use_3d_backend: str = "slice"
    restoration_mode: str = "none"
    voxel_size: tuple[float, ...] | None = None
    flow_threshold: float = 0.4
    cellprob_threshold: float = 0.0
    min_size: int = 15
    min_overlap_ratio: float = 0.3
    max_distance_z: int = 2
    overlap_measure: str = "iou"
    split_dip: float = 0.7
    max_z_elongation: float = 2.5
    flow3d_smooth: float = 1.0
    normalize_planes: bool = True

    def __post_init__(self) -> None:
        from .backends import BACKENDS  # the registry imports this module

        if self.model_name is not None and (not isinstance(self.model_name, str) or not self.model_name.strip()):
            raise InvalidParameterError(f"model_name must be a non-empty string or None, got {self.model_name!r}")
        _positive("diameter", self.diameter, allow_none=True)
        if not isinstance(self.do_3d, bool):
            raise InvalidParameterError(f"do_3d must be true or false, got {self.do_3d!r}")
        if self.use_3d_backend not in BACKENDS:
            raise InvalidParameterError(
                f"unknown 3D backend {self.use_3d_backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.restoration_mode not in RESTORATION_MODES:
            raise InvalidParameterError(
                f"unknown restoration mode {self.restoration_mode!r}; choose one of {', '.join(RESTORATION_MODES)}")
        if self.voxel_size is not None:
            if isinstance(self.voxel_size, (str, bytes)) or len(self.voxel_size) not in (2, 3):
                raise InvalidParameterError(f"voxel_size must be (z, y, x) or (y, x), got {self.voxel_size!r}")
            for v in self.voxel_size:
                _positive("each voxel_size value", v)
            object.__setattr__(self, "voxel_size", tuple(float(v) for v in self.voxel_size))
            y, x = self.voxel_size[-2:]
            if not math.isclose(y, x, rel_tol=1e-3):
                # The network was trained on square pixels; stretching silently would change sizes.
                raise InvalidParameterError(
                    f"pixels must be square (voxel_size y == x), got y={y} x={x}; resample the image first")
        for name in ("flow_threshold",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= 10):
                raise InvalidParameterError(f"{name} must lie in [0, 10], got {value!r}")
        if isinstance(self.cellprob_threshold, bool) or not isinstance(self.cellprob_threshold, (int, float)) \
                or not (-8 <= self.cellprob_threshold <= 8):
            raise InvalidParameterError(f"cellprob_threshold must lie in [-8, 8], got {self.cellprob_threshold!r}")
        if isinstance(self.min_size, bool) or not isinstance(self.min_size, int) or self.min_size < 0:
            raise InvalidParameterError(f"min_size must be a whole number >= 0, got {self.min_size!r}")
        if isinstance(self.flow3d_smooth, bool) or not isinstance(self.flow3d_smooth, (int, float)) \
                or not (0 <= self.flow3d_smooth <= 10):
            raise InvalidParameterError(f"flow3d_smooth must lie in [0, 10] voxels, got {self.flow3d_smooth!r}")
        if not isinstance(self.normalize_planes, bool):
            raise InvalidParameterError(f"normalize_planes must be true or false, got {self.normalize_planes!r}")
        from .linking import LinkingParams

        # Validates the linking fields with one set of rules.
        LinkingParams(min_overlap_ratio=self.min_overlap_ratio, max_distance_z=self.max_distance_z,
                      overlap_measure=self.overlap_measure, split_dip=self.split_dip,
                      max_z_elongation=self.max_z_elongation)

    @property
    def anisotropy(self) -> float:
        """z step over the xy pixel size (1 when unknown or 2D)."""
        if self.voxel_size is None or len(self.voxel_size) != 3:
            return 1.0
        return self.voxel_size[0] / ((self.voxel_size[1] + self.voxel_size[2]) / 2)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.voxel_size is not None:
            data["voxel_size"] = list(self.voxel_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SegmentationParams":
        if not isinstance(data, dict):
            raise InvalidParameterError("segmentation parameters must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidParameterError(f"unknown segmentation parameters: {', '.join(unknown)}")
        return cls(**data)


def params_for_stack(data: dict[str, Any], *, ndim: int, voxel_size: tuple[float, ...] | None) -> dict[str, Any]:
    """``data`` with the defaults of a stored image filled in: a (Z, Y, X) stack is segmented in
    3D with :data:`DEFAULT_3D_BACKEND`, and ``voxel_size`` is the image's own when not given.

    Keys present in ``data`` win; ``do_3d=False`` keeps a stack slice by slice.
    """
    out = dict(data)
    if ndim == 3:
        out.setdefault("do_3d", True)
        out.setdefault("use_3d_backend", DEFAULT_3D_BACKEND if out["do_3d"] else "slice")
    if voxel_size is not None and out.get("voxel_size") is None:
        out["voxel_size"] = list(voxel_size[-ndim:] if ndim == 2 else voxel_size)
    return out
