"""The segmentation engine: image in, nuclei labels and a record of how they were made out.

One call validates the image, restores it if asked, estimates the nucleus size if not given,
runs the network through the chosen 3D backend and reports progress on the way::

    engine = SegmentationEngine()
    masks, info = engine.segment_cellpose(volume, diameter=25, do_3d=True,
                                          use_3d_backend="hybrid2d3d")

``segment_cellpose`` keeps the EZQUANT guide's signature; :meth:`SegmentationEngine.segment`
takes a :class:`SegmentationParams` and also returns the flows and cell probabilities (for the
uncertainty ranking).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._validation import validate_image
from .backends import BACKENDS
from .errors import InvalidParameterError
from .modelzoo import default_model_for, load_model
from .params import RESTORATION_MODES, SegmentationParams
from .runner import CellposeRunner, ModelRunner, PlaneView

__all__ = ["MAX_PLANE_GAIN", "Cellpose3RestorationEngine", "SegmentationEngine", "SegmentationResult",
           "normalize_intensity", "plane_intensity_ranges", "validate_image"]

# How much more than the whole stack a plane is stretched at most (plane_intensity_ranges).
MAX_PLANE_GAIN = 4.0
# Pixels of a plane its range is measured on at most (a regular subsample beyond).
_PLANE_SAMPLES = 2 ** 22

Progress = Callable[[float, str], None]

# Nuclei smaller than this (pixels) or larger than this fraction of the field are implausible
# diameter estimates; the estimate is clipped into this range.
_MIN_DIAMETER = 4.0
_MAX_DIAMETER_FRACTION = 0.5
# Pixels the 3D diameter estimate segments at most (16 planes of 224 x 224).
_ESTIMATE_PIXELS = 16 * 224 * 224


def normalize_intensity(image: np.ndarray, intensity_range: Any = None) -> np.ndarray:
    """Scale so the 1st percentile is 0 and the 99th is 1, over the whole image or volume.

    Cellpose normalises each image this way; doing it once for a whole volume keeps slices
    comparable, so a nearly empty slice is not stretched until its noise looks like nuclei.
    ``intensity_range``: the (1st, 99th) percentiles to use instead of the image's own: one
    pair (a block of a larger volume, ``blockwise.intensity_range``, so every block is scaled
    alike), or one pair per plane of a (Z, Y, X) stack (:func:`plane_intensity_ranges`).
    """
    if intensity_range is None:
        intensity_range = np.percentile(image, [1.0, 99.0])
    ranges = np.asarray(intensity_range, dtype=np.float64)
    if ranges.ndim == 2:  # one (lo, hi) per plane
        if image.ndim != 3 or ranges.shape != (image.shape[0], 2):
            raise InvalidParameterError(
                f"per-plane intensity ranges must be ({image.shape[0]}, 2) for this stack, got {ranges.shape}")
        lo, hi = ranges[:, 0].reshape(-1, 1, 1), ranges[:, 1].reshape(-1, 1, 1)
        return ((image - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)
    lo, hi = float(ranges[0]), float(ranges[1])
    if hi - lo < 1e-6:
        hi = lo + max(float(np.abs(image).max() - lo), 1e-6)
    return ((image - lo) / (hi - lo)).astype(np.float32)


def plane_intensity_ranges(volume: Any, intensity_range: tuple[float, float] | None = None) -> np.ndarray:
    """Each plane's own (1st, 99th) percentiles, for a (Z, Y, X) stack: ``(Z, 2)``.

    Real stacks lose signal with depth and flicker from plane to plane; scaling each plane by its
    own range gives the network every plane at the contrast it was trained on. A plane whose
    range is narrower than 1/``MAX_PLANE_GAIN`` of the whole stack's (``intensity_range``, or
    the stack's own) is not stretched further, so an empty plane's noise never looks like
    nuclei. Reads one plane at a time (works on a Zarr array too); a plane of more than 4 Mpixel
    is measured on a regular subsample of its pixels.
    """
    nz, ny, nx = volume.shape
    step = max(1, int(np.ceil(np.sqrt(ny * nx / _PLANE_SAMPLES))))  # a regular subsample of a huge plane
    planes = np.array([np.percentile(np.asarray(volume[z])[::step, ::step].astype(np.float64), [1.0, 99.0])
                       for z in range(nz)])
    if intensity_range is None:
        intensity_range = np.percentile(np.asarray(volume), [1.0, 99.0])
    lo, hi = float(intensity_range[0]), float(intensity_range[1])
    least = max(hi - lo, 1e-6) / MAX_PLANE_GAIN
    planes[:, 1] = np.maximum(planes[:, 1], planes[:, 0] + least)
    return planes


def _stack_ranges(data: np.ndarray, params: SegmentationParams) -> np.ndarray | None:
    """Per-plane intensity ranges when ``params`` asks for them and ``data`` is a stack."""
    if data.ndim == 3 and data.shape[0] > 1 and params.normalize_planes:
        return plane_intensity_ranges(data)
    return None


def _median_diameter(labels: np.ndarray) -> tuple[float, int]:
    """Median equivalent-circle diameter of the objects in a 2D label image, and their count."""
    counts = np.bincount(labels.ravel())[1:]
    counts = counts[counts > 0]
    if counts.size == 0:
        return 0.0, 0
    return float(np.median(2.0 * np.sqrt(counts / np.pi))), int(counts.size)


def _estimate_diameter(runner: ModelRunner, volume: np.ndarray, progress: Progress,
                       anisotropy: float = 1.0) -> tuple[float, dict[str, Any]]:
    """Estimate the nucleus diameter (pixels, xy) from the image itself.

    Pass 1 runs the network at its own scale (``diam_mean``) on up to three planes; the median
    size of what it finds sets the scale of pass 2. Two passes matter: nuclei far from the
    network's scale are under-segmented at first, and the second pass, at roughly the right
    scale, measures them properly. Planes are the middle one and two at a quarter from each
    end; a plane larger than 768x768 is cropped to its centre.

    In 2D (``method="median_section"``) pass 2 runs on the same planes and its median is the
    estimate. A plane through a stack cuts most nuclei off their equator, so in 3D the median
    section is smaller than the nucleus; there (``method="largest_section_3d"``), pass 2
    segments a run of consecutive planes around the middle (at least enough for three nuclei
    along z, and as many as 16 planes of 224x224 pixels cost, in a centre crop of at most
    224x224), links them into 3D objects and takes the median over objects of the diameter of
    each one's largest section, leaving out objects cut by the run's first or last plane or the
    crop's border when at least eight others remain.
    """
    nz = volume.shape[0]
    planes = sorted({nz // 2, nz // 4, (3 * nz) // 4}) if nz > 2 else list(range(nz))
    crops = [_centre_crop(volume[z], 768) for z in planes]
    estimate = runner.model.diam_mean
    passes = []
    upper = _MAX_DIAMETER_FRACTION * min(volume.shape[-2:])
    steps = 1 if nz >= 3 else 2
    for step in range(steps):
        progress(step / 2, f"estimating nucleus size (pass {step + 1}/2)")
        sizes, counts = [], 0
        for crop in crops:
            labels, _, _ = runner.eval_2d(crop, diameter=estimate)
            d, n = _median_diameter(labels)
            if n:
                sizes.append(d)
                counts += n
        if not sizes:
            break
        estimate = float(np.clip(np.median(sizes), _MIN_DIAMETER, upper))
        passes.append({"diameter": round(estimate, 2), "objects": counts})
    if nz < 3:
        return estimate, {"method": "median_section", "passes": passes, "planes": planes}
    if not passes:
        return estimate, {"method": "largest_section_3d", "passes": passes, "planes": planes}
    progress(0.5, "estimating nucleus size in 3D (pass 2/2)")
    crop_area = float(np.prod([min(n, 224) for n in volume.shape[-2:]]))
    budget = max(16, int(_ESTIMATE_PIXELS // crop_area))  # planes that cost what 16 full crops cost
    run = int(np.clip(max(np.ceil(3 * estimate / max(anisotropy, 1e-6)), budget), 3, nz))
    z0 = max(0, nz // 2 - run // 2)
    stack = np.stack([_centre_crop(volume[z], 224) for z in range(z0, z0 + run)])
    sections = np.zeros(stack.shape, np.uint32)
    for i, plane in enumerate(stack):
        progress(0.5 + 0.5 * i / run, "estimating nucleus size in 3D (pass 2/2)")
        sections[i] = runner.eval_2d(plane, diameter=estimate)[0]
    from .linking import link_slices  # lazy: only 3D estimates link

    objects = link_slices(sections, anisotropy=anisotropy)
    diameters, whole = _largest_sections(objects)
    chosen = diameters[whole] if whole.sum() >= 8 else diameters
    if chosen.size:
        estimate = float(np.clip(np.median(chosen), _MIN_DIAMETER, upper))
    passes.append({"diameter": round(estimate, 2), "objects": int(diameters.size),
                   "whole_objects": int(whole.sum())})
    return estimate, {"method": "largest_section_3d", "passes": passes, "planes": planes,
                      "run": [z0, z0 + run]}


def _centre_crop(plane: np.ndarray, size: int) -> np.ndarray:
    ys, xs = [max(0, (n - size) // 2) for n in plane.shape]
    return plane[ys:ys + size, xs:xs + size]


def _largest_sections(objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per 3D object of a (Z, Y, X) label image: the equivalent-circle diameter of its largest
    section, and whether it touches none of the block's six faces."""
    n = int(objects.max())
    if n == 0:
        return np.zeros(0), np.zeros(0, bool)
    areas = np.stack([np.bincount(plane.ravel(), minlength=n + 1) for plane in objects])
    largest = areas.max(axis=0)[1:]
    touching = np.zeros(n + 1, bool)
    for face in (objects[0], objects[-1], objects[:, 0], objects[:, -1], objects[:, :, 0], objects[:, :, -1]):
        touching[np.unique(face)] = True
    present = largest > 0
    diameters = 2.0 * np.sqrt(largest / np.pi)
    return diameters[present], ~touching[1:][present]


