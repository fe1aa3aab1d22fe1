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

This module imports nothing at run time beyond numpy, so the backends can depend on it and the
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
        ``flow_threshold``, ``cellprob_threshold``, ``min_size`` and ``flow3d_smooth`` are read.
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
        masks, flows, _ = self._eval(volume, self.diameter, do_3D=True, z_axis=0,
                                     anisotropy=anisotropy if anisotropy != 1.0 else None,
                                     flow3D_smooth=self.params.flow3d_smooth)
        return masks.astype(np.uint32), flows[1].astype(np.float32), flows[2].astype(np.float32)
