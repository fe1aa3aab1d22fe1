"""The few zarr-level operations the store needs: create an array, write group metadata, paths.

Every array is zarr v3, chunked (1, 256, 256) in (z, y, x), compressed with Blosc LZ4 at level 5
with bit-shuffle: in ``bench`` terms a 256 x 256 uint16 chunk decodes in ~0.35 ms (zstd level 1:
~0.40 ms, none: ~0.25 ms) and noisy microscopy shrinks to ~52% (zstd-1: 67%); label chunks
shrink to under 1%. Chunks equal to the fill value 0 are not written at all, so empty label
regions cost nothing. Chunk files sit at ``<array>/c/<z>/<y>/<x>`` (the v3 default key
encoding), which is what lets a label version hard-link its parent's chunk files.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from .meta import TILE_SIZE

__all__ = ["CHUNK", "chunk_codecs", "chunk_path", "create_array", "decode_chunk", "encode_chunk", "read_json",
           "write_group", "written_here"]

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


def _blosc(dtype: np.dtype):
    from numcodecs import Blosc

    return Blosc(cname="lz4", clevel=5, shuffle=Blosc.BITSHUFFLE, blocksize=0, typesize=np.dtype(dtype).itemsize)


def encode_chunk(values: np.ndarray, chunk: tuple[int, ...]) -> bytes:
    """The file of one chunk holding ``values`` (an edge chunk may be smaller than ``chunk``: it
    is padded with the fill value 0, as zarr stores it), in :func:`create_array`'s encoding.

    Edits write their few chunks through this rather than a zarr array: each zarr call waits on
    zarr's event-loop thread, and on a loaded machine those hand-overs were most of an edit."""
    full = np.zeros(chunk, values.dtype.newbyteorder("<"))
    full[tuple(slice(0, n) for n in values.shape)] = values
    return bytes(_blosc(values.dtype).encode(full))


def decode_chunk(data: bytes, chunk: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`encode_chunk`: the whole (padded) chunk, in the native byte order."""
    flat = np.frombuffer(_blosc(dtype).decode(data), dtype=np.dtype(dtype).newbyteorder("<"))
    return flat.reshape(chunk).astype(np.dtype(dtype), copy=False)


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


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, allow_nan=False)
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