@dataclass
class SegmentationResult:
    """Everything one segmentation produced.

    Attributes
    ----------
    labels : (Y, X) or (Z, Y, X) uint32, 0 = background; the shape of the input.
    info : JSON-serialisable record (see :meth:`SegmentationEngine.segment`).
    flows : (2, Y, X) for 2D; (2, Z, Y, X) for slice backends or (3, Z, Y, X) for true3d.
    cellprob : same spatial shape as ``labels``, the network's cell-probability logits.
    """

    labels: np.ndarray
    info: dict[str, Any]
    flows: np.ndarray
    cellprob: np.ndarray
    params: SegmentationParams = field(default_factory=SegmentationParams)

    def uncertainty(self, params: Any = None) -> Any:
        """Per-nucleus uncertainty of these labels (:class:`uncertainty.NucleusUncertainty`)."""
        from .uncertainty import UncertaintyEstimator

        return UncertaintyEstimator(params).estimate(self.labels, self.flows, self.cellprob)


def _null_progress(fraction: float, message: str) -> None:
    return None


def _stage(progress: Progress, start: float, end: float) -> Progress:
    """A callback that maps a stage's 0..1 into the overall ``start..end``."""
    def report(fraction: float, message: str) -> None:
        progress(start + (end - start) * min(max(float(fraction), 0.0), 1.0), message)
    return report


