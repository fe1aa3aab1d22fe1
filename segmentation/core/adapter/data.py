"""What an adapter trains on: image crops with the labels the network should have produced.

A :class:`TrainingExample` is one crop: the image (normalised as the engine normalises), its
labels and a weight map saying where the labels are known. A correction knows its labels only
near the nuclei a person corrected: the crop around them may hold other nuclei nobody looked at,
so :func:`correction_example` gives weight 1 to the *reviewed zone* (the corrected and the
original nuclei, grown by a few pixels for their boundary) and ``context_weight`` (0.25 by
default, 0 without context labels) to the rest. Where the surrounding labels are known (the
label image after the correction, ``context_labels``), the neighbours keep their own ids, so
the boundary pixels of the zone get the right flows instead of being called background.

The network is 2D: a 2D crop is one plane; a 3D crop contributes its xy planes and, when its
anisotropy is given, zy and zx planes of the crop stretched to isotropic voxels (as
:mod:`segmentation.core.training` builds the default model's data and the ``true3d`` backend
runs the network). Each plane's labels become Cellpose's flow targets with
``cellpose.dynamics.labels_to_flows``; batches are augmented with Cellpose's own
``transforms.random_rotate_and_resize`` (random rotation, flip, rescale to the model's
diameter with a jitter, random crop).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..errors import InvalidInputError, InvalidParameterError
from ..training import resample_isotropic

__all__ = ["TrainingExample", "correction_example", "as_examples"]

# Planes smaller than this (pixels, y or x) cannot hold a nucleus with its boundary.
_MIN_PLANE = 4
# At most this many zy and this many zx planes per 3D crop (evenly spaced through the zone).
_MAX_ORTHO_PLANES = 6


@dataclass(frozen=True, eq=False)
class TrainingExample:
    """One crop to train on.

    Attributes
    ----------
    image : (Y, X) or (Z, Y, X) float32
        Normalised like the engine does it: the 1st and 99th percentiles of the *whole* image or
        volume the crop comes from mapped to 0 and 1 (a crop normalised on its own would look
        brighter than the network ever sees it).
    labels : int array of the same shape, 0 = background
    weight : float array of the same shape in [0, 1], or ``None`` (1 everywhere)
        How much each pixel counts in the loss; 0 = unknown.
    diameter : float or None
        Median nucleus diameter (pixels, xy) of the image the crop comes from, used to rescale
        it to the network's diameter; ``None`` measures it on ``labels``.
    anisotropy : float or None
        z step over pixel size of a 3D crop; ``None`` uses its xy planes only.
    correction_id : int or None
        The correction record the example was made from.
    """

    image: np.ndarray
    labels: np.ndarray
    weight: np.ndarray | None = None
    diameter: float | None = None
    anisotropy: float | None = None
    correction_id: int | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        labels = np.asarray(self.labels)
        if image.ndim not in (2, 3):
            raise InvalidInputError(f"an example's image must be (Y, X) or (Z, Y, X), got shape {image.shape}")
        if labels.shape != image.shape:
            raise InvalidInputError(f"an example's labels {labels.shape} and image {image.shape} differ in shape")
        if min(image.shape[-2:]) < _MIN_PLANE:
            raise InvalidInputError(
                f"an example's planes must be at least {_MIN_PLANE}x{_MIN_PLANE}, got {image.shape}")
        if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
            raise InvalidInputError(f"an example's image must hold real numbers, got dtype {image.dtype}")
        image = image.astype(np.float32)
        if not np.isfinite(image).all():
            raise InvalidInputError("an example's image contains NaN or infinity")
        if labels.dtype == bool:
            labels = labels.astype(np.uint8)
        if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
            raise InvalidInputError("an example's labels must be integers >= 0 (0 = background)")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "labels", labels)
        if self.weight is not None:
            weight = np.asarray(self.weight, np.float32)
            if weight.shape != image.shape:
                raise InvalidInputError(f"an example's weight {weight.shape} and image {image.shape} differ in shape")
            if not np.isfinite(weight).all() or weight.min() < 0 or weight.max() > 1:
                raise InvalidInputError("an example's weight must lie in [0, 1]")
            object.__setattr__(self, "weight", weight)
        for name in ("diameter", "anisotropy"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                        or not math.isfinite(value) or value <= 0:
                    raise InvalidParameterError(f"an example's {name} must be a positive number or None, got {value!r}")
                object.__setattr__(self, name, float(value))

    @property
    def weights(self) -> np.ndarray:
        """The weight map (ones when ``weight`` is ``None``)."""
        return np.ones(self.image.shape, np.float32) if self.weight is None else self.weight

    def fingerprint(self) -> str:
        """SHA-256 of the arrays and numbers: what a checkpoint checks before resuming."""
        digest = hashlib.sha256()
        for arr in (self.image, self.labels.astype(np.int64), self.weights):
            digest.update(str(arr.shape).encode())
            digest.update(np.ascontiguousarray(arr).tobytes())
        digest.update(repr((self.diameter, self.anisotropy)).encode())
        return digest.hexdigest()


def as_examples(items: Sequence[Any]) -> list[TrainingExample]:
    """``TrainingExample`` objects from examples or ``(image, labels[, weight])`` tuples.

    Raises
    ------
    InvalidInputError
        If there is nothing to train on, or an item is neither.
    """
    if items is None or len(items) == 0:
        raise InvalidInputError("no training examples: record (and approve) corrections first")
    out = []
    for k, item in enumerate(items):
        if isinstance(item, TrainingExample):
            out.append(item)
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            out.append(TrainingExample(*item))
        else:
            raise InvalidInputError(
                f"training item #{k} must be a TrainingExample or an (image, labels[, weight]) tuple, "
                f"got {type(item).__name__}")
    return out


def _grow_xy(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` dilated by ``pixels`` in y and x only (a 3D mask plane by plane)."""
    if pixels <= 0:
        return mask
    disk = np.hypot(*np.mgrid[-pixels:pixels + 1, -pixels:pixels + 1]) <= pixels
    structure = disk if mask.ndim == 2 else disk[np.newaxis]
    return ndi.binary_dilation(mask, structure=structure)


