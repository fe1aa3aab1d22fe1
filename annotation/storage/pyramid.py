"""Pyramid levels and display contrast, computed one plane at a time.

Level k+1 of a (Z, Y, X) volume halves level k in y and x and keeps z (microscopy stacks are
coarse in z already, and a tile viewer shows one plane). The number of levels is the smallest
that brings the last plane inside one tile.

* intensities: each output pixel is the mean of its 2 x 2 block of level k (1 or 2 pixels at an
  odd edge), rounded half-to-even back to an integer dtype (floats keep their type).
* labels: level k+1 = level k ``[::2, ::2]``, so every id at a coarse level is an id of level 0
  and level k is level 0 ``[::2**k, ::2**k]`` exactly (what makes an edit's coarse levels cheap
  to recompute).

Contrast defaults are the 0.5th and 99.8th percentiles (numpy's linear method) of level 0,
estimated while the planes stream by: exactly, from a histogram, for 8- and 16-bit integers; from
an evenly strided sample of at most 2**19 finite voxels for every other type.
"""

from __future__ import annotations

import math

import numpy as np

from .meta import TILE_SIZE

__all__ = ["ContrastEstimator", "downsample_labels", "downsample_mean", "pyramid_shapes"]

#: Percentiles of level 0 used as the default display window.
CONTRAST_PERCENTILES = (0.5, 99.8)
_SAMPLE_BUDGET = 2 ** 19
_HIST_BLOCK = 1 << 16  # pixels per bincount call: keeps its int64 temporary at 512 KiB


def pyramid_shapes(shape: tuple[int, int, int], tile_size: int = TILE_SIZE) -> list[tuple[int, int, int]]:
    """Shapes of all pyramid levels of a (Z, Y, X) volume, level 0 first.

    >>> pyramid_shapes((3, 1000, 300))
    [(3, 1000, 300), (3, 500, 150), (3, 250, 75)]
    """
    z, y, x = shape
    levels = [(z, y, x)]
    while y > tile_size or x > tile_size:
        y, x = -(-y // 2), -(-x // 2)
        levels.append((z, y, x))
    return levels


def downsample_mean(plane: np.ndarray) -> np.ndarray:
    """Halve a plane in both axes by averaging 2 x 2 blocks.

    Parameters
    ----------
    plane : (Y, X) integer or float array; not modified.

    Returns
    -------
    (ceil(Y/2), ceil(X/2)) array of ``plane``'s dtype. At an odd edge the block holds 1 or 2
    pixels and their mean is taken. Integers are rounded half to even.

    >>> downsample_mean(np.array([[0, 2, 5], [2, 4, 7]], dtype=np.uint8))
    array([[2, 6]], dtype=uint8)
    """
    h, w = plane.shape
    # float32 is exact for the sum of four 16-bit values; wider types need float64.
    acc_type = np.float32 if plane.dtype.itemsize <= 2 and plane.dtype.kind in "ui" or plane.dtype == np.float32 \
        else np.float64
    acc = np.zeros((-(-h // 2), -(-w // 2)), dtype=acc_type)
    for dy in (0, 1):
        for dx in (0, 1):
            part = plane[dy::2, dx::2]
            acc[:part.shape[0], :part.shape[1]] += part
    acc *= 0.25
    if h % 2:
        acc[-1, :] *= 2  # the last row of blocks holds one row of pixels
    if w % 2:
        acc[:, -1] *= 2
    if plane.dtype.kind in "ui":
        np.rint(acc, out=acc)
    return acc.astype(plane.dtype, copy=False)


def downsample_labels(labels: np.ndarray) -> np.ndarray:
    """Halve a label plane (or volume, in its last two axes) by keeping every second pixel.

    Returns a view; ``labels[..., ::2, ::2]``, so no id is invented or blended.
    """
    return labels[..., ::2, ::2]


class ContrastEstimator:
    """Percentiles of a volume seen one plane at a time, in bounded memory.

    Parameters
    ----------
    dtype : the volume's dtype.
    n_voxels : Z * Y * X, to spread the sample evenly over the planes.

    Notes
    -----
    8- and 16-bit integers: a histogram of every voxel (at most 65,536 int64 counts), from which
    the percentiles are interpolated exactly as ``np.percentile`` does. Other types: every
    ``ceil(n_voxels / 2**19)``-th voxel of each plane, non-finite values dropped, and
    ``np.percentile`` of that sample at the end (at most ~2**19 values are kept).
    """

    def __init__(self, dtype: np.dtype, n_voxels: int) -> None:
        self.dtype = np.dtype(dtype)
        self._exact = self.dtype.kind in "ui" and self.dtype.itemsize <= 2
        if self._exact:
            self._offset = int(np.iinfo(self.dtype).min)
            self._hist = np.zeros(1 << (8 * self.dtype.itemsize), dtype=np.int64)
        else:
            self._step = max(1, math.ceil(n_voxels / _SAMPLE_BUDGET))
            self._samples: list[np.ndarray] = []

    def update(self, plane: np.ndarray) -> None:
        """Count one (Y, X) plane; ``plane`` is not modified."""
        flat = plane.reshape(-1)
        if self._exact:
            for start in range(0, flat.size, _HIST_BLOCK):
                block = flat[start:start + _HIST_BLOCK]
                if self._offset:
                    block = block.astype(np.int32) - self._offset
                self._hist += np.bincount(block, minlength=self._hist.size)
        else:
            sample = flat[::self._step].copy()
            if sample.dtype.kind == "f":
                sample = sample[np.isfinite(sample)]
            self._samples.append(sample)

    def limits(self) -> tuple[float, float]:
        """(lo, hi) at :data:`CONTRAST_PERCENTILES`; (0.0, 1.0) if no finite voxel was seen."""
        if self._exact:
            cumulative = np.cumsum(self._hist)
            n = int(cumulative[-1])
            if n == 0:
                return 0.0, 1.0
            out = []
            for q in CONTRAST_PERCENTILES:
                position = q / 100 * (n - 1)
                below = math.floor(position)
                # Value at sorted index i = first bin whose cumulative count exceeds i.
                v0, v1 = np.searchsorted(cumulative, [below, min(below + 1, n - 1)], side="right")
                out.append(float(v0 + (v1 - v0) * (position - below)) + self._offset)
            return out[0], out[1]
        sample = np.concatenate(self._samples) if self._samples else np.zeros(0)
        if sample.size == 0:
            return 0.0, 1.0
        lo, hi = np.percentile(sample, CONTRAST_PERCENTILES)
        return float(lo), float(hi)
