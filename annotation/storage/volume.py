"""One volume on disk: an OME-Zarr directory with its intensity pyramid and label versions.

A volume is written once (from a file by :func:`import_image`, or from an array by
:meth:`VolumeStore.create`) into ``<dest>.partial-<random>`` beside ``dest`` and renamed into
place at the end, so ``dest`` either does not exist or is complete; on any error the partial
directory is removed. Writing streams planes: peak memory is about four planes of the image
(the plane read, its conversion, the pyramid planes derived from it and zarr's encode buffers)
plus the contrast estimate (<= 64 Ki histogram bins, or <= 2**19 sampled voxels), never the
volume.
"""

from __future__ import annotations

import math
import operator
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from . import labels as _labels
from .errors import (
    DestinationExistsError,
    ImageTooLargeError,
    InvalidImageError,
    NotAVolumeError,
    StorageError,
    TileOutOfRangeError,
)
from .manifest import copy_arrays
from .meta import TILE_SIZE, LabelVersionMeta, VolumeMeta, check_voxel_range, voxel_size3
from .ngff import image_attributes, label_attributes, labels_group_attributes
from .ortho import (
    LABEL_DEPTH,
    ORTHO_PLANES,
    add_missing_layouts,
    has_ortho,
    ortho_shape,
    read_ortho,
    write_ortho_levels,
)
from .pyramid import ContrastEstimator, downsample_mean, pyramid_shapes
from .sources import ArraySource, PlaneSource, open_source
from .zarrio import create_array, open_array, open_reader, read_json, write_group

__all__ = ["FORMAT_VERSION", "VolumeStore", "import_image"]

#: Version of this package's layout, stored beside the NGFF metadata.
FORMAT_VERSION = 1
_ARRAY_CACHE_SIZE = 64

Progress = Callable[[float, str], None]


