"""Immutable label versions: complete ones, and edits that record only the chunks they changed.

Scheme
------
A volume's segmentations live in its ``labels/`` group as ``v1``, ``v2``, ... (the group's
``ezquant.versions`` attribute lists them in order; its NGFF ``ome.labels`` lists the complete
ones, which is what an OME-Zarr reader sees), each uint32, same chunking as the intensities,
levels ``[::2**k, ::2**k]`` of level 0.

A version is written once and never changed. There are two kinds (see :mod:`.manifest`):

* a **complete** version (a segmentation, an upload, or any version stored before deltas) holds
  every chunk; a chunk equal to its parent's is a hard link (``os.link``) to the parent's file,
  so it costs one directory entry, not a copy. It is a plain NGFF label image.
* an **edit** makes a **delta** version: the chunks the edit changed, at each level and in the
  XZ / YZ layouts, and one ``manifest.json`` that says which version holds each chunk changed
  since the nearest complete ancestor (its base). Nothing is written or linked for the
  untouched chunks, so an edit costs what it changes, whatever the volume's size. Our readers
  open it through :class:`.manifest.DeltaStore` (a zarr store that follows the manifest);
  exports copy the resolved chunks; :func:`materialise_version` makes it complete in place
  for other readers.

Why this is safe:

* chunks are never modified in place: zarr writes a chunk to a temporary file and renames it
  over the old name (``zarr.storage.LocalStore``), so a write to a linked name would replace
  the link, not the shared file; and this package never writes new values into an existing
  version (materialising one adds links to the very files its manifest names);
* a version is built in ``labels/.vN.partial-<random>`` and renamed to ``labels/vN`` only when
  complete, manifest included; the listing is updated after that, so a reader that lists
  versions never sees a half-written one; a crash leaves at most an unlisted directory, whose
  number is skipped;
* writers of one volume are serialised by an ``fcntl.flock`` on ``labels/.lock`` (version
  numbers are allocated under it), so two processes never create the same ``vN``;
* versions are never removed, so every holder a manifest names exists;
* where the file system refuses a hard link (another device, no link support, too many links),
  the chunk file is copied instead (``chunks_copied``).

An edit's coarse levels come after its answer. Level 0 (with its XZ / YZ layouts) is written
before the version is published, as above; the chunks of levels 1 and up (and their layouts),
which an edit of a large volume rewrites at every level while it changes a few pixels of each,
are named in the manifest as the version's own and listed in its ``coarse-owed.json``; one
thread writes them after the answer (:func:`finish_coarse_levels`), each to a temporary file
renamed into place, then removes the list. Nothing ever reads such a chunk missing: the
readers' path to a chunk file (:meth:`.manifest.VersionLayout.file`) first has a version that
still owes coarse chunks write them (waiting for the thread, or for another process, which holds
an ``fcntl.flock`` of the list while it writes; or writing them itself, from the version's level
0, if the process that made the edit stopped first), since level k is level 0 ``[::2**k,
::2**k]`` exactly. A failure there leaves the list, and the next reader tries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import secrets
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import InvalidLabelsError, LabelShapeError, LabelVersionError
from .manifest import (
    COARSE_PENDING,
    MANIFEST,
    Manifest,
    VersionLayout,
    is_settled,
    mark_settled,
    materialise,
    write_manifest,
)
from .meta import LabelVersionMeta, VolumeMeta, version_number
from .ngff import label_attributes, labels_group_attributes
from .ortho import LABEL_DEPTH, ORTHO_PLANES, write_ortho_levels
from .zarrio import (
    CHUNK,
    ChunkFiles,
    chunk_path,
    create_array,
    read_chunk,
    read_json,
    remember_chunk,
    same_encoding,
    write_group,
    write_json,
    written_here,
)

__all__ = ["as_labels", "finish_coarse_levels", "label_version_meta", "list_versions", "materialise_version",
           "version_layout", "wait_for_coarse_levels", "write_edit", "write_full", "write_planes"]

log = logging.getLogger(__name__)

LABELS_GROUP = "labels"
#: In every version written since delta versions: the largest id of each level-0 chunk, (Z, rows, cols).
CHUNK_MAXIMA = "chunk_max.npy"
#: Label chunk files are written without the bit-shuffle (see :func:`.zarrio.encode_chunk`: long
#: runs of one 4-byte id, which LZ4 finds as they are; decoding them is ~10x faster), by every
#: writer of a version: a segmentation's, an upload's, an edit's, and their XZ / YZ layouts.
LABEL_SHUFFLE = False
_UINT32_MAX = 2 ** 32 - 1


@dataclass
class _Counts:
    written: int = 0
    linked: int = 0
    copied: int = 0


def _group_attributes(volume: Path) -> dict:
    try:
        return read_json(volume / LABELS_GROUP / "zarr.json").get("attributes", {})
    except FileNotFoundError:
        return {}


def list_versions(volume: Path) -> list[str]:
    """Names of the published versions (complete and delta), oldest first.

    ``ezquant.versions`` of the labels group; a volume written before delta versions has only
    ``ome.labels``, which then lists them all."""
    attrs = _group_attributes(volume)
    names = attrs.get("ezquant", {}).get("versions")
    if names is None:
        names = attrs.get("ome", {}).get("labels", [])
    return [str(n) for n in names]


def _publish_listing(volume: Path, name: str, *, complete: bool) -> None:
    """Add ``name`` to the listings (under the lock): every version in ``ezquant.versions``,
    complete ones also in the NGFF ``ome.labels`` that OME-Zarr readers follow."""
    group = volume / LABELS_GROUP
    attrs = _group_attributes(volume)
    versions = [n for n in list_versions(volume) if n != name]
    if name not in versions:
        versions.append(name)
    versions.sort(key=version_number)
    ngff = [str(n) for n in attrs.get("ome", {}).get("labels", []) if n != name]
    if complete:
        ngff = sorted(ngff + [name], key=version_number)
    write_group(group, {**attrs, "ome": labels_group_attributes(ngff),
                        "ezquant": {**attrs.get("ezquant", {}), "versions": versions}})


def version_layout(volume: Path, name: str) -> VersionLayout:
    """Where the files of a published version are; :class:`LabelVersionError` if unknown."""
    label_version_meta(volume, name)
    return VersionLayout(volume / LABELS_GROUP, name)


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


def _new_version(volume: Path, meta: VolumeMeta, parent: str | None, build) -> LabelVersionMeta:
    """Allocate vN, let ``build(partial_dir, name, counts)`` write its levels (and, for a
    delta version, its manifest), publish it."""
    group = volume / LABELS_GROUP
    with _locked(volume):
        number = _next_number(volume)
        name = f"v{number}"
        partial = group / f".{name}.partial-{secrets.token_hex(6)}"
        partial.mkdir()
        try:
            counts = _Counts()
            n_labels = build(partial, name, counts)
            version = LabelVersionMeta(
                name=name, number=number, parent=parent, shape=meta.shape, n_labels=n_labels,
                chunks_written=counts.written, chunks_linked=counts.linked, chunks_copied=counts.copied)
            write_group(partial, {
                "ome": label_attributes(name=name, shapes=list(meta.level_shapes), voxel_size=meta.voxel_size),
                "ezquant": {"label_version": version.to_dict()},
            })
            complete = not (partial / MANIFEST).exists()
            os.rename(partial, group / name)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        _publish_listing(volume, name, complete=complete)
    return version


def materialise_version(volume: Path, meta: VolumeMeta, name: str) -> bool:
    """Make a delta version complete in place (see :func:`.manifest.materialise`) and list it
    for OME-Zarr readers; False if it was complete already."""
    layout = version_layout(volume, name)
    if not layout.is_delta:
        return False
    with _locked(volume):
        done = materialise(VersionLayout(volume / LABELS_GROUP, name), meta.n_levels)
        _publish_listing(volume, name, complete=True)
    return done


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
    source = version_layout(volume, parent) if parent is not None else None
    parents = [source.open_zarr(str(k)) for k in range(meta.n_levels)] if source is not None else None
    level_shapes = list(meta.level_shapes)

    def build(partial: Path, name: str, counts: _Counts) -> int:
        arrays = [create_array(partial / str(level), shape, np.uint32) for level, shape in enumerate(level_shapes)]
        files = [ChunkFiles(partial / str(level), CHUNK, shuffle=LABEL_SHUFFLE) for level in range(len(level_shapes))]
        before = [parents[level] if parents is not None and same_encoding(parents[level], arrays[level]) else None
                  for level in range(len(level_shapes))]
        maxima = []
        for z in range(meta.shape[0]):
            full = as_labels(np.asarray(plane_of(z))[np.newaxis], (1, *meta.shape[1:]), what=f"labels of plane {z}")[0]
            maxima.append(_chunk_maxima(full))
            for level, shape in enumerate(level_shapes):
                step = 2 ** level
                plane = full[::step, ::step]
                old = before[level][z] if before[level] is not None else None
                rows, cols = -(-shape[1] // CHUNK[1]), -(-shape[2] // CHUNK[2])
                for iy in range(rows):
                    for ix in range(cols):
                        ys, xs = _chunk_slices(shape, iy, ix)
                        block = plane[ys, xs]
                        if old is not None and np.array_equal(block, old[ys, xs]):
                            shared = source.chunk_file(str(level), (z, iy, ix))
                            if shared is not None and shared.exists():
                                _share(shared, chunk_path(partial / str(level), z, iy, ix), counts)
                        elif block.any():  # chunks of background are not written (the fill value)
                            files[level].write((z, iy, ix), block[np.newaxis])
                            counts.written += 1
        if meta.is_3d:  # the XZ / YZ layouts (see .ortho)
            write_ortho_levels(partial, levels or (lambda k: arrays[k]), level_shapes, np.uint32, LABEL_DEPTH,
                               shuffle=LABEL_SHUFFLE)
        _write_maxima(partial, np.stack(maxima))
        return int(n_labels)

    return _new_version(volume, meta, parent, build)


def _normalise_region(region, shape: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    if not isinstance(region, tuple) or len(region) != 3 or not all(isinstance(s, slice) for s in region):
        raise LabelShapeError(f"region must be a tuple of three slices (z, y, x), got {region!r}")
    bounds = []
    for axis, (s, size) in enumerate(zip(region, shape, strict=True)):
        start = 0 if s.start is None else int(s.start)
        stop = size if s.stop is None else int(s.stop)
        if s.step not in (None, 1) or not 0 <= start <= stop <= size:
            raise LabelShapeError(
                f"region {region!r} does not lie inside the volume {tuple(shape)} with step 1 (axis {'zyx'[axis]})")
        bounds.append((start, stop))
    return tuple(bounds)


def _chunk_maxima(plane: np.ndarray) -> np.ndarray:
    """(rows, cols) largest id of each (256, 256) chunk of a level-0 (Y, X) plane."""
    rows, cols = -(-plane.shape[0] // CHUNK[1]), -(-plane.shape[1] // CHUNK[2])
    out = np.zeros((rows, cols), np.uint32)
    for iy in range(rows):
        for ix in range(cols):
            block = plane[iy * CHUNK[1]:(iy + 1) * CHUNK[1], ix * CHUNK[2]:(ix + 1) * CHUNK[2]]
            out[iy, ix] = block.max() if block.size else 0
    return out


def _read_maxima(folder: Path) -> np.ndarray | None:
    try:
        return np.load(folder / CHUNK_MAXIMA, allow_pickle=False)
    except (FileNotFoundError, ValueError, OSError):
        return None


def _write_maxima(folder: Path, maxima: np.ndarray) -> None:
    with open(folder / CHUNK_MAXIMA, "wb") as fh:
        np.save(fh, maxima.astype(np.uint32, copy=False), allow_pickle=False)


class _DeltaWriter:
    """The chunk files one array of a delta version writes, and its parent's chunks read, as
    files in the encoding of this package (:func:`.zarrio.encode_chunk`), without zarr's
    machinery: an edit touches a few dozen chunks, and a zarr call per chunk was most of its
    time on a loaded machine."""

    def __init__(self, source: VersionLayout, partial: Path, array: str, chunk) -> None:
        self._source, self._array, self._chunk = source, array, tuple(chunk)
        self.version = source.name
        self._files = ChunkFiles(partial / array, self._chunk, shuffle=LABEL_SHUFFLE)
        self._written: list[tuple[tuple[int, ...], np.ndarray]] = []

    def read(self, key: tuple[int, ...], box) -> np.ndarray:
        """The parent's values in chunk ``key`` (``box``, its pixels), read-only."""
        shape = tuple(b.stop - b.start for b in box)
        block = read_chunk(self._source.chunk_file(self._array, key), self._chunk, np.uint32)
        if block is None:  # never written: all background
            return np.zeros(shape, np.uint32)
        return block[tuple(slice(0, n) for n in shape)]

    def write(self, key: tuple[int, ...], values: np.ndarray) -> None:
        self._files.write(key, values)  # in the private partial folder
        self._written.append((key, values))

    def remember(self, folder: Path) -> None:
        """Keep the chunks written, as the files of the published version in ``folder``, decoded."""
        for key, values in self._written:
            remember_chunk(chunk_path(folder / self._array, *key), values, self._chunk)


