"""Orthogonal views of a stack: XZ and YZ planes, drawn at the physical aspect, and the chunk
layouts that make their tiles as cheap as an XY tile.

Geometry
--------
An XZ plane is the (z, x) section of a level at one row ``y`` (of that level); a YZ plane the
(z, y) section at one column ``x``. Its tiles are drawn with z downwards and stretched to the
physical aspect: level 0 has ``display_rows = max(1, round(Z * vz / vx))`` rows for XZ (``vy``
for YZ), and level k ``ceil(display_rows / 2**k)``, so the pyramid halves like the XY one. Row
``r`` of level k shows plane ``floor((r + 0.5) * 2**k * Z / display_rows)`` (nearest plane: a
label's ids are never blended), columns are the level's x (or y) pixels.

Chunk layouts
-------------
The planes' chunks are (1, 256, 256): an XZ tile read from them decodes one chunk per plane
(64 chunks for a 64-plane stack, ~20 ms). Every level of the intensities and of each label
version is therefore also stored twice more, under ``xz/<k>`` and ``yz/<k>`` beside the levels,
chunked (min(Z, depth), 16, 256) and (min(Z, depth), 256, 16): an XZ or YZ tile reads a column
of chunks of 16 rows (or columns), about what an XY tile costs. The intensities' layouts are 64
planes deep (``DEPTH``: one chunk for a tile of up to 64 planes; written once, at import). A
label version's are 16 deep (``LABEL_DEPTH``), since an edit rewrites every layout chunk its
region meets, at every level: a nucleus spans a few planes, and a 64-deep chunk made a 64-plane
stack's edit rewrite four times the bytes a 16-plane one does (a 1 MB chunk where 256 kB hold
the change). A tile of a 64-plane stack then reads four small chunks instead of one large one,
the same bytes. The depth of an existing array is what its ``zarr.json`` says (versions written
with 64-deep label layouts keep them, and their edits write chunks of that shape). The layouts
hold the same values as the levels; NGFF readers ignore them, exports leave them out. A volume or version
written before they existed has none, and its XZ/YZ tiles are read from the planes instead
(same pixels, slower), until :func:`add_missing_layouts` (``manage.py build_ortho_layouts``)
writes them. 2D images get none.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from .meta import TILE_SIZE, VolumeMeta
from .zarrio import ChunkFiles, create_array, write_group

__all__ = ["DEPTH", "LABEL_DEPTH", "ORTHO_PLANES", "add_missing_layouts", "display_rows", "has_ortho", "ortho_chunk",
           "ortho_shape", "read_ortho", "row_planes", "write_ortho_levels"]

#: The orthogonal planes, named by the axes they show (rows first: z is drawn downwards).
ORTHO_PLANES = ("xz", "yz")
#: Planes per chunk of the intensities' layouts, and of a label version's (module docstring).
DEPTH = 64
LABEL_DEPTH = 16
_THIN = 16  # rows (XZ) or columns (YZ) per chunk


def ortho_chunk(plane: str, n_planes: int, depth: int = DEPTH) -> tuple[int, int, int]:
    """(z, y, x) chunk of a layout: thin across the section, ``depth`` planes deep (at most Z)."""
    depth = max(1, min(int(n_planes), int(depth)))
    return (depth, _THIN, TILE_SIZE) if plane == "xz" else (depth, TILE_SIZE, _THIN)


def display_rows(meta: VolumeMeta, plane: str) -> int:
    """Rows of level 0 of an XZ or YZ plane: Z stretched by ``vz / vx`` (``vz / vy`` for YZ)."""
    vz, vy, vx = meta.voxel_size
    return max(1, round(meta.shape[0] * vz / (vx if plane == "xz" else vy)))


def ortho_shape(meta: VolumeMeta, plane: str, level: int) -> tuple[int, int, int]:
    """(number of planes, rows, columns) of the XZ or YZ planes of a level."""
    _, y, x = meta.level_shapes[level]
    rows = -(-display_rows(meta, plane) // 2 ** level)
    return (y, rows, x) if plane == "xz" else (x, rows, y)


def row_planes(meta: VolumeMeta, plane: str, level: int, r0: int, r1: int) -> np.ndarray:
    """The z plane shown on each row ``r0 .. r1 - 1`` of a level's XZ or YZ plane."""
    n_planes, rows = meta.shape[0], display_rows(meta, plane)
    centres = (np.arange(r0, r1, dtype=np.float64) + 0.5) * 2 ** level
    return np.minimum(np.floor(centres * n_planes / rows).astype(np.int64), n_planes - 1)


