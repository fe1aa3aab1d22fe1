"""Resampling of anisotropic z-stacks to isotropic voxels and of label images back.

Microscopes usually step in z more coarsely than the pixel size (e.g. 2.0 um against 0.5 um).
A 3D network expects round nuclei, so the volume is resampled to cubic voxels first and the
resulting labels are brought back to the original grid afterwards (the guide's section 1).

Both resamplings treat a voxel as a box, not a point: voxel ``i`` of an axis with spacing ``s``
covers ``[i s, (i + 1) s)``, so the two grids share their outer edges (``scipy.ndimage.zoom``'s
``grid_mode=True``).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import scipy.ndimage

from segmentation.core._validation import Params, check_numbers
from segmentation.core.errors import InvalidInputError, InvalidParameterError

__all__ = ["Anisotropy3DPreprocessor"]


def _check_shape(shape) -> tuple[int, int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise InvalidParameterError(f"original_shape must be (Z, Y, X), got {shape!r}") from None
    if len(values) != 3 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise InvalidParameterError(f"original_shape must be three positive integers, got {shape!r}")
    return tuple(int(v) for v in values)


def _nearest_indices(n_out: int, n_in: int) -> np.ndarray:
    """For each of ``n_out`` boxes on an axis, the index of the one of ``n_in`` boxes spanning
    the same extent that contains its centre."""
    idx = np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp)
    return np.minimum(idx, n_in - 1)


def _present_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-zero ids of ``labels`` (increasing) and their voxel counts."""
    ids, counts = np.unique(labels, return_counts=True)
    keep = ids != 0
    return ids[keep], counts[keep]


