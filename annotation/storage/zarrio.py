"""The few zarr-level operations the store needs: create an array, write group metadata, paths.

Every array is zarr v3, chunked (1, 256, 256) in (z, y, x), compressed with Blosc LZ4 at level 5
with bit-shuffle: in ``bench`` terms a 256 x 256 uint16 chunk decodes in ~0.35 ms (zstd level 1:
~0.40 ms, none: ~0.25 ms) and noisy microscopy shrinks to ~52% (zstd-1: 67%); label chunks
shrink to under 1%. Label chunk files are written without the bit-shuffle (:func:`encode_chunk`;
the arrays' ``zarr.json`` is the same, as Blosc reads the shuffle from each chunk's header).
Chunks equal to the fill value 0 are not written at all, so empty label regions cost nothing.
Chunk files sit at ``<array>/c/<z>/<y>/<x>`` (the v3 default key
encoding), which is what lets a label version hard-link its parent's chunk files.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .meta import TILE_SIZE

__all__ = ["CHUNK", "ChunkFiles", "DirectArray", "chunk_codecs", "chunk_path", "create_array", "decode_chunk",
           "encode_chunk", "open_direct", "open_reader", "read_chunk", "read_json", "remember_chunk", "write_group",
           "written_here"]

CHUNK = (1, TILE_SIZE, TILE_SIZE)


def _codec():
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")


def create_array(path: Path, shape: tuple[int, int, int], dtype: np.dtype,
                 chunks: tuple[int, int, int] = CHUNK):
    """Create an empty (Z, Y, X) zarr v3 array at ``path`` (a directory that must not exist),
    chunked ``chunks`` (the planes' (1, 256, 256) unless told: see ``.ortho`` for the others)."""
    return _create(str(path), shape, dtype, chunks)


def chunk_codecs(dtype: np.dtype) -> list[dict[str, Any]]:
    """The ``codecs`` that :func:`create_array` writes in an array's ``zarr.json``."""
    return [{"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "blosc", "configuration": {"typesize": np.dtype(dtype).itemsize, "cname": "lz4", "clevel": 5,
                                                "shuffle": "bitshuffle", "blocksize": 0}}]


def written_here(metadata: dict[str, Any], dtype: np.dtype) -> bool:
    """True if an array's ``zarr.json`` (as a dict) is in the encoding :func:`create_array`
    writes, so that :func:`encode_chunk` and :func:`decode_chunk` read and write its chunk files."""
    return (metadata.get("codecs") == chunk_codecs(dtype) and metadata.get("data_type") == np.dtype(dtype).name
            and metadata.get("fill_value") == 0
            and metadata.get("chunk_key_encoding") == {"name": "default", "configuration": {"separator": "/"}})


def _blosc(dtype: np.dtype, shuffle: bool = True):
    from numcodecs import Blosc

    return Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE if shuffle else Blosc.NOSHUFFLE, blocksize=0,
                 typesize=np.dtype(dtype).itemsize)


def encode_chunk(values: np.ndarray, chunk: tuple[int, ...], *, shuffle: bool = True) -> bytes:
    """The file of one chunk holding ``values`` (an edge chunk may be smaller than ``chunk``: it
    is padded with the fill value 0, as zarr stores it), in :func:`create_array`'s encoding.

    Edits write their few chunks through this rather than a zarr array: each zarr call waits on
    zarr's event-loop thread, and on a loaded machine those hand-overs were most of an edit.

    ``shuffle=False`` writes the chunk with Blosc LZ4 without the bit-shuffle, which is what an
    edit's label chunks use: a label chunk is long runs of one 4-byte id, which LZ4 finds as they
    are, and the bit-shuffle only costs time (a (64, 16, 256) layout chunk of generated nuclei:
    encode 1.9 -> 0.35 ms, decode 1.15 -> 0.36 ms, 123 -> 91 kB; a (1, 256, 256) one: 0.32 ->
    0.09 ms and 0.44 -> 0.04 ms, 48 -> 25 kB). It is still the array's codec: a Blosc chunk
    records its compressor, shuffle and type size in its own header, and Blosc decoders (c-blosc,
    under numcodecs and zarr-python's ``BloscCodec``) read them from there; the ``shuffle`` of an
    array's ``zarr.json`` is an encoding setting. So every zarr client reads these files as it
    reads the array's others (tests/annotation/storage/test_manifest.py reads them through zarr)."""
    if values.shape == tuple(chunk) and values.dtype == values.dtype.newbyteorder("<"):
        full = np.ascontiguousarray(values)  # a whole little-endian chunk: encoded as it is, not copied
    else:
        full = np.zeros(chunk, values.dtype.newbyteorder("<"))
        full[tuple(slice(0, n) for n in values.shape)] = values
    return bytes(_blosc(values.dtype, shuffle).encode(full))