def _at_level(bounds, level: int):
    """A level-0 region ``bounds`` at ``level``: (its bounds there, the slices of the region's
    level-0 values that level samples). Level-k pixel j is level-0 pixel j * 2**k, so the
    region's level-k pixels are ceil(y0 / 2**k) .. ceil(y1 / 2**k) - 1 (z is kept)."""
    (z0, z1), (y0, y1), (x0, x1) = bounds
    step = 2 ** level
    ky0, ky1, kx0, kx1 = (-(-v // step) for v in (y0, y1, x0, x1))
    sample = (slice(None), slice(ky0 * step - y0, None, step), slice(kx0 * step - x0, None, step))
    return ((z0, z1), (ky0, ky1), (kx0, kx1)), sample


def _chunks_met(bounds, chunk, shape, changed: np.ndarray | None = None):
    """(key, box, inner, picked) of every chunk of an array of ``shape`` that the region
    ``bounds`` ((lo, hi) per axis, in the array's pixels) meets: ``box`` the chunk's pixels,
    ``inner`` the region's part of the chunk in its own coordinates, ``picked`` the same part
    of the region's values. With ``changed`` (a mask of the region's shape), only the chunks
    holding a changed voxel."""
    spans = [range(lo // c, -(-hi // c)) if hi > lo else range(0) for (lo, hi), c in zip(bounds, chunk, strict=True)]
    for key in ((a, b, c) for a in spans[0] for b in spans[1] for c in spans[2]):
        box = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(key, chunk, shape, strict=True))
        picked = tuple(slice(max(lo, b.start) - lo, min(hi, b.stop) - lo)
                       for (lo, hi), b in zip(bounds, box, strict=True))
        if changed is not None and not changed[picked].any():
            continue
        inner = tuple(slice(max(lo, b.start) - b.start, min(hi, b.stop) - b.start)
                      for (lo, hi), b in zip(bounds, box, strict=True))
        yield key, box, inner, picked


def _edit_chunks(writer: _DeltaWriter, name: str, bounds, sub: np.ndarray, chunk, shape,
                 changes: dict[str, str | None], maxima: np.ndarray | None = None, changed: np.ndarray | None = None,
                 before: np.ndarray | None = None) -> tuple[int, int]:
    """Write the chunks of one array that the region ``bounds`` ((lo, hi) per axis, in the
    array's pixels) meets, with ``sub`` (the region's values) in place; record each changed key
    in ``changes`` (this version, or ``None`` for a chunk of background) and, for level 0, its
    largest id in ``maxima``. With ``changed`` (a mask of ``sub``'s shape: where it differs from
    the parent, whose values there are ``before``), chunks with no change in them are not even
    read, and those read are checked against ``before``. Returns (chunks written, largest id
    the region held before)."""
    written, before_max = 0, 0
    for key, box, inner, picked in _chunks_met(bounds, chunk, shape, changed):
        old = writer.read(key, box)
        if before is not None and not np.array_equal(old[inner], before[picked]):
            raise LabelVersionError(f"the values given as the region's before are not those of {writer.version}")
        before_max = max(before_max, int(old[inner].max()) if old[inner].size else 0)
        new = old.copy()
        new[inner] = sub[picked]
        if maxima is not None:
            maxima[key] = new.max() if new.size else 0
        if np.array_equal(new, old):
            continue
        if new.any():
            writer.write(key, new)
            changes["/".join(map(str, key))] = name
            written += 1
        else:
            changes["/".join(map(str, key))] = None
    return written, before_max


@dataclass(frozen=True)
class _EditRegion:
    """An edit's region, ``bounds`` ((lo, hi) per axis, level-0 voxels), and its new
    ``values``; with the parent's values there (``before``) when the caller read them, and
    where the two differ (``changed``)."""

    bounds: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    values: np.ndarray
    before: np.ndarray | None = None
    changed: np.ndarray | None = None


@dataclass(frozen=True)
class _ArrayEdit:
    """One array the edit meets (a level, or a level's XZ / YZ layout) and the call that
    writes its chunks: ``write()`` returns (chunks written, largest id the region held before)."""

    array: str
    level: int
    writer: _DeltaWriter
    write: Callable[[], tuple[int, int]]
    bounds: tuple = ()            # the region in the array's pixels
    chunk: tuple[int, ...] = ()
    shape: tuple[int, ...] = ()
    changed: np.ndarray | None = None  # the region's changed voxels, sampled at the level


def write_edit(volume: Path, meta: VolumeMeta, parent: str, region, new_values: np.ndarray,
               before: np.ndarray | None = None) -> LabelVersionMeta:
    """A new version equal to ``parent`` except ``region``, which takes ``new_values``.

    ``before``, when the caller has read it already, is ``parent``'s level-0 values in
    ``region``: the edit is then narrowed to the box of the voxels that change, and only chunks
    holding a change are read (and checked against ``before``: :class:`LabelVersionError` if
    they differ) and written.

    Only chunks that intersect the region (at each level and in the XZ / YZ layouts, the
    region's samples there) are read, compared and written; the new version is a delta (see
    :mod:`.manifest`) that records them and nothing else. ``n_labels`` stays exact without a
    scan of the volume: each version keeps the largest id of every level-0 chunk
    (``chunk_max.npy``), so when the edit removes the largest id, the next largest is read from
    there (a version stored before that file is scanned once, and its successors have it).

    The steps: narrow the region (:func:`_narrowed`); in the partial version, plan one writer
    per level and layout, write level 0's chunks (and its layouts'), list the coarse levels'
    chunks the edit meets, write the manifest, the chunk maxima and the list of coarse chunks
    owed (:meth:`_DeltaEdit.build`); publish it (:func:`_new_version`, which removes the partial
    version if a step fails); remember the chunks written; write the coarse levels' chunks on
    the coarse-level thread, after the answer (:func:`finish_coarse_levels`: until then any
    reader of one of them writes them first, from level 0, so none ever reads a missing chunk).
    """
    bounds = _normalise_region(region, meta.shape)
    values = as_labels(np.asarray(new_values), tuple(hi - lo for lo, hi in bounds), what="new values")
    if parent is None:
        raise LabelVersionError("an edit needs a parent version")
    edit = _narrowed(bounds, values, before)
    source = version_layout(volume, parent)
    if not _writes_deltas(volume, source):
        return _write_edit_complete(volume, meta, source, parent, edit.bounds, edit.values)
    delta = _DeltaEdit(volume, meta, source, edit)
    version = _new_version(volume, meta, parent, delta.build)
    folder = volume / LABELS_GROUP / version.name
    delta.remember(folder)
    if delta.owes_coarse:
        _coarse_pool().submit(_finish_logged, folder, edit.values)
    return version


def _narrowed(bounds, values: np.ndarray, before: np.ndarray | None) -> _EditRegion:
    """The edit with ``before`` checked and, when some voxel changes, narrowed to the box of
    the voxels that change."""
    if before is None:
        return _EditRegion(bounds, values)
    before = as_labels(np.asarray(before), values.shape, what="the region's values before")
    changed = before != values
    if not changed.any():
        return _EditRegion(bounds, values, before, changed)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(changed))
    bounds = tuple((lo + b.start, lo + b.stop) for (lo, _), b in zip(bounds, box, strict=True))
    return _EditRegion(bounds, values[box], before[box], changed[box])


def _writes_deltas(volume: Path, source: VersionLayout) -> bool:
    """Whether an edit of ``source`` can be a delta: its base's level 0 and XZ layout are in
    this package's encoding (a version of an older release is not)."""
    base = VersionLayout(volume / LABELS_GROUP, source.manifest.base) if source.is_delta else source
    return all(written_here(read_json(base.metadata_file(array)), np.uint32) for array in ("0", "xz/0")
               if base.metadata_file(array).exists())


class _DeltaEdit:
    """The delta version one edit of ``source`` makes: :meth:`build` is what
    :func:`_new_version` calls with the partial version's folder."""

    def __init__(self, volume: Path, meta: VolumeMeta, source: VersionLayout, edit: _EditRegion) -> None:
        self.volume, self.meta, self.source, self.edit = volume, meta, source, edit
        self.start = source.manifest if source.is_delta else Manifest(base=source.name,
                                                                       ortho=meta.is_3d and source.has_ortho())
        self.parent_meta = label_version_meta(volume, source.name)
        self.parent_maxima = _read_maxima(source.folder)
        self.writers: list[_DeltaWriter] = []
        self.owes_coarse = False

    def build(self, partial: Path, name: str, counts: _Counts) -> int:
        """Plan; write level 0's chunks, list the coarse levels' (:meth:`_owe`); write the
        manifest and the chunk maxima; the new ``n_labels``."""
        maxima = self.parent_maxima.copy() if self.parent_maxima is not None else None
        changes: dict[str, dict[str, str | None]] = {}
        plan = self._plan(partial, name, changes, maxima)
        now = [array_edit for array_edit in plan if array_edit.level == 0]
        self.writers.extend(array_edit.writer for array_edit in now)
        region_before = self._write(now, counts)
        self._owe([array_edit for array_edit in plan if array_edit.level > 0], partial, name, changes, counts)
        manifest = self.start.with_changes({array: entries for array, entries in changes.items() if entries})
        write_manifest(partial, manifest)
        n_labels, maxima = self._n_labels(region_before, maxima, partial, name, manifest)
        if maxima is not None:
            _write_maxima(partial, maxima)
        return n_labels

    def remember(self, folder: Path) -> None:
        """Once published in ``folder``: the next edit or the undo reads these chunks decoded."""
        for writer in self.writers:
            writer.remember(folder)

    def _owe(self, plan: list[_ArrayEdit], partial: Path, name: str, changes: dict[str, dict[str, str | None]],
             counts: _Counts) -> None:
        """List the coarse levels' chunks the edit changes (with a ``before``: those sampling a
        changed voxel; else every chunk the region meets) as this version's in ``changes``, and
        in the partial version's :data:`COARSE_PENDING` file, which :func:`finish_coarse_levels`
        reads to write them. Counted as written: they all will be."""
        owed = {}
        for array_edit in plan:
            keys = ["/".join(map(str, key)) for key, *_ in _chunks_met(
                array_edit.bounds, array_edit.chunk, array_edit.shape, array_edit.changed)]
            if not keys:
                continue
            changes.setdefault(array_edit.array, {}).update(dict.fromkeys(keys, name))
            owed[array_edit.array] = {"level": array_edit.level, "chunk": list(array_edit.chunk),
                                      "shape": list(array_edit.shape), "keys": keys}
            if array_edit.array == str(array_edit.level):
                counts.written += len(keys)
        self.owes_coarse = bool(owed)
        if owed:
            bounds = [list(b) for b in self.edit.bounds]
            write_json(partial / COARSE_PENDING, {"parent": self.source.name, "bounds": bounds, "arrays": owed},
                       compact=True)

    def _plan(self, partial: Path, name: str, changes: dict[str, dict[str, str | None]],
              maxima: np.ndarray | None) -> list[_ArrayEdit]:
        """One :class:`_ArrayEdit` per level and, for a version with XZ / YZ layouts, per
        level's layout, each with its own writer and its own entry of ``changes``; level 0 also
        updates ``maxima`` and checks the edit's ``before``."""
        edit = self.edit
        plan = []
        for level, shape in enumerate(self.meta.level_shapes):
            bounds, sample = _at_level(edit.bounds, level)
            arrays = [(str(level), CHUNK)]
            if self.start.ortho:
                arrays += [(f"{plane}/{level}", self._chunk_of(f"{plane}/{level}")) for plane in ORTHO_PLANES]
            changed = edit.changed[sample] if edit.changed is not None else None
            for array, chunk in arrays:
                writer = _DeltaWriter(self.source, partial, array, chunk)
                plan.append(_ArrayEdit(array, level, writer, functools.partial(
                    _edit_chunks, writer, name, bounds, edit.values[sample], chunk, shape,
                    changes.setdefault(array, {}), maxima if array == "0" else None, changed,
                    edit.before[sample] if edit.before is not None and array == "0" else None),
                    bounds, chunk, shape, changed))
        return plan

    def _chunk_of(self, array: str) -> tuple[int, ...]:
        """The chunk shape of one of the base's arrays, as its ``zarr.json`` says (a layout is
        16 or, written by an earlier release, 64 planes deep: see .ortho)."""
        metadata = read_json(self.source.metadata_file(array))
        return tuple(int(n) for n in metadata["chunk_grid"]["configuration"]["chunk_shape"])

    def _write(self, plan: list[_ArrayEdit], counts: _Counts) -> int:
        """Write the planned arrays side by side (:func:`_run_all`); the largest id the region
        held before."""
        region_before = 0
        for array_edit, (written, was) in zip(plan, _run_all([a.write for a in plan]), strict=True):
            if array_edit.array == str(array_edit.level):
                counts.written += written  # the layouts' chunks are not counted (as for complete versions)
            if array_edit.array == "0":
                before = self.edit.before
                region_before = was if before is None else (int(before.max()) if before.size else 0)
        return region_before

    def _n_labels(self, region_before: int, maxima: np.ndarray | None, partial: Path, name: str,
                  manifest: Manifest) -> tuple[int, np.ndarray | None]:
        """The new version's largest id, and its chunk maxima (scanned once when the parent had none)."""
        values, parent_max = self.edit.values, self.parent_meta.n_labels
        new_max = int(values.max()) if values.size else 0
        if region_before < parent_max or new_max >= parent_max:
            # The parent's largest id survives outside the region, or the edit brings a larger one.
            return max(parent_max, new_max), maxima
        if maxima is None:  # the largest id left the region; a parent without chunk maxima: scan once
            level0 = VersionLayout(self.volume / LABELS_GROUP, name, folder=partial, manifest=manifest).open("0")
            maxima = np.stack([_chunk_maxima(np.asarray(level0[z])) for z in range(self.meta.shape[0])])
        return (int(maxima.max()) if maxima.size else 0), maxima


#: Threads that write an edit's arrays (its levels and their XZ / YZ layouts) side by side.
_EDIT_THREADS = max(1, min(4, os.cpu_count() or 1))
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _run_all(calls: list) -> list:
    """The results of ``calls`` (functions of no argument), run on the edit threads.

    The chunk work is Blosc and numpy, which release the GIL, and file writes: an edit of a
    volume with four levels writes twelve arrays. Every call has ended when this returns or
    raises (the first error), so nothing writes into a version folder that its failure removes."""
    if len(calls) < 2 or _EDIT_THREADS < 2:
        return [call() for call in calls]
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=_EDIT_THREADS, thread_name_prefix="label-edit"))
    futures = [_POOL[0].submit(call) for call in calls]
    wait(futures)
    return [future.result() for future in futures]