class SegmentationEngine:
    """Segment nuclei in 2D images and 3D volumes with a Cellpose network.

    Parameters
    ----------
    gpu_available : use a GPU when torch sees one (CUDA or Apple MPS); the CPU otherwise.

    Models are loaded once per process and shared between engines.
    """

    def __init__(self, gpu_available: bool = False):
        self.gpu_available = bool(gpu_available)

    def segment_cellpose(self, image: Any, model_name: str | None = None, diameter: float | None = None,
                         do_3d: bool = False, use_3d_backend: str = "slice", restoration_mode: str = "none",
                         progress: Progress | None = None, **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Segment ``image`` and return ``(masks, info)``, as in the EZQUANT guide.

        ``options`` are the other fields of :class:`SegmentationParams` (``voxel_size``,
        ``flow_threshold``, ``cellprob_threshold``, ``min_size``, ``min_overlap_ratio``,
        ``max_distance_z``).
        """
        try:
            params = SegmentationParams(model_name=model_name, diameter=diameter, do_3d=do_3d,
                                        use_3d_backend=use_3d_backend, restoration_mode=restoration_mode,
                                        **options)
        except TypeError as exc:  # an unknown keyword
            raise InvalidParameterError(str(exc).split(") ")[-1]) from exc
        result = self.segment(image, params, progress=progress)
        return result.labels, result.info

    def estimate_diameter(self, image: Any, params: SegmentationParams | None = None,
                          progress: Progress | None = None) -> tuple[float, dict[str, Any]]:
        """The nucleus diameter (xy pixels) :meth:`segment` would estimate for ``image``, and how
        it was found (``method``: ``"median_section"`` in 2D, ``"largest_section_3d"`` for a
        stack; ``passes``). Restoration is not applied."""
        params = params or SegmentationParams()
        data = validate_image(image)
        model = load_model(params.model_name or default_model_for(data.shape), gpu=self.gpu_available)
        volume = normalize_intensity(data, _stack_ranges(data, params))
        if volume.ndim == 2:
            volume = volume[np.newaxis]
        runner = CellposeRunner(model, params, diameter=model.diam_mean)
        return _estimate_diameter(runner, volume, progress or _null_progress, anisotropy=params.anisotropy)

    def segment(self, image: Any, params: SegmentationParams | None = None,
                progress: Progress | None = None,
                intensity_range: tuple[float, float] | None = None,
                view: PlaneView | None = None) -> SegmentationResult:
        """Segment ``image`` with ``params``.

        Parameters
        ----------
        image : (Y, X) or (Z, Y, X) array of any real dtype; never modified.
        params : what to run; defaults to ``SegmentationParams()``.
        progress : called as ``progress(fraction, message)`` with fraction rising 0..1. An
            exception it raises (a cancelled job) stops the run and propagates.
        intensity_range : the (1st, 99th) percentiles to normalise with instead of the image's
            own: a block of a larger volume (:mod:`blockwise`).
        view : where the planes of ``image`` lie in a larger image's, and the window of them to
            segment (:class:`runner.PlaneView`; a block of a volume, with ``diameter`` given):
            the network sees the window in the whole plane's tiles, and the labels, flows and
            probabilities are the window's (none, zeros and background around it). Plane by
            plane backends only (``true3d`` ignores it).

        Returns
        -------
        SegmentationResult
            ``info`` holds ``nucleus_count``, ``backend``, ``model`` (name, kind, version,
            sha256, path), ``diameter`` and whether it was ``diameter_estimated``, ``timings``
            (seconds per stage), ``params``, ``shape``, ``device``; and, when restoration ran,
            ``restoration_mode`` (what was applied), ``restoration_requested``, ``restoration_method``
            and ``restoration_metrics``.
        """
        params = params or SegmentationParams()
        report = progress or _null_progress
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        info: dict[str, Any] = {}
        data = _checked_input(image, params)
        is_volume = data.ndim == 3
        backend_name = params.use_3d_backend if (is_volume and params.do_3d) else ("slice" if is_volume else "2d")

        report(0.0, "loading model")
        t = time.perf_counter()
        # No model named: the shipped default for this kind of image (a stack or a 2D image).
        model = load_model(params.model_name or default_model_for(data.shape), gpu=self.gpu_available)
        timings["load_model"] = time.perf_counter() - t

        if params.restoration_mode != "none":
            data = _restored(data, params, report, timings, info)
        volume = normalize_intensity(data, _stack_ranges(data, params) if intensity_range is None else intensity_range)
        if not is_volume:
            volume = volume[np.newaxis]

        if view is not None and params.diameter is None:
            raise InvalidParameterError("a view of a larger plane needs the diameter: the whole plane's tiles "
                                        "depend on it, so it cannot be estimated on the view")
        runner = CellposeRunner(model, params, diameter=params.diameter or model.diam_mean, view=view)
        if params.diameter is None:
            _estimate_runner_diameter(runner, volume, params, report, timings, info)
        labels, flows, cellprob = _run_backend(backend_name, runner, volume, params, report, timings)
        timings["total"] = time.perf_counter() - t_start

        count = int(np.count_nonzero(np.unique(labels)))
        info.update(_run_info(count=count, backend_name=backend_name, data=data, params=params, model=model,
                              runner=runner, timings=timings))
        report(1.0, f"done: {count} nuclei")
        return SegmentationResult(labels=labels.astype(np.uint32, copy=False), info=info, flows=flows,
                                  cellprob=cellprob, params=params)


# -- the steps of SegmentationEngine.segment ---------------------------------------------------


def _checked_input(image: Any, params: SegmentationParams) -> np.ndarray:
    """The image as float32 (:func:`validate_image`), its voxel size matching its axes."""
    data = validate_image(image)
    if params.voxel_size is not None and len(params.voxel_size) != data.ndim:
        raise InvalidParameterError(f"voxel_size has {len(params.voxel_size)} values for a {data.ndim}D image")
    return data


def _restored(data: np.ndarray, params: SegmentationParams, report: Progress, timings: dict, info: dict) -> np.ndarray:
    """``data`` restored as ``params.restoration_mode`` asks; what was applied goes to ``info``."""
    from .restoration import restore  # lazy: keeps import of the engine light

    t = time.perf_counter()
    report(0.02, "measuring image quality")
    data, restoration = restore(data, params.restoration_mode)
    timings["restoration"] = time.perf_counter() - t
    info.update({
        "restoration_requested": params.restoration_mode,
        "restoration_mode": restoration["applied"],
        "restoration_method": restoration.get("method"),
        "restoration_metrics": restoration["restoration_metrics"],
    })
    return data


def _estimate_runner_diameter(runner: CellposeRunner, volume: np.ndarray, params: SegmentationParams,
                              report: Progress, timings: dict, info: dict) -> None:
    """Set ``runner.diameter`` from the image (no diameter given); how, in ``info``."""
    t = time.perf_counter()
    runner.diameter, info["diameter_estimation"] = _estimate_diameter(runner, volume, _stage(report, 0.05, 0.2),
                                                                      anisotropy=params.anisotropy)
    timings["diameter_estimation"] = time.perf_counter() - t


def _run_backend(backend_name: str, runner: CellposeRunner, volume: np.ndarray, params: SegmentationParams,
                 report: Progress, timings: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels, flows, cellprob)`` of the normalised (Z, Y, X) ``volume``: the network on the one
    plane of a 2D image, else the registered backend."""
    t = time.perf_counter()
    stage = _stage(report, 0.2 if params.diameter is None else 0.05, 0.98)
    if backend_name == "2d":
        stage(0.0, "segmenting")
        labels, flows, cellprob = runner.eval_2d(volume[0])
    else:
        out = BACKENDS[backend_name].from_params(params).segment(volume, runner, params, stage)
        labels, flows, cellprob = out.labels, out.flows, out.cellprob
    timings["segmentation"] = time.perf_counter() - t
    return labels, flows, cellprob


def _run_info(*, count: int, backend_name: str, data: np.ndarray, params: SegmentationParams, model: Any,
              runner: CellposeRunner, timings: dict) -> dict[str, Any]:
    """What a result says about its run (``SegmentationResult.info`` beside restoration's)."""
    return {
        "nucleus_count": count,
        "backend": backend_name,
        "do_3d": bool(data.ndim == 3 and params.do_3d),
        "shape": list(data.shape),
        "model": model.describe(),
        "device": str(next(model.cellpose_model.net.parameters()).device),
        "diameter": round(float(runner.diameter), 3),
        "diameter_estimated": params.diameter is None,
        "params": params.to_dict(),
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }


class Cellpose3RestorationEngine:
    """Segment with restoration first, as in the EZQUANT guide.

    A thin convenience over :class:`SegmentationEngine`, which itself restores the image (with
    :func:`restoration.restore`) before running the network when ``restoration_mode`` is not
    ``"none"``.

    Parameters
    ----------
    gpu_available : use a GPU when torch sees one.
    engine : a ``SegmentationEngine`` to delegate to; by default a new one with ``gpu_available``.

    Examples
    --------
    As in the guide (runs the default model)::

        engine = Cellpose3RestorationEngine(gpu_available=False)
        masks, info = engine.segment_with_restoration(image, restoration_mode="auto", diameter=30)
        print(info["restoration_metrics"]["snr"], info["restoration_metrics"]["blur_score"])
        print(info["restoration_mode"])  # what auto applied: none, denoise or deblur
    """

    def __init__(self, gpu_available: bool = False, engine: Any = None):
        self.gpu_available = bool(gpu_available)
        self._engine = engine

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = SegmentationEngine(gpu_available=self.gpu_available)
        return self._engine

    def segment_with_restoration(self, image: Any, model_name: str | None = None, restoration_mode: str = "auto",
                                 diameter: float | None = None, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Restore (per ``restoration_mode``) and segment ``image``; return ``(masks, info)``.

        ``info`` is the engine's, with ``restoration_metrics`` (including the guide's ``snr``
        and ``blur_score``) always present: measured here when the mode is ``"none"``, for which
        the engine measures nothing. ``info["restoration_mode"]`` is the mode applied and
        ``info["restoration_requested"]`` the one asked for. ``kwargs`` go to
        ``SegmentationEngine.segment_cellpose`` (``do_3d``, ``use_3d_backend``, ``voxel_size``...).
        """
        if not isinstance(restoration_mode, str) or restoration_mode not in RESTORATION_MODES:
            raise InvalidParameterError(
                f"unknown restoration mode {restoration_mode!r}; choose one of {', '.join(RESTORATION_MODES)}")
        masks, info = self.engine.segment_cellpose(image, model_name=model_name, diameter=diameter,
                                                   restoration_mode=restoration_mode, **kwargs)
        if "restoration_metrics" not in info:
            from .restoration import measure_image_quality  # lazy, as in SegmentationEngine.segment

            info = {**info, "restoration_requested": restoration_mode, "restoration_mode": "none",
                    "restoration_method": "none", "restoration_metrics": measure_image_quality(image)}
        return masks, info
