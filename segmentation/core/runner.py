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

This module imports nothing but numpy when it is imported, so the backends can depend on it and the
engine on them without a cycle.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # annotations only: params and modelzoo sit above this module
    from .modelzoo import LoadedModel
    from .params import SegmentationParams

__all__ = ["CellposeRunner", "ModelRunner"]


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
    """

    def __init__(self, model: LoadedModel, params: SegmentationParams, diameter: float):
        self.model = model
        self.params = params
        self.diameter = diameter

    def _eval(self, image: np.ndarray, diameter: float, **kwargs: Any):
        with warnings.catch_warnings():
            # cellpose builds a sparse tensor in its mask step; torch warns about it on every call.
            warnings.filterwarnings("ignore", message="Sparse invariant checks", category=UserWarning)
            return self.model.cellpose_model.eval(
                image, channels=[0, 0], diameter=diameter, normalize=False,
                flow_threshold=self.params.flow_threshold, cellprob_threshold=self.params.cellprob_threshold,
                min_size=self.params.min_size, **kwargs)

    def eval_2d(self, image: np.ndarray, diameter: float | None = None):
        masks, flows, _ = self._eval(image, diameter or self.diameter)
        return masks.astype(np.uint32), flows[1].astype(np.float32), flows[2].astype(np.float32)

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
