"""The parameters of one segmentation run, as one frozen, validated, serialisable object.

A job stores ``SegmentationParams.to_dict()`` in its JSON field and rebuilds it with
``from_dict``; a value that would fail at run time fails here instead, with one line saying why.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ._validation import Params, check_bool, check_choice, check_name, check_number, check_numbers
from .backend_options import BACKEND_OPTIONS, option_default
from .errors import InvalidParameterError

__all__ = ["DEFAULT_3D_BACKEND", "DEFAULT_3D_RESTORATION", "MASK_STEP_BOUNDS", "RESTORATION_MODES",
           "SegmentationParams", "backend_catalogue", "backend_options_help", "default_restoration",
           "params_for_stack"]

RESTORATION_MODES = ("none", "auto", "denoise", "deblur")

#: The backend a z-stack gets when nobody chooses one (the ``segment`` command, a job started
#: through the API or the viewer). Chosen by ``bench/volumetric.py`` (see the README's "Which
#: 3D backend"); the guide's ``segment_cellpose`` keeps its own defaults (``do_3d=False``).
DEFAULT_3D_BACKEND = "true3d"
#: A stack is restored with ``auto`` unless told otherwise: it denoises a stack that measures
#: noisy and leaves the rest (``auto`` never deblurs a stack; see restoration.DEBLUR_MIN_BLUR_SIGMA).
#: On the 3D bench's low-photon stacks true3d's AP@0.5 goes 0.35 -> 0.41 (2x z step) and 0.43 ->
#: 0.45 (4x), on the full-range draw 0.61 -> 0.62; the typical, crowded and small-nuclei stacks
#: do not measure noisy and are left as they are. A 2D image keeps the guide's ``"none"``, as
#: ``segment_cellpose`` does for every image.
DEFAULT_3D_RESTORATION = "auto"


#: The mask step's thresholds and size as :class:`SegmentationParams` checks them; the viewer's
#: form takes its bounds from here too (``check_number`` keywords: ``low``, ``high``, ``integer``).
MASK_STEP_BOUNDS: dict[str, dict[str, Any]] = {
    "flow_threshold": {"low": 0, "high": 10},
    "cellprob_threshold": {"low": -8, "high": 8},
    "min_size": {"low": 0, "integer": True},
}


@dataclass(frozen=True)
class SegmentationParams(Params):
    """What :meth:`SegmentationEngine.segment` needs besides the image.

    Parameters
    ----------
    model_name : a shipped model (``None`` = the shipped default for the image: ``ezq_nuclei_v3``
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
    The backends' options, ``min_overlap_ratio`` to ``isotropic_masks``, have their defaults,
    bounds and the backends that read them declared in :data:`backend_options.BACKEND_OPTIONS`.

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
    isotropic_masks : ``true3d`` only: follow the flows on a grid whose z step is the pixel size
        (the planes resampled by the anisotropy, xy unchanged) and take the masks back to the
        stack's planes, instead of on the stack's own coarse planes, where one flow step in z
        jumps a whole plane and stacked nuclei run together; ``False`` is Cellpose's own rule.
        Costs the anisotropy's factor in the mask step's memory.
    z_trim : ``true3d`` only: the axial blur spreads a nucleus's light planes beyond its ends, and
        the network calls that light nucleus; each nucleus loses the planes at its ends whose
        mean intensity above the background (the median outside every nucleus) is below
        ``z_trim`` times that of its brightest plane (:func:`backends.trim_z_blur`); 0 keeps
        every plane.
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
    # The backends' options: default, bounds and help declared once, in backend_options.
    min_overlap_ratio: float = option_default("min_overlap_ratio")
    max_distance_z: int = option_default("max_distance_z")
    overlap_measure: str = option_default("overlap_measure")
    split_dip: float = option_default("split_dip")
    max_z_elongation: float = option_default("max_z_elongation")
    flow3d_smooth: float = option_default("flow3d_smooth")
    isotropic_masks: bool = option_default("isotropic_masks")
    z_trim: float = option_default("z_trim")
    normalize_planes: bool = True

    _what = "segmentation parameters"

    def __post_init__(self) -> None:
        from .backends import BACKENDS  # the registry imports this module

        check_name("model_name", self.model_name)
        object.__setattr__(self, "diameter", check_number("diameter", self.diameter, low=0, low_open=True,
                                                          allow_none=True))
        check_bool("do_3d", self.do_3d)
        check_choice("3D backend", self.use_3d_backend, BACKENDS)
        check_choice("restoration mode", self.restoration_mode, RESTORATION_MODES)
        if self.voxel_size is not None:
            object.__setattr__(self, "voxel_size", check_numbers("voxel_size", self.voxel_size, lengths=(3, 2),
                                                                 low=0, low_open=True))
            y, x = self.voxel_size[-2:]
            if not math.isclose(y, x, rel_tol=1e-3):
                # The network was trained on square pixels; stretching silently would change sizes.
                raise InvalidParameterError(
                    f"pixels must be square (voxel_size y == x), got y={y} x={x}; resample the image first")
        for name, bounds in MASK_STEP_BOUNDS.items():
            object.__setattr__(self, name, check_number(name, getattr(self, name), **bounds))
        check_bool("normalize_planes", self.normalize_planes)
        for option in BACKEND_OPTIONS.values():  # each backend option by its declared rule
            object.__setattr__(self, option.name, option.check(getattr(self, option.name)))

    @property
    def anisotropy(self) -> float:
        """z step over the xy pixel size (1 when unknown or 2D)."""
        if self.voxel_size is None or len(self.voxel_size) != 3:
            return 1.0
        from .anisotropy import Anisotropy3DPreprocessor  # the one formula (z over the mean of y and x)

        return Anisotropy3DPreprocessor(self.voxel_size).anisotropy


def default_restoration(ndim: int) -> str:
    """The restoration an image of ``ndim`` axes gets when none is asked for: a (Z, Y, X) stack
    :data:`DEFAULT_3D_RESTORATION`, a 2D image the guide's ``"none"`` (``SegmentationParams``')."""
    return DEFAULT_3D_RESTORATION if ndim == 3 else SegmentationParams.restoration_mode


def params_for_stack(data: dict[str, Any], *, ndim: int, voxel_size: tuple[float, ...] | None) -> dict[str, Any]:
    """``data`` with the defaults of a stored image filled in: a (Z, Y, X) stack is segmented in
    3D with :data:`DEFAULT_3D_BACKEND` and restored with :data:`DEFAULT_3D_RESTORATION`, and
    ``voxel_size`` is the image's own when not given.

    Keys present in ``data`` win; ``do_3d=False`` keeps a stack slice by slice.
    """
    out = dict(data)
    if ndim == 3:
        out.setdefault("do_3d", True)
        out.setdefault("use_3d_backend", DEFAULT_3D_BACKEND if out["do_3d"] else "slice")
        out.setdefault("restoration_mode", default_restoration(ndim))
    if voxel_size is not None and out.get("voxel_size") is None:
        out["voxel_size"] = list(voxel_size[-ndim:] if ndim == 2 else voxel_size)
    return out


def backend_catalogue() -> list[dict]:
    """Every backend of the registry as pages show it: name, summary, whether it is the stacks'
    default, and its options (``Backend.options``, from :data:`~.backend_options.BACKEND_OPTIONS`:
    kind, bounds, help and default); the default first.

    Here rather than in :mod:`backends` because it names :data:`DEFAULT_3D_BACKEND`: this module
    imports the registry (to check ``use_3d_backend``), so the registry never imports it.
    """
    from .backends import BACKENDS

    return [{"name": name, "summary": cls.summary or name, "default": name == DEFAULT_3D_BACKEND,
             "options": [option.to_dict() for option in cls.options]}
            for name, cls in sorted(BACKENDS.items(), key=lambda item: item[0] != DEFAULT_3D_BACKEND)]


def backend_options_help() -> str:
    """Each registered backend's options in one line, the stacks' default first (the API's
    description of a job's ``params``): name, rule and default (as JSON)."""
    from .backends import BACKENDS

    def listed(cls) -> str:
        return ", ".join(f"{o.name} ({o.rule}, default {json.dumps(o.default)})" for o in cls.options) or "none"

    return "; ".join(f"{name}: {listed(cls)}"
                     for name, cls in sorted(BACKENDS.items(), key=lambda item: item[0] != DEFAULT_3D_BACKEND))
