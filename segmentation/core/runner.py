"""What a backend runs the network through: the :class:`ModelRunner` protocol and its Cellpose runner.

The engine loads a model and hands the 3D backends (:mod:`backends`) and the adapters' evaluation
(:mod:`adapter.evaluation`) a runner: the network with the run's thresholds and nucleus
diameter fixed, answering two questions, "segment this plane" and "segment this volume". A
backend never sees Cellpose itself, so a test (or another network) can stand in for it with any
object that has these two methods::

    class Blobs:                                   # a ModelRunner that thresholds
        diameter = 10.0

        def eval_2d(self, image, diameter=None):
            labels = skimage.measure.label(image > 0.5).astype(np.uint32)
            return labels, np.zeros((2, *image.shape), np.float32), image.astype(np.float32)

        def eval_3d(self, volume, anisotropy):
            labels = skimage.measure.label(volume > 0.5).astype(np.uint32)
            return labels, np.zeros((3, *volume.shape), np.float32), volume.astype(np.float32)

A block of a larger image (:mod:`blockwise`) is given a :class:`PlaneView`: where its planes lie in
the whole image's planes. The network then sees each pixel of the block's window in the very
tiles, resampled and padded alike, that Cellpose's tiling of the whole plane puts it in
(:func:`tile_context` says how much image around the window those tiles read), so a block's
flows and probabilities are the whole run's there (Cellpose's network is not shift-invariant:
each 224-pixel tile pools its own style vector, and a tile's edges are tapered).

This module imports nothing but numpy when it is imported, so the backends can depend on it and the
engine on them without a cycle.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # annotations only: params and modelzoo sit above this module
    from .modelzoo import LoadedModel
    from .params import SegmentationParams

__all__ = ["CellposeRunner", "ModelRunner", "PlaneView", "tile_context"]

# Cellpose's tiling of a plane (CellposeModel.eval's defaults, which the runner keeps).
_TILE = 224
_TILE_OVERLAP = 0.1
_TILES_AT_ONCE = 8  # the batch size Cellpose runs tiles in
# Cell-probability logit given outside a view's window (no nuclei are looked for there).
_OUTSIDE_LOGIT = -20.0


@runtime_checkable
class ModelRunner(Protocol):
    """A network with fixed thresholds, as the backends call it.

    Attributes
    ----------
    diameter : float
        The nucleus diameter (xy pixels) the network is run at when a call names none.
    """

    diameter: float

    def eval_2d(self, image: np.ndarray, diameter: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment one normalised (Y, X) plane.

        Returns ``(labels (Y, X) uint32 with 0 = background, flows (2, Y, X) float32 (dy, dx),
        cellprob (Y, X) float32 logits)``; ``diameter`` overrides :attr:`diameter` for this call.
        """
        ...

    def eval_3d(self, volume: np.ndarray, anisotropy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment one normalised (Z, Y, X) volume in 3D; ``anisotropy`` is the z step over the xy
        pixel size.

        Returns ``(labels (Z, Y, X) uint32, flows (3, Z, Y, X) float32 (dz, dy, dx), cellprob
        (Z, Y, X) float32)``.
        """
        ...


@dataclass(frozen=True)
class PlaneView:
    """Where the planes a runner is given lie in a larger image's planes (a block of a volume).

    Attributes
    ----------
    plane_shape : (Ly, Lx) of the whole image's planes.
    origin : (y, x) of the given planes' first pixel in the whole plane.
    window : ((y0, y1), (x0, x1)), the part of the given planes to segment, in their own
        pixels; the rest is context the network's tiles read (:func:`tile_context`).
    """

    plane_shape: tuple[int, int]
    origin: tuple[int, int]
    window: tuple[tuple[int, int], tuple[int, int]]

    def __post_init__(self) -> None:
        for (lo, hi), o, size in zip(self.window, self.origin, self.plane_shape, strict=True):
            if not (0 <= lo < hi and o >= 0 and o + hi <= size):
                raise ValueError(f"window {self.window} at {self.origin} does not lie in planes of {self.plane_shape}")


def _cv2_scale(src: int, dst: int) -> float:
    """The source step of one destination pixel in OpenCV's ``resize`` (``1 / (dst / src)``)."""
    return 1.0 / (dst / src)


def _linear_taps(start: int, stop: int, src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's INTER_LINEAR taps for destination pixels ``start..stop`` of a ``src -> dst``
    resize: the first source index of each and the weight of the next (float32), clamped at
    the ends as OpenCV clamps them."""
    f = ((np.arange(start, stop) + 0.5) * _cv2_scale(src, dst) - 0.5).astype(np.float32)
    index = np.floor(f).astype(np.int64)
    frac = (f - index.astype(np.float32)).astype(np.float32)
    low, high = index < 0, index >= src - 1
    frac[low | high] = 0.0
    index[low] = 0
    index[high] = src - 1
    return index, frac


def _source_span(start: int, stop: int, src: int, dst: int) -> tuple[int, int]:
    """The source pixels ``[lo, hi)`` a linear ``src -> dst`` resize reads for destination
    pixels ``start..stop``."""
    index, _ = _linear_taps(start, stop, src, dst)
    return int(index.min()), int(min(src, index.max() + 2))


def _resample_axis(data: np.ndarray, axis: int, start: int, stop: int, src: int, dst: int, offset: int) -> np.ndarray:
    """Destination pixels ``start..stop`` (whole-image coordinates) of a linear ``src -> dst``
    resize along ``axis``, from ``data`` whose first pixel on that axis is source pixel
    ``offset``: what ``cv2.resize`` of the whole image gives there (float32 arithmetic)."""
    index, frac = _linear_taps(start, stop, src, dst)
    nxt = np.minimum(index + 1, src - 1)
    shape = [1] * data.ndim
    shape[axis] = frac.size
    w1 = frac.reshape(shape)
    w0 = (np.float32(1.0) - frac).reshape(shape)
    a = np.take(data, index - offset, axis=axis)
    b = np.take(data, nxt - offset, axis=axis)
    return (a * w0 + b * w1).astype(np.float32)


def _axis_tiling(length: int, start: int, stop: int, rescale: float | None) -> dict[str, Any]:
    """Cellpose's tiling of one axis of a whole plane of ``length`` pixels, and what the window
    ``start..stop`` of it needs: the resized length and the padding before it, the tile size,
    the tiles covering the window (their starts, in padded pixels), the resized pixels the
    window is interpolated from, the resized and original pixels those tiles read."""
    resized = int(length * rescale) if rescale is not None else length
    pad = int(16 * np.ceil(resized / 16) - resized)
    before, after = 8 + pad // 2, 8 + pad - pad // 2  # cellpose's get_pad_yx(div=16, extra=1)
    padded = resized + before + after
    count = 1 if padded <= _TILE else int(np.ceil((1.0 + 2 * _TILE_OVERLAP) * padded / _TILE))
    size = min(_TILE, padded)
    starts = np.linspace(0, padded - size, count).astype(int)
    need = _source_span(start, stop, resized, length) if rescale is not None else (start, stop)
    tiles = [int(t) for t in starts if t < need[1] + before and t + size > need[0] + before]
    read = (max(0, tiles[0] - before), min(resized, tiles[-1] + size - before))
    original = _source_span(*read, length, resized) if rescale is not None else read
    return {"resized": resized, "before": before, "size": size, "tiles": tiles, "need": need, "read": read,
            "original": original}


def _rescale_of(diam_mean: float, diameter: float) -> float | None:
    """Cellpose's resize factor for a diameter, ``None`` where it does not resize."""
    rescale = float(diam_mean) / float(diameter)
    return None if rescale == 1.0 else rescale


def tile_context(plane_shape: tuple[int, int], window: tuple[tuple[int, int], tuple[int, int]], *,
                 diam_mean: float, diameter: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """The pixels ``((y0, y1), (x0, x1))`` of a whole plane that the network's tiles covering
    ``window`` (whole-plane pixels) read, run at ``diameter`` by a network of ``diam_mean``:
    what a block must hold around its window for its flows there to be the whole plane's.
    It reaches at most one tile (``224 * diameter / diam_mean`` pixels, and 2 more) past the window.

    Examples
    --------
    >>> tile_context((512, 512), ((200, 300), (0, 100)), diam_mean=17.0, diameter=17.0)
    ((0, 512), (0, 216))
    """
    rescale = _rescale_of(diam_mean, diameter)
    return tuple(_axis_tiling(n, lo, hi, rescale)["original"]
                 for n, (lo, hi) in zip(plane_shape, window, strict=True))


def tile_reach(*, diam_mean: float, diameter: float) -> int:
    """The most pixels :func:`tile_context` reaches past a window on one side."""
    return math.ceil(_TILE * float(diameter) / float(diam_mean)) + 2


class CellposeRunner:
    """Runs one loaded Cellpose model with the thresholds of ``params``: the engine's :class:`ModelRunner`.

    Parameters
    ----------
    model : LoadedModel
        From :func:`modelzoo.load_model`.
    params : SegmentationParams
        ``flow_threshold``, ``cellprob_threshold``, ``min_size``, ``flow3d_smooth`` and
        ``isotropic_masks`` are read.
    diameter : float
        The nucleus diameter (xy pixels) to run at; the engine sets it after estimating it.
    view : PlaneView, optional
        The planes are part of a larger image's: :meth:`eval_2d` (at :attr:`diameter`) runs
        the network on the whole plane's tiles and segments the view's window only (no
        nuclei, zero flows outside it).
    """

    def __init__(self, model: LoadedModel, params: SegmentationParams, diameter: float,
                 view: PlaneView | None = None):
        self.model = model
        self.params = params
        self.diameter = diameter
        self.view = view

    def _eval(self, image: np.ndarray, diameter: float, **kwargs: Any):
        with warnings.catch_warnings():
            # cellpose builds a sparse tensor in its mask step; torch warns about it on every call.
            warnings.filterwarnings("ignore", message="Sparse invariant checks", category=UserWarning)
            return self.model.cellpose_model.eval(
                image, channels=[0, 0], diameter=diameter, normalize=False,
                flow_threshold=self.params.flow_threshold, cellprob_threshold=self.params.cellprob_threshold,
                min_size=self.params.min_size, **kwargs)

    def eval_2d(self, image: np.ndarray, diameter: float | None = None):
        if self.view is not None and diameter is None:
            return self._eval_2d_in_view(image, self.view)
        masks, flows, _ = self._eval(image, diameter or self.diameter)
        return masks.astype(np.uint32), flows[1].astype(np.float32), flows[2].astype(np.float32)

    def _eval_2d_in_view(self, image: np.ndarray, view: PlaneView):
        """:meth:`eval_2d` of a part of a larger plane: Cellpose's ``eval`` of the whole plane,
        step for step, on the tiles covering the window (resize by the diameter, zero padding
        to a multiple of 16, 224-pixel tiles spread evenly over the padded plane, tapered and
        averaged, resized back, masks followed from the flows), so the window gets the whole
        plane's flows and probabilities; its masks are followed within the window."""
        from cellpose import core, dynamics, transforms  # lazy, as everywhere in the core

        cp = self.model.cellpose_model
        rescale = _rescale_of(cp.diam_mean, self.diameter)
        window = tuple((lo + o, hi + o) for (lo, hi), o in zip(view.window, view.origin, strict=True))
        axes = [_axis_tiling(n, lo, hi, rescale) for n, (lo, hi) in zip(view.plane_shape, window, strict=True)]
        for plan, o, n in zip(axes, view.origin, image.shape, strict=True):
            if plan["original"][0] < o or plan["original"][1] > o + n:
                raise ValueError(f"the plane given ({image.shape} at {view.origin}) does not hold the network's "
                                 f"tiles around the window {view.window}: see tile_context")
        x = transforms.convert_image(image, [0, 0], channel_axis=None, z_axis=None, do_3D=False, nchan=cp.nchan)
        x = x.astype(np.float32, copy=False)  # (Y, X, C): the plane as the network takes it
        for axis, (plan, o, n) in enumerate(zip(axes, view.origin, view.plane_shape, strict=True)):
            lo, hi = plan["read"]
            if rescale is None:
                x = np.take(x, np.arange(lo, hi) - o, axis=axis)
            else:
                x = _resample_axis(x, axis, lo, hi, n, plan["resized"], o)
        (ty, tx) = (plan["tiles"] for plan in axes)
        ly, lx = axes[0]["size"], axes[1]["size"]
        # The padded plane's pixels from the first tile's start to the last one's end.
        y0, x0 = ty[0], tx[0]
        span = (ty[-1] + ly - y0, tx[-1] + lx - x0)
        padded = np.zeros((x.shape[2], *span), np.float32)
        ry, rx = (plan["read"][0] + plan["before"] - t for plan, t in zip(axes, (y0, x0), strict=True))
        padded[:, ry:ry + x.shape[0], rx:rx + x.shape[1]] = x.transpose(2, 0, 1)
        boxes = [(j - y0, i - x0) for j in ty for i in tx]  # the order cellpose averages them in
        tiles = np.stack([padded[:, j:j + ly, i:i + lx] for j, i in boxes])
        out = np.concatenate([core._forward(cp.net, tiles[k:k + _TILES_AT_ONCE])[0]
                              for k in range(0, len(tiles), _TILES_AT_ONCE)])
        # transforms.average_tiles over these tiles alone: every tile covering a pixel of the
        # window is among them, added in the whole plane's order.
        mask = transforms._taper_mask(ly=ly, lx=lx)
        total = np.zeros((out.shape[1], *span), np.float32)
        weight = np.zeros(span)
        for (j, i), y in zip(boxes, out, strict=True):
            total[:, j:j + ly, i:i + lx] += y * mask
            weight[j:j + ly, i:i + lx] += mask
        with np.errstate(divide="ignore", invalid="ignore"):  # pixels no tile covers: outside the need
            total /= weight
        # The resized pixels the window is interpolated from, then the window at the plane's scale.
        (ny0, ny1), (nx0, nx1) = (plan["need"] for plan in axes)
        yf = total[:, ny0 + axes[0]["before"] - y0:ny1 + axes[0]["before"] - y0,
                   nx0 + axes[1]["before"] - x0:nx1 + axes[1]["before"] - x0]
        if rescale is not None:
            yf = _resample_axis(yf, 1, *window[0], axes[0]["resized"], view.plane_shape[0], ny0)
            yf = _resample_axis(yf, 2, *window[1], axes[1]["resized"], view.plane_shape[1], nx0)
        dp, prob = np.ascontiguousarray(yf[:2]), np.ascontiguousarray(yf[2])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse invariant checks", category=UserWarning)
            masks = dynamics.resize_and_compute_masks(
                dp, prob, niter=1 / (rescale or 1.0) * 200, cellprob_threshold=self.params.cellprob_threshold,
                flow_threshold=self.params.flow_threshold, interp=True, resize=None, min_size=self.params.min_size,
                max_size_fraction=0.4, device=cp.device)
        (wy0, wy1), (wx0, wx1) = view.window
        labels = np.zeros(image.shape, np.uint32)
        flows = np.zeros((2, *image.shape), np.float32)
        cellprob = np.full(image.shape, _OUTSIDE_LOGIT, np.float32)
        labels[wy0:wy1, wx0:wx1] = masks
        flows[:, wy0:wy1, wx0:wx1] = dp
        cellprob[wy0:wy1, wx0:wx1] = prob
        return labels, flows, cellprob

    def eval_3d(self, volume: np.ndarray, anisotropy: float):
        if self.params.isotropic_masks and anisotropy > 1.0 and volume.shape[0] > 1:
            return self._eval_3d_isotropic(volume, anisotropy)
        masks, flows, _ = self._eval(volume, self.diameter, do_3D=True, z_axis=0,
                                     anisotropy=anisotropy if anisotropy != 1.0 else None,
                                     flow3D_smooth=self.params.flow3d_smooth)
        return masks.astype(np.uint32), flows[1].astype(np.float32), flows[2].astype(np.float32)

    def _eval_3d_isotropic(self, volume: np.ndarray, anisotropy: float):
        """Cellpose's 3D flows, followed on planes one pixel apart (see ``isotropic_masks``).

        The network runs as in Cellpose's ``do_3D`` (planes stretched by the anisotropy, xy
        scaled to its nucleus size; the flows smoothed there by ``flow3d_smooth``); its output is
        resampled to the stack's xy pixels and ``round(nz * anisotropy)`` planes, the masks are
        followed there with Cellpose's dynamics and each of the stack's planes takes the
        stretched plane at its centre (:func:`masks_on_stretched_planes`).
        """
        _, flows, _ = self._eval(volume, self.diameter, do_3D=True, z_axis=0, anisotropy=anisotropy,
                                 flow3D_smooth=self.params.flow3d_smooth, resample=False, compute_masks=False)
        net = np.concatenate([flows[1], flows[2][None]]).astype(np.float32)  # (4, Z', Y', X') at the network's scale
        del flows
        cp = self.model.cellpose_model
        rescale = float(cp.diam_mean) / float(self.diameter)
        return masks_on_stretched_planes(net, volume.shape, anisotropy, rescale=rescale, params=self.params,
                                         device=cp.device)


def masks_on_stretched_planes(net: np.ndarray, shape: tuple[int, int, int], anisotropy: float, *, rescale: float,
                              params: SegmentationParams, device: Any = None):
    """Masks, flows and probabilities of a stack of ``shape`` from the network's 3D output ``net``
    ((dz, dy, dx, cellprob), Z', Y', X') at its own scale: see ``isotropic_masks``.

    The output is resampled to the stack's xy pixels and ``round(nz * anisotropy)`` planes,
    Cellpose's dynamics follow the flows there (``200 / rescale`` steps, its number at the
    stack's scale), and each of the stack's planes takes the stretched plane at its centre
    (plane ``i`` spans stretched planes ``i * a`` to ``(i + 1) * a``); masks smaller than
    ``min_size`` voxels of the stack are then removed and holes filled, as Cellpose does.
    """
    from cellpose import dynamics, utils  # lazy, as everywhere in the core

    nz, ny, nx = shape
    depth = max(nz, int(round(nz * anisotropy)))
    stretched = _resample(net, (depth, ny, nx))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse invariant checks", category=UserWarning)
        masks = dynamics.compute_masks(stretched[:3], stretched[3], niter=int(200 / rescale),
                                       cellprob_threshold=params.cellprob_threshold,
                                       flow_threshold=params.flow_threshold, do_3D=True,
                                       **({} if device is None else {"device": device}))
    centres = np.minimum(((np.arange(nz) + 0.5) * depth / nz).astype(int), depth - 1)
    masks = np.ascontiguousarray(np.asarray(masks)[centres])
    masks = utils.fill_holes_and_remove_small_masks(masks, min_size=params.min_size)
    out = _resample(stretched, (nz, ny, nx))
    return masks.astype(np.uint32), out[:3], out[3]


def _resample(channels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(C, Z, Y, X) float32 resampled linearly to (C, *shape), with Cellpose's image resizer."""
    from cellpose import transforms

    lz, ly, lx = shape
    yf = channels.transpose(1, 2, 3, 0)  # (Z, Y, X, C), the layout cellpose resizes
    if yf.shape[1:3] != (ly, lx):
        yf = transforms.resize_image(yf, Ly=ly, Lx=lx)
    if yf.shape[0] != lz:
        yf = transforms.resize_image(yf.transpose(1, 0, 2, 3), Ly=lz, Lx=lx).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(yf.transpose(3, 0, 1, 2), dtype=np.float32)
