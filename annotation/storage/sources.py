"""Readers that hand over one (Y, X) plane at a time: numpy arrays, TIFF / OME-TIFF, OME-Zarr.

A source knows its (Z, Y, X) shape, dtype and voxel size (``None`` where the file says
nothing) before any pixel is read, so size limits are checked before anything is written. Every
plane it returns is a new C-contiguous array of a native-endian integer or float type.

TIFF files are read through tifffile's zarr view of the first series, so only the pages (or
strips) that hold the requested plane are decoded; a page that stores several samples per
pixel (RGB, ``YXS``) is decoded whole and the channel picked from it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from .errors import ChannelError, DimensionalityError, InvalidImageError
from .ngff import read_multiscale, unit_to_micrometre

__all__ = ["ArraySource", "PlaneSource", "OmeZarrSource", "TiffSource", "open_source"]

_CHANNEL_AXES = "CS"          # tifffile: C = channel, S = samples per pixel (RGB)
_STACK_AXES = "ZIQ"           # tifffile: Z = depth, I = image sequence, Q = unknown
_CORRUPT_HINTS = ("invalid page offset", "failed to reshape", "corrupt", "truncat")


class PlaneSource(Protocol):
    """What the volume writer reads from."""

    shape: tuple[int, int, int]
    dtype: np.dtype
    voxel_size: tuple[float | None, float | None, float | None]
    name: str

    def plane(self, z: int) -> np.ndarray: ...

    def close(self) -> None: ...


def _one_line(message: BaseException | str) -> str:
    """The first line of a message, without tifffile's ``<TiffFile 'x'>`` prefix, at most 200 chars."""
    text = str(message).strip().splitlines()
    line = re.sub(r"^<[^>]*>\s*", "", text[0]) if text else type(message).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _storage_dtype(dtype: np.dtype, what: str) -> np.dtype:
    """The native-endian dtype a plane is stored as; bool becomes uint8."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind not in "uif":
        raise InvalidImageError(f"{what} has pixel type {dtype}; only integer and real types are supported")
    return dtype.newbyteorder("=")


def _check_extent(shape: tuple[int, ...], what: str) -> None:
    if any(s == 0 for s in shape):
        raise InvalidImageError(f"{what} is empty (shape {tuple(shape)})")


class ArraySource:
    """An in-memory (Y, X) or (Z, Y, X) array; it is read, never modified or copied whole."""

    def __init__(self, image: np.ndarray, *, name: str = "") -> None:
        image = np.asarray(image)
        if image.ndim not in (2, 3):
            raise DimensionalityError(f"an image must be (Y, X) or (Z, Y, X), got {image.ndim} axes {image.shape}")
        _check_extent(image.shape, "the image")
        self._image = image if image.ndim == 3 else image[np.newaxis]
        self.shape = tuple(int(s) for s in self._image.shape)
        self.dtype = _storage_dtype(image.dtype, "the image")
        self.voxel_size = (None, None, None)
        self.name = name

    def plane(self, z: int) -> np.ndarray:
        return np.array(self._image[z], dtype=self.dtype, order="C", copy=True)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _tifffile_problems() -> Iterator[list[str]]:
    """Collect tifffile's log warnings of this thread that mean a damaged file.

    tifffile logs, rather than raises, when a page chain is cut short, and then offers the
    pages it could read as a smaller image: a truncated stack would import as its first plane.
    """
    found: list[str] = []
    thread = threading.get_ident()

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if record.thread == thread and any(h in message.lower() for h in _CORRUPT_HINTS):
                found.append(message)

    handler = _Catch(level=logging.WARNING)
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


def _pick_axes(axes: str, shape: tuple[int, ...], channel: int | None, what: str) -> tuple[int | None, int | None]:
    """Validate a squeezed axes string; return (stack axis index, channel axis index)."""
    if "Y" not in axes or "X" not in axes:
        raise DimensionalityError(f"{what} has axes {axes!r} {tuple(shape)}: an image needs Y and X")
    channels = [i for i, a in enumerate(axes) if a in _CHANNEL_AXES]
    stacks = [i for i, a in enumerate(axes) if a not in _CHANNEL_AXES + "YX"]
    if len(channels) > 1 or len(stacks) > 1:
        raise DimensionalityError(
            f"{what} has axes {axes!r} {tuple(shape)}: only YX and ZYX images, with at most one channel axis, "
            "are supported")
    if stacks and axes[stacks[0]] not in _STACK_AXES:
        raise DimensionalityError(
            f"{what} has axes {axes!r} {tuple(shape)}: a {axes[stacks[0]]!r} axis is not a z-stack "
            "(time series are not supported)")
    channel_axis = channels[0] if channels else None
    n_channels = shape[channel_axis] if channel_axis is not None else 1
    _check_channel(channel, n_channels, axes, what)
    return (stacks[0] if stacks else None), channel_axis


def _check_channel(channel: int | None, n_channels: int, axes: str, what: str) -> None:
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, np.integer))):
        raise ChannelError(f"channel must be a whole number, got {channel!r}")
    if channel is None and n_channels > 1:
        raise ChannelError(
            f"{what} has {n_channels} channels (axes {axes!r}): choose one with channel=0..{n_channels - 1}")
    if channel is not None and not 0 <= channel < n_channels:
        raise ChannelError(f"channel={channel} is out of range: {what} has {n_channels} channel(s) (axes {axes!r})")


class _IndexedSource:
    """A source over an n-D array-like with a known stack axis and channel axis."""

    def __init__(self, array, axes: str, stack_axis: int | None, channel_axis: int | None,
                 channel: int | None, what: str) -> None:
        self._array = array
        self._what = what
        self._stack_axis = stack_axis
        self._index: list[object] = [slice(None)] * len(axes)
        if channel_axis is not None:
            self._index[channel_axis] = int(channel or 0)
        kept = [a for i, a in enumerate(axes) if i not in (stack_axis, channel_axis)]
        self._transpose = kept != ["Y", "X"]
        y, x = array.shape[axes.index("Y")], array.shape[axes.index("X")]
        self.shape = (array.shape[stack_axis] if stack_axis is not None else 1, int(y), int(x))
        _check_extent(self.shape, what)

    def _read(self, z: int) -> np.ndarray:
        index = list(self._index)
        if self._stack_axis is not None:
            index[self._stack_axis] = z
        plane = self._array[tuple(index)]
        plane = plane.T if self._transpose else plane
        return np.array(plane, dtype=self.dtype, order="C", copy=True)


class TiffSource(_IndexedSource):
    """The first series of a TIFF, OME-TIFF or ImageJ TIFF, at full resolution."""

    def __init__(self, path: Path, *, channel: int | None = None) -> None:
        import tifffile  # only the importer needs it
        import zarr

        self.name = path.name
        what = f"TIFF {path.name!r}"
        self._tif = None
        self._store = None
        try:
            with _tifffile_problems() as problems:
                try:
                    self._tif = tifffile.TiffFile(path)
                    series = self._tif.series[0] if self._tif.series else None
                except Exception as exc:  # TiffFileError, struct.error, ...: unreadable
                    raise InvalidImageError(f"{path.name!r} is not a readable TIFF: {_one_line(exc)}") from None
                if problems:
                    raise InvalidImageError(f"{what} is corrupt or truncated: {_one_line(problems[0])}")
                if series is None:
                    raise InvalidImageError(f"{what} holds no image")
                axes, shape = series.axes.upper(), tuple(series.shape)
                stack_axis, channel_axis = _pick_axes(axes, shape, channel, what)
                self.dtype = _storage_dtype(series.dtype, what)
                self.voxel_size = _tiff_voxel_size(self._tif)
                self._store = series.aszarr()
                array = zarr.open_array(self._store, mode="r")
                if tuple(array.shape) != shape:
                    raise InvalidImageError(f"{what}: pixel data {array.shape} does not match its series {shape}")
            super().__init__(array, axes, stack_axis, channel_axis, channel, what)
        except BaseException:
            self.close()
            raise

    def plane(self, z: int) -> np.ndarray:
        with _tifffile_problems() as problems:
            try:
                plane = self._read(z)
            except Exception as exc:  # a codec or tifffile error: the pixel data is damaged
                raise InvalidImageError(f"{self._what} is corrupt or truncated (plane {z}): {_one_line(exc)}") from None
        if problems:
            raise InvalidImageError(f"{self._what} is corrupt or truncated (plane {z}): {_one_line(problems[0])}")
        return plane

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._tif is not None:
            self._tif.close()
            self._tif = None


def _tiff_voxel_size(tif) -> tuple[float | None, float | None, float | None]:
    """(z, y, x) micrometres from OME-XML PhysicalSize* or ImageJ spacing/resolution."""
    if tif.is_ome and tif.ome_metadata:
        try:
            root = ET.fromstring(tif.ome_metadata)
        except ET.ParseError:
            root = None
        pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None) if root is not None \
            else None
        if pixels is not None:
            sizes = []
            for axis in "ZYX":
                value = pixels.get(f"PhysicalSize{axis}")
                factor = unit_to_micrometre(pixels.get(f"PhysicalSize{axis}Unit"))
                try:
                    sizes.append(float(value) * factor if value is not None and factor else None)
                except ValueError:
                    sizes.append(None)
            return tuple(s if s and s > 0 else None for s in sizes)
    ij = tif.imagej_metadata if tif.is_imagej else None
    if ij:
        factor = unit_to_micrometre(ij.get("unit")) if ij.get("unit") else None
        if factor is None:  # no unit or "pixel": the numbers say nothing about micrometres
            return (None, None, None)
        page = tif.pages.first
        sizes = []
        for tag in ("YResolution", "XResolution"):
            value = page.tags.get(tag)
            try:
                numerator, denominator = value.value
                sizes.append(denominator / numerator * factor if numerator else None)
            except (AttributeError, TypeError, ValueError):
                sizes.append(None)
        spacing = ij.get("spacing")
        z = float(spacing) * factor if isinstance(spacing, (int, float)) and spacing > 0 else None
        return (z, *sizes)
    return (None, None, None)


class OmeZarrSource(_IndexedSource):
    """Level 0 of an OME-Zarr image (NGFF 0.4 on zarr v2, or 0.5 on zarr v3)."""

    def __init__(self, path: Path, *, channel: int | None = None) -> None:
        import zarr

        self.name = path.name
        what = f"OME-Zarr {path.name!r}"
        try:
            group = zarr.open_group(str(path), mode="r")
            multiscale = read_multiscale(group.attrs.asdict())
        except Exception:  # no zarr.json / .zgroup, or unreadable metadata; its text names server paths
            raise InvalidImageError(f"{path.name!r} is neither a TIFF file nor an OME-Zarr image") from None
        if multiscale is None:
            raise InvalidImageError(f"{path.name!r} is not an OME-Zarr image (no multiscales metadata)")
        try:
            array = group[multiscale["path"]]
        except Exception as exc:
            raise InvalidImageError(f"{what} has no readable level-0 array {multiscale['path']!r} "
                                    f"({type(exc).__name__})") from None
        names = multiscale["axes"]
        if not isinstance(array, zarr.Array) or len(names) != array.ndim or len(set(names)) != len(names) \
                or not set(names) <= set("tczyx"):
            raise InvalidImageError(f"{what}: axes {names} do not describe its {getattr(array, 'ndim', '?')}-D array")
        shape = tuple(int(s) for s in array.shape)
        if "t" in names and shape[names.index("t")] > 1:
            raise DimensionalityError(f"{what} is a time series ({shape[names.index('t')]} time points); not supported")
        # Map NGFF names to tifffile's letters so one rule decides for both formats.
        axes = "".join({"t": "Q", "c": "C", "z": "Z", "y": "Y", "x": "X"}[n] for n in names)
        squeezed = [i for i, n in enumerate(names) if n == "t"]
        kept_axes = "".join(a for i, a in enumerate(axes) if i not in squeezed)
        kept_shape = tuple(s for i, s in enumerate(shape) if i not in squeezed)
        stack_axis, channel_axis = _pick_axes(kept_axes, kept_shape, channel, what)
        self.dtype = _storage_dtype(array.dtype, what)
        scale = dict(zip(names, multiscale["scale"], strict=True))
        self.voxel_size = tuple(scale.get(n) for n in "zyx")
        view = array if not squeezed else _Squeeze(array, squeezed[0])
        super().__init__(view, kept_axes, stack_axis, channel_axis, channel, what)

    def plane(self, z: int) -> np.ndarray:
        try:
            return self._read(z)
        except Exception as exc:
            # zarr's messages name server paths: keep only the kind of failure.
            raise InvalidImageError(f"{self._what} is corrupt (plane {z}: {type(exc).__name__})") from None

    def close(self) -> None:
        pass


class _Squeeze:
    """An array view with one axis of length 1 removed, read lazily."""

    def __init__(self, array, axis: int) -> None:
        self._array, self._axis = array, axis
        self.shape = tuple(s for i, s in enumerate(array.shape) if i != axis)

    def __getitem__(self, index: tuple) -> np.ndarray:
        index = list(index)
        index.insert(self._axis, 0)
        return self._array[tuple(index)]


def open_source(src: str | os.PathLike, *, channel: int | None = None) -> PlaneSource:
    """Open a TIFF file or an OME-Zarr directory for plane-by-plane reading.

    Raises
    ------
    InvalidImageError : missing, neither TIFF nor OME-Zarr, or corrupt.
    DimensionalityError, ChannelError : see :func:`import_image`.
    """
    path = Path(src)
    if path.is_dir():
        return OmeZarrSource(path, channel=channel)
    if not path.is_file():
        raise InvalidImageError(f"{path.name!r} does not exist or is not a file")
    return TiffSource(path, channel=channel)