def decode_chunk(data: bytes, chunk: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`encode_chunk`: the whole (padded) chunk, in the native byte order."""
    flat = np.frombuffer(_blosc(dtype).decode(data), dtype=np.dtype(dtype).newbyteorder("<"))
    return flat.reshape(chunk).astype(np.dtype(dtype), copy=False)


class _DecodedChunks:
    """Decoded chunk files, the most recently used up to ``budget`` bytes, shared by the
    process's readers (thread-safe).

    Chunk files are never changed in place (see :mod:`.labels`), so a decoded chunk stays
    right for its file; the key is the file's path with its inode, modification time and size,
    so a file replaced under the same name is decoded anew. What this saves: an edit reads its
    region (level 0) and then the same chunks again to write them, and the undo or the next
    edit nearby reads the chunks the edit just wrote (:func:`remember_chunk`), a 1 MB XZ/YZ
    layout chunk among them."""

    def __init__(self, budget: int) -> None:
        self._budget, self._size = budget, 0
        self._chunks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(path: Path, stat: os.stat_result) -> tuple:
        return str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            values = self._chunks.get(key)
            if values is not None:
                self._chunks.move_to_end(key)
            return values

    def put(self, key: tuple, values: np.ndarray) -> None:
        values.setflags(write=False)  # shared: readers copy out of it
        with self._lock:
            old = self._chunks.pop(key, None)
            self._size += values.nbytes - (old.nbytes if old is not None else 0)
            self._chunks[key] = values
            while self._size > self._budget and self._chunks:
                self._size -= self._chunks.popitem(last=False)[1].nbytes


#: 64 MiB: 256 level-0 label chunks, or 64 layout chunks of a 64-plane stack.
_DECODED = _DecodedChunks(64 * 2 ** 20)


def read_chunk(path: Path | None, chunk: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """The whole (padded) chunk in file ``path`` decoded (:func:`decode_chunk`), read-only;
    ``None`` where there is no file (background). Decoded once while it stays in the cache."""
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            key = _DECODED.key(path, os.fstat(fh.fileno()))
            values = _DECODED.get(key)
            if values is not None:
                return values
            data = fh.read()
    except FileNotFoundError:
        return None
    values = decode_chunk(data, chunk, dtype)
    _DECODED.put(key, values)
    return values


def remember_chunk(path: Path, values: np.ndarray, chunk: tuple[int, ...]) -> None:
    """Keep ``values`` (the chunk's values, an edge chunk's without its padding) as the decoded
    content of the chunk file ``path``, written and published just now; nothing if it is gone."""
    try:
        key = _DECODED.key(path, os.stat(path))
    except FileNotFoundError:
        return
    if values.shape == tuple(chunk):
        full = values  # the writer's own array, never changed after
    else:
        full = np.zeros(chunk, values.dtype)
        full[tuple(slice(0, n) for n in values.shape)] = values
    _DECODED.put(key, full)


def _create(store, shape, dtype, chunks):
    import zarr

    return zarr.create_array(
        store=store, shape=shape, dtype=np.dtype(dtype), chunks=tuple(chunks), compressors=[_codec()],
        fill_value=0, dimension_names=("z", "y", "x"),
        chunk_key_encoding={"name": "default", "separator": "/"},
        config={"write_empty_chunks": False}, overwrite=False)


def open_array(path: Path):
    """Open an existing array read-only."""
    import zarr

    return zarr.open_array(store=str(path), mode="r", zarr_format=3)


def chunk_path(array_dir: Path, iz: int, iy: int, ix: int) -> Path:
    """File of chunk (iz, iy, ix) of an array written by :func:`create_array`."""
    return array_dir / "c" / str(iz) / str(iy) / str(ix)


class ChunkFiles:
    """Writes the chunk files of one array straight to disk, in :func:`encode_chunk`'s encoding
    (``shuffle`` as there: label arrays write theirs without the bit-shuffle), each folder made
    once. For an array in a private folder (a version being written) a file is written whole in
    place; with ``replace`` (a folder readers see) to a temporary file, synced to disk, renamed
    over the name, so a reader finds the whole file or none (and the sync is paid by the writer:
    on ext4's ordered mode, the next ``fsync`` of any file, such as an edit's correction record,
    would otherwise wait for these files' data)."""

    def __init__(self, array_dir: Path, chunk: tuple[int, ...], *, shuffle: bool = True, replace: bool = False) -> None:
        self.array_dir, self.chunk, self.shuffle, self.replace = Path(array_dir), tuple(chunk), shuffle, replace
        self._made: set[Path] = set()

    def write(self, key: tuple[int, ...], values: np.ndarray) -> None:
        path = chunk_path(self.array_dir, *key)
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        data = encode_chunk(values, self.chunk, shuffle=self.shuffle)
        if not self.replace:
            path.write_bytes(data)
            return
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_json(path: Path, data: dict[str, Any], *, compact: bool = False) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one.

    Indented unless ``compact`` (one line, no spaces: what a file rewritten by every edit uses).
    The text is made by ``json.dumps`` and written in one call: ``json.dump`` streams through
    the pure-Python encoder whatever the layout, and only ``dumps`` of compact output runs in C
    (a 5.8 kB manifest 0.19 -> 0.04 ms; a manifest grows with the edits since its base)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    layout = {"separators": (",", ":")} if compact else {"indent": 2}
    try:
        text = json.dumps(data, allow_nan=False, **layout)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_group(path: Path, attributes: dict[str, Any]) -> None:
    """Write (or replace) the ``zarr.json`` of a zarr v3 group at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": attributes})


def read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def same_encoding(a, b) -> bool:
    """True if two arrays store equal chunks as identical bytes (same shape, dtype, codecs)."""
    da, db = a.metadata.to_dict(), b.metadata.to_dict()
    keys = ("shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs")
    return all(da.get(k) == db.get(k) for k in keys)


class DirectArray:
    """Read-only (Z, Y, X) array in this package's encoding, read straight from its chunk files.

    Reads decode the chunks they meet in the calling thread: a zarr read waits on zarr's
    event-loop thread for each call (several ms on a loaded machine), which an edit, reading its
    region a plane at a time, and every tile paid. Indexing is numpy's basic indexing: integers,
    slices, ``...``. ``file_of((iz, iy, ix))`` is the file holding a chunk, ``None`` (or a file
    that does not exist) for one of background.
    """

    def __init__(self, shape, chunk, dtype, file_of) -> None:
        self.shape, self.chunk, self.dtype = tuple(shape), tuple(chunk), np.dtype(dtype)
        self.ndim, self._file_of = len(self.shape), file_of

    def _key(self, key) -> tuple[list[tuple[int, int]], list, list[bool]]:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim:
            raise IndexError(f"too many indices for a {self.ndim}-dimensional array")
        ranges, steps, dropped = [], [], []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step < 1:
                    raise IndexError("only positive slice steps are supported")
                ranges.append((start, max(start, stop)))
                steps.append(step)
                dropped.append(False)
            else:
                i = int(k)
                i = i + n if i < 0 else i
                if not 0 <= i < n:
                    raise IndexError(f"index {int(k)} is out of bounds for an axis of size {n}")
                ranges.append((i, i + 1))
                steps.append(1)
                dropped.append(True)
        return ranges, steps, dropped

    def __getitem__(self, key) -> np.ndarray:
        ranges, steps, dropped = self._key(key)
        out = np.zeros([hi - lo for lo, hi in ranges], self.dtype)
        if out.size:
            spans = [range(lo // c, -(-hi // c)) for (lo, hi), c in zip(ranges, self.chunk, strict=True)]
            for iz in spans[0]:
                for iy in spans[1]:
                    for ix in spans[2]:
                        self._copy((iz, iy, ix), ranges, out)
        out = out[tuple(slice(None, None, s) for s in steps)]
        return out[tuple(0 if d else slice(None) for d in dropped)]

    def _copy(self, key, ranges, out) -> None:
        block = read_chunk(self._file_of(key), self.chunk, self.dtype)
        if block is None:
            return  # background: out is zeros already
        inside = tuple(slice(max(lo, i * c) - i * c, min(hi, (i + 1) * c) - i * c)
                       for (lo, hi), i, c in zip(ranges, key, self.chunk, strict=True))
        where = tuple(slice(max(lo, i * c) - lo, min(hi, (i + 1) * c) - lo)
                      for (lo, hi), i, c in zip(ranges, key, self.chunk, strict=True))
        out[where] = block[inside]


def open_direct(metadata_file: Path, file_of):
    """A :class:`DirectArray` over the array that ``metadata_file`` (its ``zarr.json``)
    describes, or ``None`` when that array is not in this package's encoding (read it through
    zarr then)."""
    metadata = read_json(metadata_file)
    dtype = metadata.get("data_type")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        return None
    grid = metadata.get("chunk_grid", {})
    if not written_here(metadata, dtype) or grid.get("name") != "regular" or len(metadata.get("shape", ())) != 3:
        return None
    return DirectArray(metadata["shape"], grid["configuration"]["chunk_shape"], dtype, file_of)


def open_reader(path: Path):
    """The array at ``path`` for reading: a :class:`DirectArray` when it is in this package's
    encoding, else a read-only zarr array."""
    direct = open_direct(path / "zarr.json", lambda key: chunk_path(path, *key))
    return direct if direct is not None else open_array(path)