# COARSE_PENDING, in an edit's version folder until its coarse levels are written, holds the
# parent, the edit's level-0 bounds and, per coarse array (levels 1 and up and their XZ / YZ
# layouts), the chunks owed.
_COARSE_POOL: list[ThreadPoolExecutor] = []
_FOLDER_LOCKS: dict[Path, threading.Lock] = {}


def _coarse_pool() -> ThreadPoolExecutor:
    """One thread writes the coarse levels of every edit, in the order of the edits (an edit's
    coarse chunks are its parent's with the region in place, so the parent's come first)."""
    with _POOL_LOCK:
        if not _COARSE_POOL:
            _COARSE_POOL.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="label-coarse"))
    return _COARSE_POOL[0]


def wait_for_coarse_levels() -> None:
    """Return when every coarse level scheduled so far in this process is written."""
    _coarse_pool().submit(lambda: None).result()


def _finish_logged(folder: Path, values: np.ndarray) -> None:
    try:
        finish_coarse_levels(folder, values)
    except Exception:  # a reader of the chunks writes them, or fails with the error, later
        log.exception("could not write the coarse levels of %s (its readers will)", folder)


def finish_coarse_levels(folder: Path, values: np.ndarray | None = None) -> None:
    """Write the coarse-level chunks the edit version in ``folder`` still owes (its
    :data:`COARSE_PENDING` file), then remove that file; nothing when it owes none.

    ``values`` are the edit's level-0 values over its bounds (the edit thread has them); without
    them (a reader got there first, or the process that made the edit stopped before writing
    them) they are read from the version's level 0, which was written before it was published
    (level k is level 0 ``[::2**k, ::2**k]``). Each chunk is the parent's with the region in
    place, written to a temporary file, synced and renamed (a reader sees it whole or not at
    all; see :class:`.zarrio.ChunkFiles`).
    Threads wait on one lock per folder and processes on an ``fcntl.flock`` of the file, so the
    chunks are written once; a version whose coarse chunks are written is remembered
    (:func:`.manifest.mark_settled`: it never changes again)."""
    if is_settled(folder):
        return
    with _POOL_LOCK:
        lock = _FOLDER_LOCKS.setdefault(folder, threading.Lock())
    with lock:
        owed_file = folder / COARSE_PENDING
        try:
            fh = open(owed_file, "rb")
        except FileNotFoundError:
            mark_settled(folder)
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            if owed_file.exists():  # not written meanwhile by another process
                _write_owed(folder, json.loads(fh.read()), values)
                owed_file.unlink()
        mark_settled(folder)
    with _POOL_LOCK:
        _FOLDER_LOCKS.pop(folder, None)