def read_ortho(array, meta: VolumeMeta, plane: str, level: int, index: int, r0: int, r1: int, c0: int,
               c1: int) -> np.ndarray:
    """Rows [r0, r1) x columns [c0, c1) of the XZ (YZ) plane at row (column) ``index`` of a level,
    from ``array``: the level itself or its layout (same values, same (Z, Y, X) shape)."""
    planes = row_planes(meta, plane, level, r0, r1)
    lo, hi = int(planes.min()), int(planes.max()) + 1
    section = array[lo:hi, index, c0:c1] if plane == "xz" else array[lo:hi, c0:c1, index]
    return np.asarray(section)[planes - lo]


def has_ortho(root: Path) -> bool:
    """True if the group at ``root`` (a volume, or a label version) holds both layouts."""
    return all((root / plane / "0" / "zarr.json").exists() for plane in ORTHO_PLANES)


def write_ortho_levels(root: Path, level: Callable[[int], object], shapes, dtype, depth: int = DEPTH, *,
                       shuffle: bool = True) -> None:
    """Write ``root/xz/<k>`` and ``root/yz/<k>`` for every level from ``level(k)``, a (Z, Y, X)
    array-like of level k (a zarr array or a numpy view), chunks ``depth`` planes deep, one
    (depth, 256, 256) block at a time: each block fills whole chunks of both layouts, written
    as files (:class:`.zarrio.ChunkFiles`, ``shuffle`` as there), so nothing is read back.
    Chunks of zeros are not written (the fill value)."""
    for plane in ORTHO_PLANES:
        write_group(root / plane, {})
    for k, shape in enumerate(shapes):
        z_size, y_size, x_size = shape
        writers = {}
        for plane in ORTHO_PLANES:
            chunk = ortho_chunk(plane, z_size, depth)
            create_array(root / plane / str(k), shape, dtype, chunk)
            writers[plane] = ChunkFiles(root / plane / str(k), chunk, shuffle=shuffle)
        source = level(k)
        step = writers["xz"].chunk[0]
        for z0 in range(0, z_size, step):
            for y0 in range(0, y_size, TILE_SIZE):
                for x0 in range(0, x_size, TILE_SIZE):
                    box = (slice(z0, z0 + step), slice(y0, y0 + TILE_SIZE), slice(x0, x0 + TILE_SIZE))
                    block = np.asarray(source[box]).astype(dtype, copy=False)
                    if not block.any():
                        continue
                    iz = z0 // step
                    for i in range(0, block.shape[1], _THIN):  # XZ chunks: 16 rows of the block each
                        part = block[:, i:i + _THIN, :]
                        if part.any():
                            writers["xz"].write((iz, (y0 + i) // _THIN, x0 // TILE_SIZE), part)
                    for i in range(0, block.shape[2], _THIN):  # YZ chunks: 16 columns each
                        part = block[:, :, i:i + _THIN]
                        if part.any():
                            writers["yz"].write((iz, y0 // TILE_SIZE, (x0 + i) // _THIN), part)


def add_missing_layouts(root: Path, level: Callable[[int], object], shapes, dtype, depth: int = DEPTH, *,
                        shuffle: bool = True) -> bool:
    """Write the XZ / YZ layouts (``depth`` planes deep) of the group at ``root`` if it lacks
    them; True if written.

    For a volume or label version stored before the layouts existed. They are written into a
    folder beside them and moved in, ``yz`` last, so a reader (``has_ortho``) sees either no
    layouts or both, and a run stopped half-way leaves nothing a reader uses (a second run
    writes them again).
    """
    if has_ortho(root):
        return False
    partial = root / ".ortho-partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        write_ortho_levels(partial, level, shapes, dtype, depth, shuffle=shuffle)
        for plane in ORTHO_PLANES:
            shutil.rmtree(root / plane, ignore_errors=True)  # left by a stopped run
            (partial / plane).rename(root / plane)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return True
