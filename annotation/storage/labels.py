"""Immutable label versions that share unchanged chunk files with their parent.

Scheme
------
A volume's segmentations live in its ``labels/`` group as ``v1``, ``v2``, ... (the group's
``labels`` attribute lists them in order), each a complete NGFF label image: uint32, same
chunking as the intensities, levels ``[::2**k, ::2**k]`` of level 0.

A new version is a new set of arrays, so a version once written never changes, and every
version can be read (and exported, or opened by any NGFF reader) on its own. It is nonetheless
cheap, because a chunk that is equal to the parent's chunk is not written again: its file is a
hard link (``os.link``) to the parent's file. An edit of one nucleus therefore writes the few
chunks around it at each level and links the rest: the cost in time and disk is that of the
changed chunks plus one directory entry per shared chunk, whatever the volume's size.

Why this is safe:

* chunks are never modified in place: zarr writes a chunk to a temporary file and renames it
  over the old name (``zarr.storage.LocalStore``), so a write to a linked name would replace
  the link, not the shared file; and this package never writes into an existing version;
* a version is built in ``labels/.vN.partial-<random>`` and renamed to ``labels/vN`` only when
  complete; the ``labels`` attribute is updated after that, so a reader that lists versions
  never sees a half-written one; a crash leaves at most an unlisted directory, whose number is
  skipped;
* writers of one volume are serialised by an ``fcntl.flock`` on ``labels/.lock`` (version
  numbers are allocated under it), so two processes never create the same ``vN``;
* where the file system refuses a hard link (another device, no link support, too many links),
  the chunk file is copied instead (``chunks_copied``).

Hard links need the versions on one local POSIX file system, which is where volumes live.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InvalidLabelsError, LabelShapeError, LabelVersionError
from .meta import LabelVersionMeta, VolumeMeta, version_number
from .ngff import label_attributes, labels_group_attributes
from .ortho import ORTHO_PLANES, has_ortho, ortho_chunk, write_ortho_levels
from .zarrio import CHUNK, chunk_path, create_array, open_array, read_json, same_encoding, write_group

__all__ = ["as_labels", "label_version_meta", "list_versions", "write_edit", "write_full", "write_planes"]

LABELS_GROUP = "labels"
_UINT32_MAX = 2 ** 32 - 1


@dataclass
class _Counts:
    written: int = 0
    linked: int = 0
    copied: int = 0


def list_versions(volume: Path) -> list[str]:
    """Names of the complete versions, oldest first."""
    try:
        attrs = read_json(volume / LABELS_GROUP / "zarr.json").get("attributes", {})
    except FileNotFoundError:
        return []
    return [str(n) for n in attrs.get("ome", {}).get("labels", [])]


def label_version_meta(volume: Path, name: str) -> LabelVersionMeta:
    """The stored metadata of one version; :class:`LabelVersionError` if there is no such version."""
    if version_number(name) is None or name not in list_versions(volume):
        raise LabelVersionError(f"no label version {name!r} in this volume")
    attrs = read_json(volume / LABELS_GROUP / name / "zarr.json")["attributes"]
    return LabelVersionMeta.from_dict(attrs["ezquant"]["label_version"])


def as_labels(labels: np.ndarray, shape: tuple[int, int, int], what: str = "labels") -> np.ndarray:
    """Check ``labels`` against a (Z, Y, X) volume shape; return a uint32 (Z, Y, X) array.

    (Y, X) is accepted when Z = 1. ``labels`` is never modified; it is copied only when its
    dtype or byte order is not already uint32.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and shape[0] == 1:
        labels = labels[np.newaxis]
    if labels.shape != tuple(shape):
        raise LabelShapeError(f"{what} have shape {labels.shape}, the volume is {tuple(shape)} (z, y, x)")
    if labels.dtype.kind == "b":  # a mask is not labels: one id for every object would be a guess
        raise InvalidLabelsError(f"{what} are a true/false mask; labels hold an integer id per nucleus "
                                 "(0 = background)")
    if labels.dtype.kind not in "ui":
        raise InvalidLabelsError(f"{what} must be integers (0 = background), got dtype {labels.dtype}")
    if labels.size and labels.dtype.kind == "i" and labels.min() < 0:
        raise InvalidLabelsError(f"{what} contain negative ids; ids are 0 (background) or positive")
    if labels.size and labels.dtype.itemsize > 4 and labels.max() > _UINT32_MAX:
        raise InvalidLabelsError(f"{what} contain ids above {_UINT32_MAX}; ids are stored as uint32")
    return labels.astype(np.uint32, copy=False)