@dataclasses.dataclass(frozen=True)
class Anisotropy3DPreprocessor(Params):
    """Resample (Z, Y, X) volumes to isotropic voxels and their labels back.

    The isotropic grid has the finest lateral spacing, ``min(y, x)``, on every axis: x and y
    keep their resolution (when they are equal) and z is interpolated up to it. A z step finer
    than that would be downsampled.

    Parameters
    ----------
    voxel_size : (3,) tuple of float
        Voxel size ``(z, y, x)`` in micrometres (any unit, as long as it is the same for all
        three); positive and finite.

    Raises
    ------
    InvalidParameterError
        If ``voxel_size`` is not three positive finite numbers.

    Examples
    --------
    >>> pre = Anisotropy3DPreprocessor(voxel_size=(2.0, 0.5, 0.5))
    >>> pre.anisotropy, pre.is_isotropic, pre.isotropic_shape((8, 32, 32))
    (4.0, False, (32, 32, 32))
    """

    voxel_size: tuple[float, float, float]

    _what = "anisotropy parameters"

    def __post_init__(self) -> None:
        object.__setattr__(self, "voxel_size", check_numbers("voxel_size (z, y, x)", self.voxel_size, lengths=(3,),
                                                             low=0, low_open=True))

    @property
    def target_spacing(self) -> float:
        """Spacing of the isotropic grid: the finest lateral spacing, ``min(y, x)``."""
        return min(self.voxel_size[1], self.voxel_size[2])

    @property
    def anisotropy(self) -> float:
        """``z / mean(y, x)``: how much coarser the z step is than the pixels (1 = isotropic)."""
        z, y, x = self.voxel_size
        return z / ((y + x) / 2.0)

    @property
    def is_isotropic(self) -> bool:
        """True when z, y and x agree to 0.1 %, so no resampling is needed."""
        return bool(np.allclose(self.voxel_size, self.target_spacing, rtol=1e-3, atol=0.0))

    def isotropic_shape(self, shape) -> tuple[int, int, int]:
        """Shape of the isotropic grid for a volume of ``shape`` (Z, Y, X): each axis scaled by
        ``voxel_size / target_spacing`` and rounded, at least 1."""
        shape = _check_shape(shape)
        if self.is_isotropic:
            return shape
        return tuple(
            max(1, int(round(n * s / self.target_spacing))) for n, s in zip(shape, self.voxel_size, strict=True)
        )

    def resample_to_isotropic(self, volume) -> tuple[np.ndarray, tuple[float, float, float]]:
        """Interpolate a volume onto the isotropic grid.

        Parameters
        ----------
        volume : (Z, Y, X) real array
            Intensities; never modified.

        Returns
        -------
        volume_iso : (Z', Y', X') float32 array
            Trilinear interpolation (``scipy.ndimage.zoom`` order 1, edges aligned, edge values
            repeated outside), with ``(Z', Y', X') = isotropic_shape(volume.shape)``. A copy of
            ``volume`` when the voxels are already isotropic.
        zoom_factors : (3,) tuple of float
            ``(Z'/Z, Y'/Y, X'/X)``, the factors actually applied: a coordinate ``c`` (in voxels,
            from the volume's edge) maps to ``c * zoom_factors`` on the isotropic grid. They
            differ from ``voxel_size / target_spacing`` only by the rounding of the shape.

        Raises
        ------
        InvalidInputError
            If ``volume`` is not a non-empty 3D array of real numbers.
        """
        arr = np.asarray(volume)
        if arr.ndim != 3 or arr.size == 0:
            raise InvalidInputError(f"volume must be a non-empty (Z, Y, X) array, got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
            raise InvalidInputError(f"volume must hold real numbers, got dtype {arr.dtype}")
        out_shape = self.isotropic_shape(arr.shape)
        factors = tuple(o / n for o, n in zip(out_shape, arr.shape, strict=True))
        data = arr.astype(np.float32)  # always a copy: the caller's array is never touched
        if out_shape == arr.shape:
            return data, factors
        iso = scipy.ndimage.zoom(data, factors, order=1, mode="nearest", grid_mode=True)
        # zoom derives its own output shape from the factors; pin it to ours.
        if iso.shape != out_shape:  # pragma: no cover - zoom rounds the same way
            raise AssertionError(f"zoom produced {iso.shape}, expected {out_shape}")
        return iso, factors

    def resample_masks_to_original(self, masks_iso, original_shape) -> np.ndarray:
        """Bring a label image from the isotropic grid back to the original grid.

        Each original voxel takes the label of the isotropic voxel that contains its centre
        (nearest neighbour, edges of the two grids aligned), so no label is invented and no
        labels are blended. Downsampling can still make a small object disappear when no
        original voxel centre falls inside it; every such label is re-inserted at one voxel:

        - the original voxel that holds most of the object's isotropic voxels, ties broken by
          nearness to the object's centroid;
        - skipping voxels whose current label would disappear in turn (single-voxel labels and
          labels already re-inserted); when every voxel of its footprint is such a voxel, the
          nearest voxel to its centroid that is background or part of a larger label.

        So the output holds exactly the labels of ``masks_iso``; a re-inserted voxel may take one
        voxel from a larger neighbour.

        Parameters
        ----------
        masks_iso : (Z', Y', X') int array
            Labels on the isotropic grid, 0 = background; never modified.
        original_shape : (3,) tuple of int
            ``(Z, Y, X)`` of the original volume.

        Returns
        -------
        masks : (Z, Y, X) array, dtype of ``masks_iso``
            Labels on the original grid.

        Raises
        ------
        InvalidInputError
            If ``masks_iso`` is not a 3D array of non-negative integers, or holds more labels
            than the original grid has voxels.
        InvalidParameterError
            If ``original_shape`` is not three positive integers.
        """
        iso = np.asarray(masks_iso)
        shape = _check_shape(original_shape)
        if iso.ndim != 3 or iso.size == 0:
            raise InvalidInputError(f"masks_iso must be a non-empty (Z, Y, X) array, got shape {iso.shape}")
        if not (np.issubdtype(iso.dtype, np.integer) or iso.dtype == bool):
            raise InvalidInputError(f"masks_iso must be an integer label image, got dtype {iso.dtype}")
        if np.issubdtype(iso.dtype, np.signedinteger) and iso.min() < 0:
            raise InvalidInputError("masks_iso must not contain negative labels")
        index = [_nearest_indices(n_out, n_in) for n_out, n_in in zip(shape, iso.shape, strict=True)]
        masks = iso[np.ix_(*index)]  # fancy indexing: always a new array
        ids_iso, _ = _present_ids(iso)
        ids_out, counts_out = _present_ids(masks)
        vanished = np.setdiff1d(ids_iso, ids_out, assume_unique=True)
        if vanished.size:
            if ids_iso.size > masks.size:
                raise InvalidInputError(
                    f"masks_iso holds {ids_iso.size} labels, more than the {masks.size} voxels of the original grid"
                )
            _reinsert(masks, iso, vanished, ids_out, counts_out)
        return masks


def _reinsert(masks: np.ndarray, iso: np.ndarray, vanished: np.ndarray,
              ids_out: np.ndarray, counts_out: np.ndarray) -> None:
    """Give each ``vanished`` label one voxel of ``masks`` (modified in place; it is our copy)."""
    shape = np.array(masks.shape)
    scale = shape / np.array(iso.shape)  # original voxels per isotropic voxel, per axis
    counts = dict(zip(ids_out.tolist(), counts_out.tolist(), strict=True))
    pinned = np.zeros(masks.shape, bool)  # voxels given to a re-inserted label

    coords = np.nonzero(np.isin(iso, vanished))
    values = iso[coords]
    # Centre of each isotropic voxel in original voxel units, and the original voxel holding it.
    centres = np.stack([(c + 0.5) * s for c, s in zip(coords, scale, strict=True)], axis=1)
    owners = np.minimum(np.floor(centres).astype(np.intp), shape - 1)
    owner_flat = np.ravel_multi_index(tuple(owners.T), masks.shape)
    order = np.argsort(values, kind="stable")
    bounds = np.flatnonzero(np.diff(values[order])) + 1
    flat_masks = masks.reshape(-1)  # a view: masks is contiguous (fresh from fancy indexing)
    flat_pinned = pinned.reshape(-1)

    def usable(flat_index: int) -> bool:
        current = int(flat_masks[flat_index])
        return not flat_pinned[flat_index] and (current == 0 or counts[current] > 1)

    for group in np.split(order, bounds):  # one iteration per vanished label
        label = values[group[0]].item()
        centroid = centres[group].mean(axis=0) - 0.5  # in voxel-index coordinates
        cand, hits = np.unique(owner_flat[group], return_counts=True)
        dist = np.sum((np.stack(np.unravel_index(cand, masks.shape), axis=1) - centroid) ** 2, axis=1)
        target = next((int(cand[k]) for k in np.lexsort((dist, -hits)) if usable(int(cand[k]))), None)
        if target is None:
            target = _nearest_usable(flat_masks, flat_pinned, counts, centroid, masks.shape)
        current = int(flat_masks[target])
        if current:
            counts[current] -= 1
        flat_masks[target] = label
        flat_pinned[target] = True
        counts[label] = 1


def _nearest_usable(flat_masks, flat_pinned, counts, centroid, shape) -> int:
    """Rare fallback: the voxel nearest ``centroid`` that is background or of a label with
    more than one voxel, not yet pinned."""
    ids, inverse = np.unique(flat_masks, return_inverse=True)
    ok_id = np.array([i == 0 or counts[int(i)] > 1 for i in ids.tolist()])
    ok = ok_id[inverse.reshape(-1)] & ~flat_pinned
    cand = np.flatnonzero(ok)
    if cand.size == 0:  # pragma: no cover - excluded by the label count check
        raise InvalidInputError("no voxel left to re-insert a vanished label")
    pos = np.stack(np.unravel_index(cand, shape), axis=1)
    return int(cand[np.argmin(np.sum((pos - centroid) ** 2, axis=1))])