def _write_owed(folder: Path, owed: dict, values: np.ndarray | None) -> None:
    group = folder.parent
    source = VersionLayout(group, owed["parent"])
    bounds = tuple(tuple(b) for b in owed["bounds"])
    if values is None:
        values = np.asarray(VersionLayout(group, folder.name).open("0")[tuple(slice(lo, hi) for lo, hi in bounds)])
    for array, spec in owed["arrays"].items():
        chunk, shape = tuple(spec["chunk"]), tuple(spec["shape"])
        level_bounds, sample = _at_level(bounds, spec["level"])
        sub = values[sample]
        wanted = {tuple(int(i) for i in key.split("/")) for key in spec["keys"]}
        parent = _DeltaWriter(source, folder, array, chunk)
        files = ChunkFiles(folder / array, chunk, shuffle=LABEL_SHUFFLE, replace=True)
        for key, box, inner, picked in _chunks_met(level_bounds, chunk, shape):
            if key not in wanted:
                continue
            new = parent.read(key, box).copy()
            new[inner] = sub[picked]
            files.write(key, new)  # every chunk owed gets a file (one of background too): it is listed
            remember_chunk(chunk_path(folder / array, *key), new, chunk)


def _write_edit_complete(volume: Path, meta: VolumeMeta, source: VersionLayout, parent: str, bounds,
                         values: np.ndarray) -> LabelVersionMeta:
    """An edit of a version stored in another encoding (an older release): written as a complete
    version in the current one, a plane at a time, so later edits are deltas over it."""
    (z0, z1), (y0, y1), (x0, x1) = bounds
    level0 = source.open("0")

    def plane_of(z: int) -> np.ndarray:
        plane = np.asarray(level0[z])
        if z0 <= z < z1:
            plane = plane.copy()
            plane[y0:y1, x0:x1] = values[z - z0]
        return plane

    n_labels = max(int(plane_of(z).max()) for z in range(meta.shape[0]))
    return write_planes(volume, meta, plane_of, n_labels=n_labels, parent=parent)