def correction_example(image: Any, original: Any, corrected: Any, *, context_labels: Any = None,
                       diameter: float | None = None, anisotropy: float | None = None, zone_margin: int = 3,
                       context_weight: float = 0.25, correction_id: int | None = None) -> TrainingExample:
    """The training example of one correction.

    Parameters
    ----------
    image : (Y, X) or (Z, Y, X) float array
        The crop, normalised like the engine does (see :class:`TrainingExample`).
    original, corrected : int or bool arrays of the same shape
        The nuclei before and after the correction (0 = background), as a
        :class:`~segmentation.core.CorrectionTracker` record holds them.
    context_labels : int array of the same shape, optional
        The whole label image after the correction over the crop (the corrected nuclei and their
        neighbours). Without it, every pixel outside the corrected nuclei is background.
    diameter, anisotropy : see :class:`TrainingExample`.
    zone_margin : int >= 0
        Pixels (y, x) by which the reviewed zone extends beyond the union of the original and
        corrected nuclei, so that the boundary around them counts.
    context_weight : float in [0, 1]
        Loss weight outside the zone; used only with ``context_labels`` (unknown otherwise).
        A little weight there anchors the adapter to what the model already gets right
        around the correction (see ``RetrainingParams``).
    correction_id : int, optional

    Returns
    -------
    TrainingExample
        ``labels``: the context (or zeros) with the original nuclei removed and the corrected
        nuclei painted with ids of their own; ``weight``: 1 in the zone, ``context_weight``
        elsewhere.
    """
    original = np.asarray(original)
    corrected = np.asarray(corrected)
    img = np.asarray(image)
    if original.shape != img.shape or corrected.shape != img.shape:
        raise InvalidInputError(
            f"image {img.shape}, original {original.shape} and corrected {corrected.shape} must share one shape")
    if isinstance(zone_margin, bool) or not isinstance(zone_margin, (int, np.integer)) or zone_margin < 0:
        raise InvalidParameterError(f"zone_margin must be a whole number >= 0, got {zone_margin!r}")
    if not isinstance(context_weight, (int, float)) or not 0 <= context_weight <= 1:
        raise InvalidParameterError(f"context_weight must lie in [0, 1], got {context_weight!r}")
    touched = (original != 0) | (corrected != 0)
    if not touched.any():
        raise InvalidInputError("the correction is empty: both masks are background")
    if context_labels is None:
        labels = np.zeros(img.shape, np.int64)
        outside = 0.0
    else:
        context = np.asarray(context_labels)
        if context.shape != img.shape:
            raise InvalidInputError(f"context_labels {context.shape} and image {img.shape} differ in shape")
        labels = context.astype(np.int64)
        outside = float(context_weight)
    labels[original != 0] = 0
    if corrected.dtype == bool:
        pieces, _ = ndi.label(corrected)
    else:
        pieces = corrected.astype(np.int64)
    top = int(labels.max())
    labels = np.where(pieces > 0, pieces + top, labels)
    zone = _grow_xy(touched, int(zone_margin))
    weight = np.where(zone, 1.0, outside).astype(np.float32)
    return TrainingExample(img.astype(np.float32), labels, weight, diameter=diameter, anisotropy=anisotropy,
                           correction_id=correction_id)


# ---------------------------------------------------------------------------------------------
# planes, flow targets and batches (internal to the adapter package)


@dataclass
class _Plane:
    """One 2D plane ready for augmentation: ``x`` (2, Y, X) input, ``y`` (4, Y, X) targets."""

    x: np.ndarray          # image and a zero second channel (Cellpose's channels=[0, 0] input)
    y: np.ndarray          # cellprob (0/1), weight, flow y, flow x
    diameter: float
    source: int            # index of the example


def _evenly(indices: np.ndarray, n: int) -> np.ndarray:
    if indices.size <= n:
        return indices
    return indices[np.round(np.linspace(0, indices.size - 1, n)).astype(int)]