def _partial_dir(dest: Path) -> Path:
    if dest.exists() or dest.is_symlink():
        raise DestinationExistsError(f"{dest.name!r} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest.with_name(f"{dest.name}.partial-{secrets.token_hex(6)}")


def _publish(partial: Path, dest: Path) -> None:
    try:
        os.rename(partial, dest)  # atomic; refuses a non-empty dest
    except OSError:
        raise DestinationExistsError(f"{dest.name!r} appeared while it was being written") from None


def _write_volume(dest: Path, source: PlaneSource, *, voxel_size: tuple[float, float, float],
                  progress: Progress | None) -> None:
    """Stream ``source`` plane by plane into a new volume at ``dest``."""
    partial = _partial_dir(dest)
    try:
        shapes = pyramid_shapes(source.shape)
        arrays = [create_array(partial / str(k), s, source.dtype) for k, s in enumerate(shapes)]
        contrast = ContrastEstimator(source.dtype, math.prod(source.shape))
        n_planes = source.shape[0]
        for z in range(n_planes):
            plane = source.plane(z)
            if plane.dtype.kind == "f" and not np.isfinite(plane).all():
                # NaN or Inf would poison every measurement and the contrast of the volume for
                # good: refuse at the door rather than store it.
                bad = int(np.count_nonzero(~np.isfinite(plane)))
                raise InvalidImageError(f"{source.name!r} has {bad:,} NaN or infinite value(s) in plane {z}; "
                                        "only finite intensities can be imported (replace them, e.g. by 0)")
            contrast.update(plane)
            arrays[0][z] = plane
            for array in arrays[1:]:
                plane = downsample_mean(plane)
                array[z] = plane
            del plane
            if progress is not None:
                progress(0.99 * (z + 1) / n_planes, f"plane {z + 1} of {n_planes}")
        if n_planes > 1:  # the XZ / YZ layouts (see .ortho), read back from the levels just written
            write_ortho_levels(partial, lambda k: arrays[k], shapes, source.dtype)
        meta = VolumeMeta(shape=source.shape, dtype=source.dtype.name, voxel_size=voxel_size,
                          level_shapes=tuple(shapes), contrast_limits=contrast.limits(),
                          source_name=source.name)
        write_group(partial, {
            "ome": image_attributes(name=source.name, shapes=shapes, voxel_size=voxel_size,
                                    dtype=source.dtype, contrast_limits=meta.contrast_limits),
            "ezquant": {"format": FORMAT_VERSION, "volume": meta.to_dict()},
        })
        write_group(partial / _labels.LABELS_GROUP, {"ome": labels_group_attributes([])})
        _publish(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if progress is not None:
        progress(1.0, "done")


def _resolve_voxel_size(given, found, ndim: int) -> tuple[float, float, float]:
    if given is not None:
        return check_voxel_range(voxel_size3(given, ndim=ndim))
    size = tuple(float(v) if v is not None and math.isfinite(v) and v > 0 else 1.0 for v in found)
    return check_voxel_range(size, what="the voxel size the file states,")


class _NarrowedSource:
    """A 64-bit integer source read as the smallest integer type that holds its values."""

    def __init__(self, source: PlaneSource, dtype: np.dtype) -> None:
        self._source, self.dtype = source, np.dtype(dtype)
        self.shape, self.voxel_size, self.name = source.shape, source.voxel_size, source.name

    def plane(self, z: int) -> np.ndarray:
        return self._source.plane(z).astype(self.dtype)

    def close(self) -> None:
        self._source.close()


def _narrow_64bit(source: PlaneSource) -> PlaneSource:
    """``source`` unchanged, or, for an int64 / uint64 image, read as the smallest of (u)int8..32
    that holds every value (one extra pass over the planes); :class:`InvalidImageError` when
    the values need 64 bits (the pyramid, the contrast and the engine work in 32 bits at most)."""
    if source.dtype.kind not in "ui" or source.dtype.itemsize < 8:
        return source
    lo, hi = None, None
    for z in range(source.shape[0]):
        plane = source.plane(z)
        lo = int(plane.min()) if lo is None else min(lo, int(plane.min()))
        hi = int(plane.max()) if hi is None else max(hi, int(plane.max()))
        del plane
    for candidate in (np.uint8, np.uint16, np.uint32) if lo >= 0 else (np.int8, np.int16, np.int32):
        info = np.iinfo(candidate)
        if info.min <= lo and hi <= info.max:
            return _NarrowedSource(source, candidate)
    raise InvalidImageError(f"{source.name!r} is {source.dtype} with values {lo:,}..{hi:,}, which need 64 bits; "
                            "only values that fit 32-bit integers can be imported")


def _check_size(source: PlaneSource, max_voxels: int | None, max_bytes: int | None,
                streamed_above: int | None = None) -> None:
    """Refuse an image over the limits from its header alone (nothing is decoded yet)."""
    z, y, x = source.shape
    n_voxels = math.prod(source.shape)
    if max_voxels is not None and n_voxels > max_voxels:
        raise ImageTooLargeError(
            f"{source.name!r} has {n_voxels:,} voxels ({z} x {y} x {x}); the limit is {max_voxels:,}")
    if streamed_above is not None and n_voxels > streamed_above:
        # Never decoded whole (the import writes it a plane at a time, segmentation runs block by
        # block): what must fit the memory is one plane.
        plane_bytes = y * x * source.dtype.itemsize
        if max_bytes is not None and plane_bytes > max_bytes:
            raise ImageTooLargeError(
                f"{source.name!r} is too large for this machine: one {y} x {x} {source.dtype} plane decodes to "
                f"{plane_bytes:,} bytes; the limit is {max_bytes:,} bytes")
        return
    n_bytes = n_voxels * source.dtype.itemsize
    if max_bytes is not None and n_bytes > max_bytes:
        raise ImageTooLargeError(
            f"{source.name!r} is too large for this machine: {z} x {y} x {x} {source.dtype} decodes to "
            f"{n_bytes:,} bytes; the limit is {max_bytes:,} bytes")


def import_image(src: str | os.PathLike, dest: str | os.PathLike, *, channel: int | None = None,
                 voxel_size: tuple[float, ...] | None = None, max_voxels: int | None = None,
                 max_bytes: int | None = None, streamed_above: int | None = None,
                 progress: Progress | None = None) -> "VolumeStore":
    """Import a TIFF / OME-TIFF / ImageJ TIFF file or an OME-Zarr directory as a new volume.

    Parameters
    ----------
    src : a TIFF file (first series, full resolution) or an OME-Zarr image directory (NGFF 0.4
        or 0.5; level 0 is read, its pyramid and labels are not imported).
    dest : directory to create; must not exist.
    channel : the channel to keep when the image has a channel axis (``C``, or ``S`` samples
        such as RGB); required then. ``0`` is accepted for a single-channel image.
    voxel_size : (z, y, x) micrometres ((y, x) for a 2D image), overriding the file's
        OME ``PhysicalSize*`` or ImageJ spacing/resolution; (1, 1, 1) where neither says.
    max_voxels : refuse images with more than Z * Y * X voxels, before writing anything.
    max_bytes : refuse images that decode to more bytes (voxels x bytes per voxel of the file's
        type), judged from the header before any pixel is decoded.
    streamed_above : images of more voxels than this are never decoded whole by the caller (the
        application segments them block by block): ``max_bytes`` then bounds one plane, which
        is what this import decodes at a time, and ``max_voxels`` the image.
    progress : called as ``progress(fraction, message)`` after each plane.

    Returns
    -------
    The opened :class:`VolumeStore`. Intensities keep their dtype (bool becomes uint8);
    a 2D image becomes Z = 1; int64 / uint64 images whose values fit 32 bits are stored in the
    smallest integer type that holds them.

    Raises
    ------
    InvalidImageError : missing, not a TIFF or OME-Zarr, corrupt or truncated.
    DimensionalityError : 1D, or more than Z, Y, X besides one channel axis (time series too).
    ChannelError : a channel axis without ``channel=``, or ``channel`` out of range.
    ImageTooLargeError : more voxels than ``max_voxels`` or more bytes than ``max_bytes`` (a
        plane's, above ``streamed_above``).
    StorageError : a voxel size outside ``VOXEL_SIZE_RANGE`` (given, or stated by the file);
        NaN or infinite intensities, 64-bit values (``InvalidImageError``).
    DestinationExistsError : ``dest`` exists.
    """
    dest = Path(dest)
    for name, limit in (("max_voxels", max_voxels), ("max_bytes", max_bytes), ("streamed_above", streamed_above)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise StorageError(f"{name} must be a positive whole number, got {limit!r}")
    source = open_source(src, channel=channel)
    try:
        _check_size(source, max_voxels, max_bytes, streamed_above)
        size = _resolve_voxel_size(voxel_size, source.voxel_size, 2 if source.shape[0] == 1 else 3)
        source = _narrow_64bit(source)
        _write_volume(dest, source, voxel_size=size, progress=progress)
    finally:
        source.close()
    return VolumeStore.open(dest)


class VolumeStore:
    """A stored volume: read its pyramid and tiles, write and read its label versions.

    Obtain one with :meth:`open`, :meth:`create` or :func:`import_image`. Opened zarr arrays are
    cached on the object (up to 64), so keep one store per volume around in a server; the
    object is safe to share between threads.

    All coordinates are (z, y, x) in pixels of the level asked for; level 0 is full resolution.
    """

    def __init__(self, path: Path, meta: VolumeMeta) -> None:
        self.path = Path(path)
        self.meta = meta
        self._arrays: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VolumeStore({str(self.path)!r}, shape={self.meta.shape}, dtype={self.meta.dtype})"

    # -- creating and opening -------------------------------------------------------------

    @classmethod
    def create(cls, dest: str | os.PathLike, image: np.ndarray, *, voxel_size: tuple[float, ...] | None = None,
               name: str = "") -> "VolumeStore":
        """Write an in-memory (Y, X) or (Z, Y, X) image as a new volume at ``dest``.

        ``image`` is not modified; ``voxel_size`` is (z, y, x), or (y, x) for a 2D image,
        in micrometres (default 1). See :func:`import_image` for what is stored.
        """
        source = ArraySource(image, name=str(name))
        size = _resolve_voxel_size(voxel_size, source.voxel_size, np.ndim(image))
        _write_volume(Path(dest), source, voxel_size=size, progress=None)
        return cls.open(dest)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "VolumeStore":
        """Open a volume written by this package; :class:`NotAVolumeError` otherwise."""
        path = Path(path)
        try:
            attrs = read_json(path / "zarr.json").get("attributes", {})
            stored = attrs["ezquant"]
            if stored.get("format") != FORMAT_VERSION:
                raise NotAVolumeError(f"{path.name!r} has volume format {stored.get('format')!r}, "
                                      f"this version reads {FORMAT_VERSION}")
            meta = VolumeMeta.from_dict(stored["volume"])
        except NotAVolumeError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, StorageError):
            raise NotAVolumeError(f"{path.name!r} is not an EZQuant volume") from None
        return cls(path, meta)

    # -- arrays ---------------------------------------------------------------------------

    def _array(self, key: tuple, path):
        """The cached object under ``key``: else ``open_reader(path)`` (chunk files decoded
        directly, see :class:`.zarrio.DirectArray`), or ``path()`` when it is a function (a label
        version's array, through its manifest)."""
        with self._lock:
            array = self._arrays.get(key)
            if array is not None:
                self._arrays.move_to_end(key)
                return array
        array = path() if callable(path) else open_reader(path)
        with self._lock:
            self._arrays[key] = array
            while len(self._arrays) > _ARRAY_CACHE_SIZE:
                self._arrays.popitem(last=False)
        return array

    def _check_plane(self, level: int, z: int) -> tuple[int, int, int]:
        level, z = operator.index(level), operator.index(z)
        if not 0 <= level < self.meta.n_levels:
            raise TileOutOfRangeError(
                f"level {level} is out of range: this volume has levels 0..{self.meta.n_levels - 1}")
        shape = self.meta.level_shapes[level]
        if not 0 <= z < shape[0]:
            raise TileOutOfRangeError(f"plane z={z} is out of range: this volume has planes 0..{shape[0] - 1}")
        return shape

    @staticmethod
    def _read(array, shape, z, y0, y1, x0, x1) -> np.ndarray:
        y0, y1 = (min(max(operator.index(v), 0), shape[1]) for v in (y0, y1))
        x0, x1 = (min(max(operator.index(v), 0), shape[2]) for v in (x0, x1))
        if y1 <= y0 or x1 <= x0:
            return np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=array.dtype)
        return array[z, y0:y1, x0:x1]

    def _tile_bounds(self, shape, ty: int, tx: int, tile_size: int) -> tuple[int, int, int, int]:
        ty, tx, tile_size = operator.index(ty), operator.index(tx), operator.index(tile_size)
        if tile_size < 1:
            raise TileOutOfRangeError(f"tile_size must be >= 1, got {tile_size}")
        rows, cols = -(-shape[1] // tile_size), -(-shape[2] // tile_size)
        if not (0 <= ty < rows and 0 <= tx < cols):
            raise TileOutOfRangeError(f"tile ({ty}, {tx}) is out of range: this level has {rows} x {cols} tiles")
        return ty * tile_size, (ty + 1) * tile_size, tx * tile_size, (tx + 1) * tile_size

    # -- intensities ----------------------------------------------------------------------

    def read_region(self, level: int, z: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels [y0, y1) x [x0, x1) of plane ``z`` of a level, clipped to the plane.

        Returns a (h, w) array of the volume's dtype (h or w is 0 if nothing is left).
        Raises :class:`TileOutOfRangeError` for a level or plane that does not exist.
        """
        shape = self._check_plane(level, z)
        return self._read(self._array(("image", level), self.path / str(level)), shape, z, y0, y1, x0, x1)

    def read_box(self, version: str | None, region: tuple[slice, slice, slice]) -> np.ndarray:
        """Level 0 of a label ``version`` (the intensities when ``None``) in ``region``, three
        slices (steps of 1; clipped to the volume as numpy clips them), as a (Z, Y, X) array, in
        one read: what an edit reads."""
        array = self._array(("image", 0), self.path / "0") if version is None else self._label_array(version, 0)
        return np.asarray(array[tuple(region)])

    def read_tile(self, level: int, z: int, ty: int, tx: int, tile_size: int = TILE_SIZE) -> np.ndarray:
        """Tile (ty, tx) of plane ``z``: pixels [ty*ts, (ty+1)*ts) x [tx*ts, (tx+1)*ts), clipped.

        Edge tiles are smaller than ``tile_size``; tiles outside the level raise
        :class:`TileOutOfRangeError`. With the default size a tile is exactly one chunk.
        """
        shape = self._check_plane(level, z)
        y0, y1, x0, x1 = self._tile_bounds(shape, ty, tx, tile_size)
        return self._read(self._array(("image", level), self.path / str(level)), shape, z, y0, y1, x0, x1)

    # -- orthogonal planes (XZ, YZ) --------------------------------------------------------

    def _has_ortho(self, root: Path, test) -> bool:
        with self._lock:
            found = self._arrays.get(("has-ortho", root))
        if found is None:
            found = test()
            with self._lock:
                self._arrays[("has-ortho", root)] = found
        return found

    def _ortho_source(self, key: tuple, root: Path, plane: str, level: int):
        """The layout of ``plane`` of the intensities, or, where it was never written, the level
        itself (same values, one chunk per plane)."""
        if self._has_ortho(root, lambda: has_ortho(root)):
            return self._array(key + (plane,), root / plane / str(level))
        return self._array(key, root / str(level))

    def build_ortho_layouts(self) -> list[str]:
        """Write the XZ / YZ layouts (see :mod:`.ortho`) where this volume or one of its label
        versions was stored without them; returns what was written (``"image"``, ``"v1"``, ...).
        A 2D image needs none. Stores already open in other processes keep reading the planes
        until they are opened again (a server restart)."""
        if self.meta.shape[0] < 2:
            return []
        shapes = list(self.meta.level_shapes)
        built = []
        if add_missing_layouts(self.path, lambda k: open_array(self.path / str(k)), shapes,
                               np.dtype(self.meta.dtype)):
            built.append("image")
        for version in self.label_versions():
            layout = _labels.version_layout(self.path, version)
            if layout.has_ortho():  # a delta version keeps its base's layouts in step
                continue
            if layout.is_delta:  # over a base stored without them: made complete first
                _labels.materialise_version(self.path, self.meta, version)
            root = self.path / _labels.LABELS_GROUP / version
            if add_missing_layouts(root, lambda k, root=root: open_array(root / str(k)), shapes, np.uint32,
                                   LABEL_DEPTH, shuffle=_labels.LABEL_SHUFFLE):
                built.append(version)
        self._forget_layouts()  # this store reads the new layouts from now on
        return built

    def _forget_layouts(self) -> None:
        with self._lock:
            for key in [k for k in self._arrays if k and k[0] in ("has-ortho", "layout")]:
                del self._arrays[key]

    def materialise_label_versions(self) -> list[str]:
        """Make every delta label version (an edit: see :mod:`.manifest`) complete in place, so
        that any zarr or OME-Zarr reader opening the volume's folder reads it; returns the
        versions made complete. Their values do not change, and readers keep working meanwhile."""
        done = [version for version in self.label_versions()
                if _labels.materialise_version(self.path, self.meta, version)]
        self._forget_layouts()
        return done

    def _ortho_bounds(self, plane: str, level: int, index: int, ty: int, tx: int,
                      tile_size: int) -> tuple[int, int, int, int]:
        if plane not in ORTHO_PLANES:
            raise TileOutOfRangeError(f"plane must be one of {', '.join(ORTHO_PLANES)}, got {plane!r}")
        self._check_plane(level, 0)
        index = operator.index(index)
        shape = ortho_shape(self.meta, plane, level)
        if not 0 <= index < shape[0]:
            across = "y" if plane == "xz" else "x"
            raise TileOutOfRangeError(f"{plane} plane {across}={index} is out of range: level {level} has "
                                      f"{across} 0..{shape[0] - 1}")
        r0, r1, c0, c1 = self._tile_bounds(shape, ty, tx, tile_size)
        return r0, min(r1, shape[1]), c0, min(c1, shape[2])

    def read_ortho_tile(self, plane: str, level: int, index: int, ty: int, tx: int,
                        tile_size: int = TILE_SIZE) -> np.ndarray:
        """Tile (ty, tx) of the XZ plane at row ``y = index`` (``plane="xz"``) or the YZ plane at
        column ``x = index`` (``"yz"``) of a level: z downwards, stretched to the physical aspect
        (see :mod:`.ortho`); edge tiles are smaller. :class:`TileOutOfRangeError` outside."""
        r0, r1, c0, c1 = self._ortho_bounds(plane, level, index, ty, tx, tile_size)
        array = self._ortho_source(("image", level), self.path, plane, level)
        return read_ortho(array, self.meta, plane, level, index, r0, r1, c0, c1)

    def read_label_ortho_tile(self, version: str, plane: str, level: int, index: int, ty: int, tx: int,
                              tile_size: int = TILE_SIZE) -> np.ndarray:
        """Like :meth:`read_ortho_tile`, for a label version (uint32)."""
        r0, r1, c0, c1 = self._ortho_bounds(plane, level, index, ty, tx, tile_size)
        layout = self._layout(version)  # raises LabelVersionError
        if self._has_ortho(layout.folder, layout.has_ortho):
            array = self._array(("labels", version, level, plane), lambda: layout.open(f"{plane}/{level}"))
        else:
            array = self._label_array(version, level)
        return read_ortho(array, self.meta, plane, level, index, r0, r1, c0, c1)

    def read_volume(self, level: int = 0) -> np.ndarray:
        """A whole level as a (Z, Y, X) array (mind its size at level 0)."""
        self._check_plane(level, 0)
        return self._array(("image", level), self.path / str(level))[...]

    # -- labels ---------------------------------------------------------------------------

    def label_versions(self) -> list[str]:
        """Names of the label versions, oldest first (``["v1", "v2", ...]``)."""
        return _labels.list_versions(self.path)

    def label_version_meta(self, version: str) -> LabelVersionMeta:
        """What :meth:`write_labels` returned for ``version``."""
        return _labels.label_version_meta(self.path, version)

    def write_labels(self, labels: np.ndarray, *, parent: str | None = None) -> LabelVersionMeta:
        """Store a complete segmentation as a new immutable version ``vN``.

        Parameters
        ----------
        labels : (Z, Y, X) integer array, or (Y, X) when Z = 1; 0 = background, ids < 2**32.
            Not modified.
        parent : the version this one derives from; its chunk files equal to the new ones are
            shared (hard links) instead of written. ``None``: a fresh segmentation.

        Raises
        ------
        LabelShapeError : shape differs from the volume's.
        InvalidLabelsError : not integers, negative, or too large.
        LabelVersionError : ``parent`` does not exist.
        """
        return _labels.write_full(self.path, self.meta, labels, parent=parent)

    def write_label_planes(self, plane_of, *, n_labels: int, parent: str | None = None) -> LabelVersionMeta:
        """Store a segmentation too large to hold as a new version ``vN``, a plane at a time.

        ``plane_of(z)`` returns level-0 plane ``z`` as a (Y, X) integer array and is called once
        per plane, in order; ``n_labels`` is the largest id. Otherwise as :meth:`write_labels`.
        """
        return _labels.write_planes(self.path, self.meta, plane_of, n_labels=n_labels, parent=parent)

    def level_path(self, level: int = 0) -> Path:
        """The folder of a level's zarr array (for readers in other processes)."""
        self._check_plane(level, 0)
        return self.path / str(level)

    def write_label_edit(self, parent: str, region: tuple[slice, slice, slice],
                         new_values: np.ndarray, before: np.ndarray | None = None) -> LabelVersionMeta:
        """A new version ``vN``: ``parent`` with level-0 ``region`` replaced by ``new_values``.

        Parameters
        ----------
        parent : an existing version.
        region : (z, y, x) slices with step 1 inside the volume, e.g.
            ``(slice(3, 4), slice(100, 180), slice(40, 90))``.
        new_values : integer array of the region's (z, y, x) shape ((y, x) is accepted for a
            one-plane region). Not modified.
        before : the parent's level-0 values in ``region``, when the caller has read them (an
            edit has): only the chunks that hold a changed voxel are then read and written.

        Only chunks that intersect the region, at each level and in the XZ / YZ layouts, are
        read and compared; the new version holds those that changed and a manifest over its
        complete base, nothing for the others (see :mod:`.manifest`), so an edit costs the same
        on any volume size.
        """
        return _labels.write_edit(self.path, self.meta, parent, region, new_values, before)

    def _layout(self, version: str):
        """Where a version's files are (complete, or a delta through its manifest); versions are
        immutable and never removed, so this is read once. :class:`LabelVersionError` if unknown."""
        return self._array(("layout", version), lambda: _labels.version_layout(self.path, version))

    def _label_array(self, version: str, level: int):
        layout = self._layout(version)
        return self._array(("labels", version, level), lambda: layout.open(str(level)))

    def read_labels(self, version: str, level: int = 0) -> np.ndarray:
        """A whole level of a version as a (Z, Y, X) uint32 array."""
        self._check_plane(level, 0)
        return self._label_array(version, level)[...]

    def read_label_region(self, version: str, level: int, z: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Like :meth:`read_region`, for a label version (uint32)."""
        shape = self._check_plane(level, z)
        return self._read(self._label_array(version, level), shape, z, y0, y1, x0, x1)

    def read_label_tile(self, version: str, level: int, z: int, ty: int, tx: int,
                        tile_size: int = TILE_SIZE) -> np.ndarray:
        """Like :meth:`read_tile`, for a label version (uint32)."""
        shape = self._check_plane(level, z)
        y0, y1, x0, x1 = self._tile_bounds(shape, ty, tx, tile_size)
        return self._read(self._label_array(version, level), shape, z, y0, y1, x0, x1)

    # -- exports --------------------------------------------------------------------------

    def export_labels_tiff(self, version: str, out: str | os.PathLike) -> Path:
        """Write a version's level 0 as a uint32 OME-TIFF (zlib), plane by plane.

        Axes ZYX (YX for a 2D volume), ``PhysicalSize{Z,Y,X}`` in micrometres and the x/y
        resolution tags set from the voxel size. Written to a temporary file beside ``out`` and
        renamed into place; an existing ``out`` is replaced. Returns ``out``.
        """
        import tifffile  # only exports need it

        out = Path(out)
        array = self._label_array(version, 0)
        z, y, x = self.meta.shape
        vz, vy, vx = self.meta.voxel_size
        metadata = {"axes": "ZYX" if z > 1 else "YX", "PhysicalSizeY": vy, "PhysicalSizeX": vx,
                    "PhysicalSizeYUnit": "µm", "PhysicalSizeXUnit": "µm", "Name": f"labels {version}"}
        if z > 1:
            metadata.update(PhysicalSizeZ=vz, PhysicalSizeZUnit="µm")
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
        try:
            with tifffile.TiffWriter(tmp, ome=True, bigtiff=z * y * x * 4 > 2 ** 31) as tif:
                tif.write((array[i] for i in range(z)), shape=(z, y, x) if z > 1 else (y, x), dtype=np.uint32,
                          photometric="minisblack", compression="zlib", metadata=metadata,
                          resolution=(1 / vx, 1 / vy), resolutionunit="MICROMETER")
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return out

    def export_labels_zarr(self, version: str, out: str | os.PathLike) -> Path:
        """Write a version as a standalone OME-Zarr (NGFF 0.5) image directory at ``out``.

        What is exported: the label version alone, as a multiscale uint32 *image* (all levels,
        axes z, y, x, scale = voxel size), whose group also carries ``image-label`` metadata
        without a ``source`` so viewers show it as labels. The intensities are not included.
        Chunk files are copied, not linked, so the export is independent of this volume.
        ``out`` must not exist; it is written beside itself and renamed into place.
        """
        out = Path(out)
        layout = self._layout(version)  # raises LabelVersionError
        partial = _partial_dir(out)
        try:
            partial.mkdir()  # a delta version's chunks resolved through its manifest: a complete copy
            copy_arrays(layout, partial, [str(level) for level in range(self.meta.n_levels)], link=False)
            attrs = label_attributes(name=version, shapes=list(self.meta.level_shapes),
                                     voxel_size=self.meta.voxel_size, source_image=None)
            write_group(partial, {"ome": attrs, "ezquant": {"label_version": self.label_version_meta(version).to_dict(),
                                                            "volume": self.meta.to_dict()}})
            _publish(partial, out)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return out