@contextlib.contextmanager
def _locked(volume: Path) -> Iterator[None]:
    group = volume / LABELS_GROUP
    with open(group / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        yield


def _next_number(volume: Path) -> int:
    names = set(list_versions(volume)) | {p.name for p in (volume / LABELS_GROUP).iterdir()}
    numbers = [version_number(n) for n in names]
    return max([n for n in numbers if n is not None], default=0) + 1


def _share(src: Path, dst: Path, counts: _Counts) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # EXDEV, EPERM, EMLINK: same bytes, at the price of a copy
        shutil.copyfile(src, dst)
        counts.copied += 1
    counts.linked += 1


def _chunk_files(array_dir: Path) -> Iterator[tuple[tuple[int, int, int], Path]]:
    """Existing chunk files of an array: ((iz, iy, ix), path)."""
    root = array_dir / "c"
    if not root.is_dir():
        return
    for zdir in os.scandir(root):
        for ydir in os.scandir(zdir.path):
            for xfile in os.scandir(ydir.path):
                yield (int(zdir.name), int(ydir.name), int(xfile.name)), Path(xfile.path)


def _new_version(volume: Path, meta: VolumeMeta, parent: str | None, build) -> LabelVersionMeta:
    """Allocate vN, let ``build(partial_dir, counts)`` write its levels, publish it."""
    group = volume / LABELS_GROUP
    with _locked(volume):
        number = _next_number(volume)
        name = f"v{number}"
        partial = group / f".{name}.partial-{secrets.token_hex(6)}"
        partial.mkdir()
        try:
            counts = _Counts()
            n_labels = build(partial, counts)
            version = LabelVersionMeta(
                name=name, number=number, parent=parent, shape=meta.shape, n_labels=n_labels,
                chunks_written=counts.written, chunks_linked=counts.linked, chunks_copied=counts.copied)
            write_group(partial, {
                "ome": label_attributes(name=name, shapes=list(meta.level_shapes), voxel_size=meta.voxel_size),
                "ezquant": {"label_version": version.to_dict()},
            })
            os.rename(partial, group / name)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        attrs = read_json(group / "zarr.json").get("attributes", {})
        names = [n for n in attrs.get("ome", {}).get("labels", []) if n != name] + [name]
        write_group(group, {**attrs, "ome": labels_group_attributes(names)})
    return version


def _parent_arrays(volume: Path, meta: VolumeMeta, parent: str | None) -> list | None:
    if parent is None:
        return None
    label_version_meta(volume, parent)  # raises if unknown
    return [open_array(volume / LABELS_GROUP / parent / str(k)) for k in range(meta.n_levels)]


def _chunk_slices(shape: tuple[int, int, int], iy: int, ix: int) -> tuple[slice, slice]:
    cy, cx = CHUNK[1], CHUNK[2]
    return slice(iy * cy, min((iy + 1) * cy, shape[1])), slice(ix * cx, min((ix + 1) * cx, shape[2]))


def write_full(volume: Path, meta: VolumeMeta, labels: np.ndarray, *, parent: str | None) -> LabelVersionMeta:
    """A new version holding ``labels``; chunks equal to ``parent``'s are linked to its files."""
    labels = as_labels(labels, meta.shape)
    n_labels = int(labels.max()) if labels.size else 0
    return write_planes(volume, meta, lambda z: labels[z], n_labels=n_labels, parent=parent,
                        levels=lambda k: labels[:, ::2 ** k, ::2 ** k])


def write_planes(volume: Path, meta: VolumeMeta, plane_of, *, n_labels: int, parent: str | None,
                 levels=None) -> LabelVersionMeta:
    """A new version whose level-0 plane ``z`` is ``plane_of(z)``, a (Y, X) uint32 array, asked
    for once per plane in order: a volume too large to hold is written a plane at a time (its
    levels are strides of that plane). ``n_labels`` is the largest id. Chunks equal to
    ``parent``'s are linked to its files. The XZ / YZ layouts of a stack are copied from
    ``levels(k)`` (level k as a (Z, Y, X) array-like) when given, else read back from the
    levels just written, a block at a time."""
    parents = _parent_arrays(volume, meta, parent)
    level_shapes = list(meta.level_shapes)

    def build(partial: Path, counts: _Counts) -> int:
        arrays = [create_array(partial / str(level), shape, np.uint32) for level, shape in enumerate(level_shapes)]
        before = [parents[level] if parents is not None and same_encoding(parents[level], arrays[level]) else None
                  for level in range(len(level_shapes))]
        for z in range(meta.shape[0]):
            full = as_labels(np.asarray(plane_of(z))[np.newaxis], (1, *meta.shape[1:]), what=f"labels of plane {z}")[0]
            for level, shape in enumerate(level_shapes):
                step = 2 ** level
                plane = np.ascontiguousarray(full[::step, ::step])
                array = arrays[level]
                old = before[level][z] if before[level] is not None else None
                if old is None:
                    array[z] = plane  # zarr skips the all-zero chunks
                rows, cols = -(-shape[1] // CHUNK[1]), -(-shape[2] // CHUNK[2])
                for iy in range(rows):
                    for ix in range(cols):
                        ys, xs = _chunk_slices(shape, iy, ix)
                        block = plane[ys, xs]
                        if old is not None and np.array_equal(block, old[ys, xs]):
                            source = chunk_path(volume / LABELS_GROUP / parent / str(level), z, iy, ix)
                            if source.exists():
                                _share(source, chunk_path(partial / str(level), z, iy, ix), counts)
                        elif block.any():
                            if old is not None:
                                array[z, ys, xs] = block
                            counts.written += 1
        if meta.is_3d:  # the XZ / YZ layouts (see .ortho)
            write_ortho_levels(partial, levels or (lambda k: arrays[k]), level_shapes, np.uint32)
        return int(n_labels)

    return _new_version(volume, meta, parent, build)


def _normalise_region(region, shape: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    if not isinstance(region, tuple) or len(region) != 3 or not all(isinstance(s, slice) for s in region):
        raise LabelShapeError(f"region must be a tuple of three slices (z, y, x), got {region!r}")
    bounds = []
    for axis, (s, size) in enumerate(zip(region, shape)):
        start = 0 if s.start is None else int(s.start)
        stop = size if s.stop is None else int(s.stop)
        if s.step not in (None, 1) or not 0 <= start <= stop <= size:
            raise LabelShapeError(
                f"region {region!r} does not lie inside the volume {tuple(shape)} with step 1 (axis {'zyx'[axis]})")
        bounds.append((start, stop))
    return tuple(bounds)


def write_edit(volume: Path, meta: VolumeMeta, parent: str, region, new_values: np.ndarray) -> LabelVersionMeta:
    """A new version equal to ``parent`` except ``region``, which takes ``new_values``.

    Only chunks that intersect the region (at each level, the region's samples of that level)
    are read, compared and written; every other chunk file of the parent is linked.
    """
    (z0, z1), (y0, y1), (x0, x1) = _normalise_region(region, meta.shape)
    values = as_labels(np.asarray(new_values), (z1 - z0, y1 - y0, x1 - x0), what="new values")
    if parent is None:
        raise LabelVersionError("an edit needs a parent version")
    parents = _parent_arrays(volume, meta, parent)
    parent_meta = label_version_meta(volume, parent)

    def build(partial: Path, counts: _Counts) -> int:
        old_region_max = 0
        for level, shape in enumerate(meta.level_shapes):
            step = 2 ** level
            # Level-k pixel j is level-0 pixel j * step: the region's level-k pixels are
            # ceil(y0 / step) .. ceil(y1 / step) - 1, sampled from the values at that stride.
            ky0, ky1, kx0, kx1 = (-(-v // step) for v in (y0, y1, x0, x1))
            sub = values[:, ky0 * step - y0::step, kx0 * step - x0::step]
            array = create_array(partial / str(level), shape, np.uint32)
            parent_dir = volume / LABELS_GROUP / parent / str(level)
            compatible = same_encoding(parents[level], array)
            touched = set()
            if z1 > z0 and ky1 > ky0 and kx1 > kx0:
                touched = {(iz, iy, ix) for iz in range(z0, z1)
                           for iy in range(ky0 // CHUNK[1], -(-ky1 // CHUNK[1]))
                           for ix in range(kx0 // CHUNK[2], -(-kx1 // CHUNK[2]))}
            if compatible:
                for key, source in _chunk_files(parent_dir):
                    if key not in touched:
                        _share(source, chunk_path(partial / str(level), *key), counts)
            else:  # a parent in another encoding (an older format): rewrite its untouched chunks
                rows, cols = -(-shape[1] // CHUNK[1]), -(-shape[2] // CHUNK[2])
                for z in range(shape[0]):
                    plane = parents[level][z]
                    for iy in range(rows):
                        for ix in range(cols):
                            ys, xs = _chunk_slices(shape, iy, ix)
                            if (z, iy, ix) not in touched and plane[ys, xs].any():
                                array[z, ys, xs] = plane[ys, xs]
                                counts.written += 1
            for iz, iy, ix in sorted(touched):
                ys, xs = _chunk_slices(shape, iy, ix)
                old = parents[level][iz, ys, xs]
                new = old.copy()
                ty0, ty1 = max(ky0, ys.start), min(ky1, ys.stop)
                tx0, tx1 = max(kx0, xs.start), min(kx1, xs.stop)
                inner = (slice(ty0 - ys.start, ty1 - ys.start), slice(tx0 - xs.start, tx1 - xs.start))
                if level == 0:
                    old_region_max = max(old_region_max, int(old[inner].max()))
                new[inner] = sub[iz - z0, ty0 - ky0:ty1 - ky0, tx0 - kx0:tx1 - kx0]
                if compatible and np.array_equal(new, old):
                    source = chunk_path(parent_dir, iz, iy, ix)
                    if source.exists():
                        _share(source, chunk_path(partial / str(level), iz, iy, ix), counts)
                elif new.any():
                    array[iz, ys, xs] = new
                    counts.written += 1
        _edit_ortho(volume / LABELS_GROUP / parent, partial, meta, ((z0, z1), (y0, y1), (x0, x1)), values)
        new_max = int(values.max()) if values.size else 0
        if old_region_max < parent_meta.n_labels or new_max >= parent_meta.n_labels:
            # The parent's largest id survives outside the region, or the edit brings a larger one.
            return max(parent_meta.n_labels, new_max)
        # The edit removed the largest id from the region; it may survive elsewhere: look.
        level0 = open_array(partial / "0")
        return max(int(level0[z].max()) for z in range(meta.shape[0]))

    return _new_version(volume, meta, parent, build)


def _edit_ortho(parent_dir: Path, partial: Path, meta: VolumeMeta, bounds, values: np.ndarray) -> None:
    """The XZ / YZ layouts of an edited version: the parent's chunks that meet the region are
    read (one chunk each, in its own layout), changed and written; all others are hard links.
    A parent without the layouts (written before them) gives a version without them: its
    XZ / YZ tiles are then read from the levels (see .ortho)."""
    if not meta.is_3d or not has_ortho(parent_dir):
        return
    (z0, z1), (y0, y1), (x0, x1) = bounds
    ignored = _Counts()  # the version's counts are of the levels' chunks
    for plane in ORTHO_PLANES:
        write_group(partial / plane, {})
        for level, shape in enumerate(meta.level_shapes):
            step = 2 ** level
            ky0, ky1, kx0, kx1 = (-(-v // step) for v in (y0, y1, x0, x1))
            sub = values[:, ky0 * step - y0::step, kx0 * step - x0::step]
            chunk = ortho_chunk(plane, shape[0])
            parent_array = open_array(parent_dir / plane / str(level))
            array = create_array(partial / plane / str(level), shape, np.uint32, chunk)
            if not same_encoding(parent_array, array):  # cannot happen with layouts this module wrote
                raise LabelVersionError(f"the {plane} layout of {parent_dir.name} is in another encoding")
            spans = [range(lo // c, -(-hi // c)) if hi > lo else range(0)
                     for (lo, hi), c in zip(((z0, z1), (ky0, ky1), (kx0, kx1)), chunk)]
            touched = {(iz, iy, ix) for iz in spans[0] for iy in spans[1] for ix in spans[2]}
            source_dir = parent_dir / plane / str(level)
            for key, source in _chunk_files(source_dir):
                if key not in touched:
                    _share(source, chunk_path(partial / plane / str(level), *key), ignored)
            for key in sorted(touched):
                box = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(key, chunk, shape))
                old = parent_array[box]
                new = old.copy()
                inner = tuple(slice(max(lo, b.start) - b.start, min(hi, b.stop) - b.start)
                              for (lo, hi), b in zip(((z0, z1), (ky0, ky1), (kx0, kx1)), box))
                picked = tuple(slice(max(lo, b.start) - lo, min(hi, b.stop) - lo)
                               for (lo, hi), b in zip(((z0, z1), (ky0, ky1), (kx0, kx1)), box))
                new[inner] = sub[picked]
                if np.array_equal(new, old):
                    source = chunk_path(source_dir, *key)
                    if source.exists():
                        _share(source, chunk_path(partial / plane / str(level), *key), ignored)
                elif new.any():
                    array[box] = new