def example_planes(example: TrainingExample, *, ortho: bool = True) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(image, labels, weight)`` 2D planes of an example that carry weight.

    A 2D example is its own plane; a 3D one gives its xy planes and, with ``ortho`` and an
    anisotropy, up to a few zy and zx planes of the crop resampled to isotropic voxels.
    """
    image, labels, weight = example.image, example.labels, example.weights
    if image.ndim == 2:
        return [(image, labels, weight)] if weight.max() > 0 else []
    planes = [(image[z], labels[z], weight[z]) for z in range(image.shape[0]) if weight[z].max() > 0]
    if ortho and example.anisotropy is not None and image.shape[0] > 1:
        # The weight is resampled as an integer map (per mille): nearest neighbour, like labels.
        w_int = np.round(weight * 1000).astype(np.int32)
        image_iso, labels_iso, w_iso = resample_isotropic(image, labels, w_int, factor=example.anisotropy)
        w_iso = w_iso.astype(np.float32) / 1000
        if min(image_iso.shape[0], image_iso.shape[1]) >= _MIN_PLANE:
            for y in _evenly(np.flatnonzero(w_iso.max(axis=(0, 2)) > 0), _MAX_ORTHO_PLANES):
                planes.append((image_iso[:, y, :], labels_iso[:, y, :], w_iso[:, y, :]))
        if min(image_iso.shape[0], image_iso.shape[2]) >= _MIN_PLANE:
            for x in _evenly(np.flatnonzero(w_iso.max(axis=(0, 1)) > 0), _MAX_ORTHO_PLANES):
                planes.append((image_iso[:, :, x], labels_iso[:, :, x], w_iso[:, :, x]))
    return planes


def _flow_targets(labels: np.ndarray) -> np.ndarray:
    """(3, Y, X) float32: cell probability (0/1), flow y, flow x, as ``train_seg`` computes them."""
    # Lazy: cellpose pulls in torch, cv2 and numba.
    import torch
    from cellpose import dynamics

    if not labels.any():  # nothing to diffuse (masks_to_flows would warn): background everywhere
        return np.zeros((3, *labels.shape), np.float32)
    # The CPU computes the flows (as train_seg does on a CPU); planes are small.
    flows = dynamics.labels_to_flows([labels.astype(np.int32)], device=torch.device("cpu"))[0]
    # flows: labels, cell probability, flow y, flow x
    return flows[1:].astype(np.float32)


def _median_diameter(labels: np.ndarray) -> float | None:
    from cellpose import utils

    if not labels.any():
        return None
    diameter, _ = utils.diameters(labels.astype(np.int32))
    return float(diameter) if diameter > 0 else None


def prepare_planes(examples: list[TrainingExample], default_diameter: float) -> list[_Plane]:
    """The weighted planes of ``examples`` with their flow targets.

    An example without a diameter takes the median diameter of its own nuclei, or
    ``default_diameter`` when it has none (a deleted false positive).
    """
    planes = []
    for k, ex in enumerate(examples):
        diameter = ex.diameter or _median_diameter(ex.labels if ex.labels.ndim == 2 else ex.labels.max(axis=0)) \
            or default_diameter
        for image, labels, weight in example_planes(ex):
            targets = _flow_targets(labels)
            y = np.stack([targets[0], weight, targets[1], targets[2]]).astype(np.float32)
            x = np.stack([image, np.zeros_like(image)]).astype(np.float32)
            planes.append(_Plane(x=x, y=y, diameter=max(float(diameter), 5.0), source=k))
    return planes


def example_diameters(examples: list[TrainingExample]) -> list[float]:
    """Diameters given with, or measured on, the examples (those that have one)."""
    out = []
    for ex in examples:
        d = ex.diameter or _median_diameter(ex.labels if ex.labels.ndim == 2 else ex.labels.max(axis=0))
        if d:
            out.append(d)
    return out


def make_batch(planes: list[_Plane], indices: np.ndarray, *, diam_mean: float, crop_size: int,
               scale_range: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Augmented ``(x (B, 2, S, S), y (B, 4, S, S))`` of the planes ``indices``.

    The crop side ``S`` is the smallest multiple of 16 (at least 64) that holds the largest
    rescaled plane of the batch, up to ``crop_size``: corrections are small, and a 224-pixel
    canvas around a 60-pixel crop would spend most of the compute on padding (whose weight
    is 0). Cellpose's augmentation draws from numpy's global generator; it is seeded with
    ``seed`` here and the global state restored afterwards, so a training step is reproducible
    (a resumed training repeats the uninterrupted one) and nothing else in the process notices.
    """
    from cellpose import transforms

    chosen = [planes[i] for i in indices]
    rescale = np.array([p.diameter / diam_mean for p in chosen], np.float32)
    grow = 1.0 + scale_range / 2
    needed = max(max(p.x.shape[-2:]) / r * grow for p, r in zip(chosen, rescale, strict=True))
    side = int(min(crop_size, max(64, 16 * math.ceil(needed / 16))))
    state = np.random.get_state()
    try:
        np.random.seed(seed % (2 ** 32))
        x, y, _ = transforms.random_rotate_and_resize([p.x for p in chosen], Y=[p.y for p in chosen],
                                                      rescale=rescale, scale_range=scale_range, xy=(side, side))
    finally:
        np.random.set_state(state)
    return x, y
