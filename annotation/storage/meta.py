"""What a volume and a label version are, as frozen, validated, JSON-serialisable records.

Both are stored inside the OME-Zarr they describe (under the ``"ezquant"`` attribute key, next
to the NGFF ``"ome"`` key) and round-trip through ``to_dict``/``from_dict``, so the web layer may
keep a copy in a JSON field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import StorageError

__all__ = ["TILE_SIZE", "VOXEL_SIZE_RANGE", "LabelVersionMeta", "VolumeMeta", "check_voxel_range"]

#: Side of a tile and of a chunk's (y, x) extent, in pixels.
TILE_SIZE = 256

_VERSION_NAME = re.compile(r"^v([1-9][0-9]*)$")


def _shape3(name: str, value: Any) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in value)
        ok = len(shape) == 3 and all(s >= 1 and s == v for s, v in zip(shape, value, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise StorageError(f"{name} must be three positive whole numbers (z, y, x), got {value!r}")
    return shape


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise StorageError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def voxel_size3(value: Any, *, ndim: int = 3) -> tuple[float, float, float]:
    """Validate a voxel size and return it as (z, y, x) floats in micrometres.

    Parameters
    ----------
    value : (z, y, x), or (y, x) when ``ndim == 2`` (z is then 1.0); positive finite numbers.
    ndim : 2 for an image, 3 for a stack (a stack needs all three values).
    """
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if isinstance(value, (str, bytes)) or len(values) not in ((2, 3) if ndim == 2 else (3,)) \
            or not all(math.isfinite(v) and v > 0 for v in values):
        wanted = "(z, y, x) or (y, x)" if ndim == 2 else "(z, y, x)"
        raise StorageError(f"voxel_size must be {wanted} positive numbers, got {value!r}")
    return values if len(values) == 3 else (1.0, *values)


#: Voxel sizes accepted at import, in micrometres (a tenth of a nanometre to a centimetre):
#: values outside make every volume and measurement meaningless (1e308 overflows to inf).
VOXEL_SIZE_RANGE = (1e-4, 1e4)


def check_voxel_range(size: tuple[float, float, float], *, what: str = "voxel_size") -> tuple[float, float, float]:
    """Refuse a (z, y, x) voxel size outside :data:`VOXEL_SIZE_RANGE` with a one-line
    :class:`StorageError`; return it unchanged otherwise."""
    lo, hi = VOXEL_SIZE_RANGE
    if not all(lo <= v <= hi for v in size):
        raise StorageError(f"{what} {tuple(size)} is outside the accepted range {lo:g}..{hi:g} micrometres "
                           "(z, y, x)")
    return size


@dataclass(frozen=True)
class VolumeMeta:
    """What one stored volume is.

    Parameters
    ----------
    shape : (Z, Y, X) of level 0; a 2D image has Z = 1.
    dtype : numpy name of the intensity type, kept from the source (``"uint16"``, ``"float32"``).
    voxel_size : (z, y, x) in micrometres at level 0; (1.0, 1.0, 1.0) when unknown.
    level_shapes : (Z, Y, X) of each pyramid level, level 0 first; level k+1 halves level k's
        y and x (rounding up) and keeps z; the last level fits in one tile.
    chunk : (z, y, x) chunk shape of every array, (1, 256, 256).
    contrast_limits : (lo, hi), the 0.5th and 99.8th percentiles of level 0; lo <= hi.
    source_name : file name the volume was imported from, or the name given to ``create``.
    """

    shape: tuple[int, int, int]
    dtype: str
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    level_shapes: tuple[tuple[int, int, int], ...] = ()
    chunk: tuple[int, int, int] = (1, TILE_SIZE, TILE_SIZE)
    contrast_limits: tuple[float, float] = (0.0, 1.0)
    source_name: str = ""

    def __post_init__(self) -> None:
        shape = _shape3("shape", self.shape)
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "uif" or not isinstance(self.dtype, str):
            raise StorageError(f"dtype must name a numpy integer or float type, got {self.dtype!r}")
        levels = tuple(_shape3("each level shape", s) for s in (self.level_shapes or (shape,)))
        if levels[0] != shape:
            raise StorageError(f"level 0 shape {levels[0]} differs from shape {shape}")
        for k in range(1, len(levels)):
            z, y, x = levels[k - 1]
            if levels[k] != (z, -(-y // 2), -(-x // 2)):
                raise StorageError(f"level {k} shape {levels[k]} is not level {k - 1} {levels[k - 1]} halved in y, x")
        lo_hi = tuple(float(v) for v in self.contrast_limits)
        if len(lo_hi) != 2 or not all(math.isfinite(v) for v in lo_hi) or lo_hi[0] > lo_hi[1]:
            raise StorageError(f"contrast_limits must be two finite numbers lo <= hi, got {self.contrast_limits!r}")
        if not isinstance(self.source_name, str):
            raise StorageError(f"source_name must be a string, got {self.source_name!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", dtype.name)
        object.__setattr__(self, "voxel_size", voxel_size3(self.voxel_size))
        object.__setattr__(self, "level_shapes", levels)
        object.__setattr__(self, "chunk", _shape3("chunk", self.chunk))
        object.__setattr__(self, "contrast_limits", lo_hi)

    @property
    def n_levels(self) -> int:
        """Number of pyramid levels (1 when level 0 already fits in one tile)."""
        return len(self.level_shapes)

    @property
    def is_3d(self) -> bool:
        """True for a stack (Z > 1)."""
        return self.shape[0] > 1

    def tile_grid(self, level: int, tile_size: int = TILE_SIZE) -> tuple[int, int]:
        """(number of tile rows, number of tile columns) of one level."""
        _, y, x = self.level_shapes[level]
        return -(-y // tile_size), -(-x // tile_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape), "dtype": self.dtype, "voxel_size": list(self.voxel_size),
            "level_shapes": [list(s) for s in self.level_shapes], "chunk": list(self.chunk),
            "contrast_limits": list(self.contrast_limits), "source_name": self.source_name,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VolumeMeta":
        if not isinstance(data, dict):
            raise StorageError("volume metadata must be a JSON object")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise StorageError(f"unknown volume metadata field(s): {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:  # a missing required field
            raise StorageError(f"volume metadata: {exc}") from None


@dataclass(frozen=True)
class LabelVersionMeta:
    """One immutable version of a volume's segmentation.

    Parameters
    ----------
    name : ``"v<number>"``.
    number : 1, 2, ... in order of creation.
    parent : name of the version it was derived from, ``None`` for one written from scratch.
    shape : (Z, Y, X), the volume's shape.
    n_labels : the largest id in the version (0 when empty); ids need not be contiguous.
    chunks_written : chunk files written for this version, all pyramid levels together.
    chunks_linked : chunk files shared with the parent (hard links, or copies where the file
        system refuses links: those are also counted in ``chunks_copied``).
    chunks_copied : the part of ``chunks_linked`` that had to be copied instead.
    """

    name: str
    number: int
    parent: str | None
    shape: tuple[int, int, int]
    n_labels: int = 0
    chunks_written: int = 0
    chunks_linked: int = 0
    chunks_copied: int = 0

    def __post_init__(self) -> None:
        number = _count("number", self.number)
        if not isinstance(self.name, str) or self.name != f"v{number}" or number < 1:
            raise StorageError(f"a label version is named v<number>, number >= 1; got {self.name!r}, {self.number!r}")
        if self.parent is not None and (not isinstance(self.parent, str) or not _VERSION_NAME.match(self.parent)):
            raise StorageError(f"parent must be a version name like 'v1' or None, got {self.parent!r}")
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "shape", _shape3("shape", self.shape))
        for name in ("n_labels", "chunks_written", "chunks_linked", "chunks_copied"):
            object.__setattr__(self, name, _count(name, getattr(self, name)))
        if self.chunks_copied > self.chunks_linked:
            raise StorageError("chunks_copied cannot exceed chunks_linked")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "number": self.number, "parent": self.parent, "shape": list(self.shape),
            "n_labels": self.n_labels, "chunks_written": self.chunks_written,
            "chunks_linked": self.chunks_linked, "chunks_copied": self.chunks_copied,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LabelVersionMeta":
        if not isinstance(data, dict):
            raise StorageError("label version metadata must be a JSON object")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise StorageError(f"unknown label version field(s): {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise StorageError(f"label version metadata: {exc}") from None


def version_number(name: str) -> int | None:
    """The number of a version name (``"v12"`` -> 12), ``None`` if ``name`` is not one."""
    match = _VERSION_NAME.match(name) if isinstance(name, str) else None
    return int(match.group(1)) if match else None
