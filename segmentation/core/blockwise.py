"""Blockwise segmentation of volumes too large to hold whole: overlapping blocks on Dask, stitched.

A volume is cut into a grid of *cores* that partition it; each block is its core grown by an
overlap of at least one nucleus diameter on every side (``outer``, clipped to the volume). Each
block is segmented on its own by the same engine, backend and model, with the intensity range
and nucleus diameter of the whole volume, and its labels are written to a work folder (zarr,
one array per block). A block segmented plane by plane (every backend but ``true3d``) also reads its
``context``: as much image around its outer region as the network's tiles covering it read in
the whole plane (:func:`runner.tile_context`, up to one 224-pixel tile at the network's scale),
and its network sees every pixel of the outer region in the whole plane's own tiles
(:class:`runner.PlaneView`), so its flows and probabilities there are the whole run's and its
nuclei the whole run's but where its edge cuts them. A nucleus cut by a face between two
cores is then seen whole by both blocks, since the overlap is as large as a nucleus; the two
pieces are merged when their labels overlap by at least ``match_iou`` (intersection over
union) in the margin the two blocks share
(``outer_i`` ∩ ``outer_j``), for every pair of blocks whose cores touch (faces, edges and
corners). The merges are the edges of a union-find over ``(block, local id)``; every id left
in some core gets one final id, ``1..n`` in order of first appearance.

Memory is bounded by the block, not the volume: a block task holds its image, float copy, flows
and probabilities (about ``BYTES_PER_VOXEL`` bytes a voxel of ``block_voxels``); the stitching
reads only margins; the result is read back plane by plane (:meth:`BlockwiseResult.plane`) or
block by block. The stitched labels are measured a plane at a time by the rule
:func:`measurements.nucleus_table` measures whole arrays by (:func:`measurements.measure_planes`:
counts, intensity sums, centroids, bounding boxes, exactly its figures); solidity and the
uncertainty score, which need a nucleus' whole mask, come from the block that owns it (the
piece whose centroid lies in its block's core, the largest piece when several or none do),
measured on that block's view of the nucleus. Where two chosen views overlap (two blocks that
disagree about a few voxels), the block first in raster order keeps them; the stitching tells,
from the margins it reads, which nuclei lose voxels so, and their solidity is measured again on
what is left of them.

The blocks run on Dask: its local scheduler in this process by default (``"sync"``, one block
at a time, whose torch uses every core; more blocks at once only multiply the memory), or, with
``scheduler_address``, on a ``dask.distributed`` cluster whose workers share the work folder
and the image's path. A worker lost mid-run has its blocks run again elsewhere (block outputs
are written to a temporary name and renamed, so a block written twice is written once).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._validation import Params, check_number, check_numbers
from .errors import InvalidInputError, InvalidParameterError
from .measurements import NucleusSums, measure_planes, solidities

__all__ = ["Block", "BlockwiseParams", "BlockwiseResult", "ZarrVolume", "block_grid", "intensity_range",
           "segment_blockwise"]

Progress = Callable[[float, str], None]
Region = tuple[slice, slice, slice]

# Samples the intensity range is taken from at most, for a float image (integer images up to
# 16 bits are counted exactly with a histogram).
_RANGE_SAMPLES = 2 ** 24
# How long a cancelled run waits for blocks still running on a cluster before removing the work
# folder (a running task cannot be interrupted).
_DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class BlockwiseParams(Params):
    """How a volume is cut into blocks and stitched.

    Parameters
    ----------
    block_voxels : int >= 4096
        Largest block, margins included, in voxels.
    overlap : float >= 1
        Margin on each side of a core, in nucleus diameters (z: diameters over the anisotropy).
    match_iou : float in (0, 1]
        Two pieces in the shared margin of two blocks are one nucleus when their intersection
        over union there is at least this.
    align : (z, y, x) ints >= 1
        Core extents are multiples of these (but for the last core of an axis), so a core
        covers whole storage chunks.
    whole_plane_tiles : bool
        A block segmented plane by plane (any backend but ``true3d``) also reads the image its
        network's tiles reach around it (up to one 224-pixel tile at the network's scale on each
        side, beyond ``block_voxels``), so its network sees its pixels in the whole plane's
        own tiles and gives the whole run's flows there. Off: the network tiles the block alone.
    """

    block_voxels: int = 2 ** 25
    overlap: float = 1.0
    match_iou: float = 0.5
    align: tuple[int, int, int] = (1, 1, 1)
    whole_plane_tiles: bool = True

    _what = "blockwise parameters"

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_voxels", check_number("block_voxels", self.block_voxels, low=4096,
                                                              integer=True))
        object.__setattr__(self, "overlap", check_number("overlap (nucleus diameters)", self.overlap, low=1))
        object.__setattr__(self, "match_iou", check_number("match_iou", self.match_iou, low=0, high=1,
                                                           low_open=True))
        object.__setattr__(self, "align", check_numbers("align", self.align, lengths=(3,), low=1, integer=True))
        if not isinstance(self.whole_plane_tiles, bool):
            raise InvalidParameterError(f"whole_plane_tiles must be true or false, got {self.whole_plane_tiles!r}")


@dataclass(frozen=True)
class Block:
    """One block of a grid: ``index`` (z, y, x) in the grid, ``number`` in raster order, its
    ``core`` (the part of the volume it labels) and ``outer`` (what it segments) as slices of
    the volume."""

    index: tuple[int, int, int]
    number: int
    core: Region
    outer: Region
    context: Region | None = None  # what it reads: ``outer`` and the network's tiles around it

    @property
    def read_region(self) -> Region:
        """What the block reads of the volume: its context, else its outer region."""
        return self.outer if self.context is None else self.context

    @property
    def outer_shape(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.outer)

    @property
    def core_in_outer(self) -> Region:
        """The core as slices of the block's own (outer) array."""
        return tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(self.core, self.outer, strict=True))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _core_extents(shape, n, align) -> tuple[int, ...]:
    """Per axis: the volume cut in ``n`` pieces, each rounded up to a multiple of ``align``."""
    return tuple(min(size, _ceil_div(_ceil_div(size, k), a) * a) for size, k, a in zip(shape, n, align, strict=True))


def block_grid(shape: tuple[int, int, int], *, block_voxels: int, overlap: tuple[int, int, int],
               align: tuple[int, int, int] = (1, 1, 1), context: tuple[int, int, int] | None = None) -> list[Block]:
    """Cut a (Z, Y, X) volume into overlapping blocks of at most ``block_voxels`` voxels.

    The cores partition the volume; each outer region is its core grown by ``overlap`` voxels
    on each side (per axis), clipped to the volume. The grid is refined along the axis whose
    core is longest until every outer region fits; cores are multiples of ``align``. With
    ``context`` (voxels per axis), each block's ``context`` is its outer region grown by that
    much on each side, clipped to the volume: what it reads, beyond ``block_voxels``.

    Raises
    ------
    InvalidParameterError
        When even the smallest cores with their margins exceed ``block_voxels``.

    Examples
    --------
    >>> blocks = block_grid((10, 100, 100), block_voxels=10 * 60 * 60, overlap=(2, 5, 5))
    >>> len(blocks)
    4
    >>> blocks[0].core
    (slice(0, 10, None), slice(0, 50, None), slice(0, 50, None))
    >>> blocks[0].outer
    (slice(0, 10, None), slice(0, 55, None), slice(0, 55, None))
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InvalidInputError(f"a block grid needs a (Z, Y, X) shape, got {shape}")
    overlap = tuple(max(0, int(o)) for o in overlap)
    grow = (0, 0, 0) if context is None else tuple(max(0, int(c)) for c in context)
    if len(overlap) != 3 or len(align) != 3 or len(grow) != 3:
        raise InvalidParameterError(f"overlap, align and context need one value per axis (z, y, x), got {overlap}, "
                                    f"{align} and {context}")
    n = [1, 1, 1]
    while True:
        cores = _core_extents(shape, n, align)
        outer = [min(size, c + 2 * o) for size, c, o in zip(shape, cores, overlap, strict=True)]
        if math.prod(outer) <= block_voxels:
            break
        # Refine the axis with the longest core that can still shrink (x before y before z on a tie).
        candidates = [a for a in (2, 1, 0) if cores[a] > align[a]]
        if not candidates:
            raise InvalidParameterError(
                f"blocks of at most {block_voxels} voxels cannot hold a core and margins of {overlap} voxels "
                f"in a volume of shape {shape}: raise the block size")
        n[max(candidates, key=lambda a: cores[a])] += 1
    counts = [-(-size // c) for size, c in zip(shape, cores, strict=True)]
    blocks = []
    for number, index in enumerate(itertools.product(*(range(k) for k in counts))):
        core = tuple(slice(i * c, min((i + 1) * c, size)) for i, c, size in zip(index, cores, shape, strict=True))
        outer = tuple(slice(max(0, s.start - o), min(size, s.stop + o))
                      for s, o, size in zip(core, overlap, shape, strict=True))
        around = None if context is None else tuple(slice(max(0, s.start - g), min(size, s.stop + g))
                                                    for s, g, size in zip(outer, grow, shape, strict=True))
        blocks.append(Block(index=tuple(int(i) for i in index), number=number, core=core, outer=outer,
                            context=around))
    return blocks


class ZarrVolume:
    """A (Z, Y, X) zarr array opened by path on first use: what a block task reads its region
    from, picklable (it travels to cluster workers as its path)."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._array = None
        array = self._open()
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)

    def _open(self):
        if self._array is None:
            import zarr

            self._array = zarr.open_array(self.path, mode="r")
        return self._array

    def __getitem__(self, index) -> np.ndarray:
        return np.asarray(self._open()[index])

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype.str}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.shape, self.dtype, self._array = state["path"], tuple(state["shape"]), \
            np.dtype(state["dtype"]), None


def _as_zyx(image: Any) -> Any:
    shape = tuple(getattr(image, "shape", ()))
    if len(shape) == 2:
        if isinstance(image, np.ndarray):
            return image[np.newaxis]
        raise InvalidInputError("a 2D image to segment blockwise must be a numpy array or have a Z axis of 1")
    if len(shape) != 3:
        raise InvalidInputError(f"image must be (Z, Y, X) or (Y, X), got shape {shape}")
    return image


def intensity_range(image: Any, *, max_samples: int = _RANGE_SAMPLES) -> tuple[float, float]:
    """The 1st and 99th percentiles of a (Z, Y, X) image read a few planes at a time.

    Integer images of at most 16 bits are counted exactly (a histogram); others, when larger
    than ``max_samples``, from a regular subsample of planes and pixels. What
    :func:`engine.normalize_intensity` computes on the whole image, without holding it.
    """
    image = _as_zyx(image)
    nz, ny, nx = image.shape
    dtype = np.dtype(image.dtype)
    planes_at_once = max(1, (2 ** 24) // max(1, ny * nx))
    if dtype.kind in "uib" and dtype.itemsize <= 2:
        offset = 2 ** (8 * dtype.itemsize - 1) if dtype.kind == "i" else 0
        hist = np.zeros(2 ** (8 * dtype.itemsize), np.int64)
        for z0 in range(0, nz, planes_at_once):
            values = np.asarray(image[z0:z0 + planes_at_once]).astype(np.int64).ravel() + offset
            hist += np.bincount(values, minlength=hist.size)
        return _histogram_percentiles(hist, offset)
    total = nz * ny * nx
    if total <= max_samples:
        values = np.concatenate([np.asarray(image[z0:z0 + planes_at_once], np.float64).ravel()
                                 for z0 in range(0, nz, planes_at_once)])
    else:
        stride = int(np.ceil(np.sqrt(total / max_samples)))
        values = np.concatenate([np.asarray(image[z], np.float64)[::stride, ::stride].ravel()
                                 for z in range(0, nz, max(1, stride // 2))])
    if not np.isfinite(values).all():
        raise InvalidInputError("image contains NaN or infinite values")
    lo, hi = np.percentile(values, [1.0, 99.0])
    return float(lo), float(hi)


def _histogram_percentiles(hist: np.ndarray, offset: int) -> tuple[float, float]:
    """np.percentile's linear interpolation ([1, 99]) from a histogram of integer values."""
    total = int(hist.sum())
    cumulative = np.cumsum(hist)
    out = []
    for q in (1.0, 99.0):
        position = (total - 1) * q / 100.0
        below, frac = int(np.floor(position)), position - np.floor(position)
        v0 = int(np.searchsorted(cumulative, below + 1))
        v1 = int(np.searchsorted(cumulative, min(below + 2, total)))
        out.append(float(v0 + frac * (v1 - v0) - offset))
    return out[0], out[1]


# -- one block (runs on a Dask worker) ------------------------------------------------------------


def _block_store_path(workdir: str, number: int) -> Path:
    return Path(workdir) / "blocks" / str(number)


def _write_block_labels(workdir: str, number: int, labels: np.ndarray) -> None:
    """Write a block's labels to ``blocks/<number>`` under a temporary name, then rename: a
    block run twice (a worker lost after writing) is kept once, and a folder removed by a
    cancelled run is not written into again."""
    import zarr
    from zarr.codecs import BloscCodec

    parent = Path(workdir) / "blocks"
    if not parent.is_dir():  # the run was cancelled or failed and its folder removed
        raise FileNotFoundError(f"the work folder {workdir} is gone")
    partial = parent / f".{number}.partial-{secrets.token_hex(6)}"
    os.mkdir(partial)  # fails if the folder went away meanwhile
    try:
        chunks = (1, min(256, labels.shape[1]), min(256, labels.shape[2]))
        array = zarr.create_array(store=str(partial), shape=labels.shape, dtype=np.uint32, chunks=chunks,
                                  compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")],
                                  fill_value=0, overwrite=True)
        array[...] = labels
        try:
            os.rename(partial, _block_store_path(workdir, number))
        except OSError:
            if not _block_store_path(workdir, number).is_dir():
                raise
            shutil.rmtree(partial, ignore_errors=True)  # another run of this block came first
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _read_block(workdir: str, number: int, region: Region | None = None) -> np.ndarray:
    import zarr

    array = zarr.open_array(str(_block_store_path(workdir, number)), mode="r")
    return np.asarray(array[region if region is not None else ...])


def _inner_faces(block: Block, shape: tuple[int, int, int]) -> list[tuple[int, int]]:
    """(axis, index in the block's own array) of the faces of its outer region that lie inside
    the volume: a label touching one is cut by the block's edge."""
    faces = []
    for axis, (outer, size) in enumerate(zip(block.outer, shape, strict=True)):
        if outer.start > 0:
            faces.append((axis, 0))
        if outer.stop < size:
            faces.append((axis, outer.stop - outer.start - 1))
    return faces


def _piece_measures(block: Block, labels: np.ndarray, shape: tuple[int, int, int], overlap: tuple[int, int, int],
                    flows, cellprob) -> dict[str, np.ndarray]:
    """Per label of a block (ids ``1..max``; absent ids have count 0): voxels, whether it has
    voxels in the core, whether the block's edge cuts it, how deep inside the block its centroid
    lies (distance to the nearest inner face, in margins), its solidity and uncertainty score."""
    from .uncertainty import UncertaintyEstimator

    n = int(labels.max()) + 1
    count = np.zeros(n, np.int64)
    sum_zyx = np.zeros((3, n))
    width = labels.shape[2]
    for z in range(labels.shape[0]):
        flat = labels[z].ravel()
        inside = np.flatnonzero(flat)
        if inside.size:
            ids = flat[inside].astype(np.intp)
            c = np.bincount(ids, minlength=n)
            count += c
            sum_zyx[0] += c * z
            sum_zyx[1] += np.bincount(ids, weights=inside // width, minlength=n)
            sum_zyx[2] += np.bincount(ids, weights=inside % width, minlength=n)
    centroid = sum_zyx / np.maximum(count, 1)
    in_core = np.zeros(n, bool)
    in_core[np.unique(labels[block.core_in_outer])] = True
    cut = np.zeros(n, bool)
    depth = np.full(n, np.inf)
    for axis, index in _inner_faces(block, shape):
        face = [slice(None)] * 3
        face[axis] = index
        cut[np.unique(labels[tuple(face)])] = True
        depth = np.minimum(depth, np.abs(centroid[axis] - index) / max(overlap[axis], 1))
    solidity = solidities(labels, n)
    uncertainty = np.full(n, np.nan)
    if n > 1 and (flows is not None or cellprob is not None):
        scores = UncertaintyEstimator().estimate(labels, flows, cellprob)
        uncertainty[scores.ids] = scores.score
    elif n > 1:
        scores = UncertaintyEstimator().estimate(labels)
        uncertainty[scores.ids] = scores.score
    present = count > 0
    present[0] = False
    return {"present": present, "count": count, "in_core": in_core & present, "cut": cut & present,
            "depth": np.where(present, depth, -np.inf), "solidity": solidity, "uncertainty": uncertainty}


def _restoration_plan(crop: np.ndarray, params, info: dict[str, Any]):
    """How every block is restored, decided once on the volume's centre ``crop``: the mode
    (``auto``'s choice made there) and :func:`restoration.restoration_reference`, so all blocks
    are restored alike. Returns ``(plan, intensity range, the crop restored)``; the range (one
    for all planes) is the restored crop's, as the restored volume's would be; when nothing is
    to be applied (``auto`` chose none), ``(None, None, crop)``."""
    from .restoration import restoration_reference, restore

    reference = restoration_reference(crop)
    applied = reference["auto"] if params.restoration_mode == "auto" else params.restoration_mode
    restored, done = restore(crop, applied, reference=reference)
    info.update({"restoration_requested": params.restoration_mode, "restoration_mode": applied,
                 "restoration_method": done["method"], "restoration_metrics": reference["restoration_metrics"]})
    if applied == "none":
        return None, None, crop
    return (applied, reference), intensity_range(restored), restored


def _tile_reach(params, shape: tuple[int, int, int], diameter: float) -> int:
    """How far (pixels) the network's tiles reach past a block's outer region on each side:
    :func:`runner.tile_reach` for the model ``params`` names (loaded where the blocks run)."""
    from .modelzoo import default_model_for, load_model
    from .runner import tile_reach

    model = load_model(params.model_name or default_model_for(shape if shape[0] > 1 else shape[1:]))
    return tile_reach(diam_mean=model.diam_mean, diameter=diameter)


def _segment_block(image, block: Block, shape: tuple[int, int, int], overlap: tuple[int, int, int], params,
                   intensity: Any, workdir: str, gpu: bool | None,
                   progress: Progress | None = None, restoration: tuple[str, dict] | None = None) -> dict[str, Any]:
    """Segment one block (restored first as ``restoration`` says: mode and reference) and
    write its labels; return its summary (small arrays only)."""
    from .engine import SegmentationEngine

    if gpu is None:  # on a cluster worker: its own device
        import torch

        gpu = bool(torch.cuda.is_available())
    t = time.perf_counter()
    data = np.asarray(image[block.read_region])
    if restoration is not None:  # the same method, settings and scaling in every block
        from .restoration import restore

        data = restore(data, restoration[0], reference=restoration[1])[0]
    if np.ndim(intensity) == 2:  # one range per plane of the volume: this block's planes
        intensity = np.asarray(intensity)[block.outer[0]]
    flat = data.shape[0] == 1 and not params.do_3d
    if flat and np.ndim(intensity) == 2:
        intensity = intensity[0]
    view = None
    if block.context is not None:  # the network sees the outer region in the whole plane's tiles
        from .runner import PlaneView

        inner = _within(block.outer, block.context)
        view = PlaneView(plane_shape=shape[1:], origin=(block.context[1].start, block.context[2].start),
                         window=((inner[1].start, inner[1].stop), (inner[2].start, inner[2].stop)))
    result = SegmentationEngine(gpu_available=gpu).segment(data[0] if flat else data, params, progress=progress,
                                                           intensity_range=intensity, view=view)
    labels = result.labels[np.newaxis] if flat else result.labels
    flows = result.flows[:, np.newaxis] if flat else result.flows
    cellprob = result.cellprob[np.newaxis] if flat else result.cellprob
    if view is not None:  # back to the outer region (nothing was segmented around it)
        inner = (slice(None), *_within(block.outer, block.context)[1:])
        labels, flows, cellprob = labels[inner], flows[(slice(None), *inner)], cellprob[inner]
    summary = _block_summary(workdir, block, labels, shape, overlap, flows, cellprob)
    return {**summary, "seconds": time.perf_counter() - t, "model": result.info["model"],
            "device": result.info["device"], "backend": result.info["backend"]}


def _block_summary(workdir: str, block: Block, labels: np.ndarray, shape: tuple[int, int, int],
                   overlap: tuple[int, int, int], flows=None, cellprob=None) -> dict[str, Any]:
    """Write a block's labels (its outer region) and return what stitching needs of it."""
    _write_block_labels(workdir, block.number, labels)
    return {"number": block.number, "max_id": int(labels.max()),
            "pieces": _piece_measures(block, labels, shape, overlap, flows, cellprob)}


def _shared_region(a: Block, b: Block) -> Region | None:
    region = tuple(slice(max(sa.start, sb.start), min(sa.stop, sb.stop))
                   for sa, sb in zip(a.outer, b.outer, strict=True))
    return region if all(s.stop > s.start for s in region) else None


def _local(region: Region, block: Block) -> Region:
    return _within(region, block.outer)


def _within(region: Region, frame: Region) -> Region:
    """``region`` (slices of the volume) as slices of an array holding ``frame``."""
    return tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(region, frame, strict=True))


def _match_pair(workdir: str, a: Block, b: Block,
                match_iou: float | None) -> tuple[list[tuple[int, int]], np.ndarray]:
    """In the region the two blocks both segmented: the pairs (id in a, id in b) of pieces that
    overlap by IoU >= ``match_iou`` (none when it is ``None``), and every pair of pieces that
    share a voxel there, ``(2, k)`` ids (a's, b's). Where both of such a pair are chosen views,
    ``b``'s (later in raster order) loses those voxels to ``a``'s (:meth:`BlockwiseResult.plane`)."""
    region = _shared_region(a, b)
    none = np.zeros((2, 0), np.int64)
    if region is None:
        return [], none
    la = _read_block(workdir, a.number, _local(region, a)).ravel().astype(np.int64)
    lb = _read_block(workdir, b.number, _local(region, b)).ravel().astype(np.int64)
    both = (la > 0) & (lb > 0)
    if not both.any():
        return [], none
    pairs, overlap = np.unique(np.stack([la[both], lb[both]]), axis=1, return_counts=True)
    if match_iou is None:
        return [], pairs
    size_a = np.bincount(la)
    size_b = np.bincount(lb)
    union = size_a[pairs[0]] + size_b[pairs[1]] - overlap
    keep = overlap / union >= match_iou
    return [(int(i), int(j)) for i, j in zip(pairs[0, keep], pairs[1, keep], strict=True)], pairs


def _neighbours(blocks: list[Block]) -> list[tuple[Block, Block]]:
    by_index = {b.index: b for b in blocks}
    pairs = []
    for block in blocks:
        for step in itertools.product((-1, 0, 1), repeat=3):
            other = by_index.get(tuple(i + s for i, s in zip(block.index, step, strict=True)))
            if other is not None and other.number > block.number:
                pairs.append((block, other))
    return pairs


def _overlapping(blocks: list[Block]) -> list[tuple[Block, Block]]:
    """Pairs ``(a, b)`` of blocks, ``a`` first in raster order, whose outer regions share
    voxels: those whose cores touch, and farther ones where cores are narrower than two margins."""
    by_index = {b.index: b for b in blocks}
    reach = []
    for axis in range(3):
        spans = {b.index[axis]: b.outer[axis] for b in blocks}
        reach.append(max(j - i for i in spans for j in spans if j >= i and spans[j].start < spans[i].stop))
    pairs = []
    for block in blocks:
        for step in itertools.product(*(range(-r, r + 1) for r in reach)):
            other = by_index.get(tuple(i + s for i, s in zip(block.index, step, strict=True)))
            if other is not None and other.number > block.number and _shared_region(block, other) is not None:
                pairs.append((block, other))
    return pairs


# -- running tasks: the local scheduler or a cluster ------------------------------------------


def _run_local(calls: list[tuple], progress: Callable[[int], None]) -> list[Any]:
    """Run ``(function, *args)`` calls with Dask's synchronous local scheduler, in this thread:
    one block at a time, so a cancel raised by ``progress`` stops before the next block and
    nothing is left running."""
    import dask
    from dask.callbacks import Callback

    tasks = [dask.delayed(fn, pure=False)(*args) for fn, *args in calls]
    keys = {t.key for t in tasks}
    done = [0]

    def posttask(key, result, dsk, state, worker_id):
        if key in keys:
            done[0] += 1
            progress(done[0])

    with Callback(posttask=posttask):
        return list(dask.compute(*tasks, scheduler="sync"))


def _run_cluster(address: str, calls: list[tuple], progress: Callable[[int], None]) -> list[Any]:
    """Run the calls on a ``dask.distributed`` cluster; a cancel raised by ``progress`` cancels
    the rest and waits (a while) for tasks that were already running."""
    from distributed import Client, as_completed

    with Client(address, timeout="10s", set_as_default=False) as client:
        futures = [client.submit(fn, *args, pure=False) for fn, *args in calls]
        index = {f.key: k for k, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        try:
            for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
                results[index[future.key]] = future.result()
                progress(done)
        except BaseException:
            client.cancel(futures)
            _drain(client, set(index))
            raise
        return results


def _drain(client, keys: set, timeout: float = _DRAIN_TIMEOUT_S) -> None:
    """Wait until no worker is still running one of ``keys`` (cancelled tasks run to their end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            busy = {k for tasks in client.processing().values() for k in tasks}
        except Exception:
            return
        if not busy & keys:
            return
        time.sleep(0.5)


def _run(calls: list[tuple], address: str | None, progress: Callable[[int], None]) -> list[Any]:
    if not calls:
        return []
    return _run_cluster(address, calls, progress) if address else _run_local(calls, progress)


# -- stitching and the result -----------------------------------------------------------------


def _union_find(total: int, edges: list[tuple[int, int]]) -> np.ndarray:
    parent = np.arange(total, dtype=np.int64)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    for i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(total)], np.int64)


@dataclass
class BlockwiseResult:
    """The stitched segmentation, kept block by block in ``workdir`` until :meth:`close`.

    Each nucleus is one block's label, whole: the piece of the nucleus chosen among the blocks
    that saw it (see the module docstring). Planes are assembled on demand.

    Attributes
    ----------
    shape : (Z, Y, X) of the volume.
    blocks : the grid.
    lookups : per block, local id -> final id (0: background, or a piece another block's view
        of the nucleus was chosen over).
    n_labels : final ids are ``1..n_labels``.
    info : as :meth:`SegmentationEngine.segment`'s, with ``blockwise`` (grid, overlap, merges).
    """

    shape: tuple[int, int, int]
    blocks: list[Block]
    lookups: list[np.ndarray]
    n_labels: int
    info: dict[str, Any]
    workdir: str
    _measures: dict[str, np.ndarray]

    def plane(self, z: int) -> np.ndarray:
        """Plane ``z`` of the stitched labels, (Y, X) uint32. Where the chosen views of two
        nuclei overlap, the block first in raster order keeps the voxel."""
        out = np.zeros(self.shape[1:], np.uint32)
        for block in self.blocks:
            if block.outer[0].start <= z < block.outer[0].stop:
                lookup = self.lookups[block.number]
                if not lookup.any():
                    continue
                local = _read_block(self.workdir, block.number, (z - block.outer[0].start, slice(None), slice(None)))
                values = lookup[local]
                target = out[block.outer[1], block.outer[2]]
                free = (target == 0) & (values != 0)
                target[free] = values[free]
        return out

    def read(self) -> np.ndarray:
        """The whole stitched label volume (for small volumes and tests only)."""
        return np.stack([self.plane(z) for z in range(self.shape[0])])

    def rows(self, image: Any, voxel_size: tuple[float, ...]) -> NucleusSums:
        """One row per nucleus, as :func:`measurements.nucleus_table` on the stitched labels,
        measured a plane at a time against ``image`` (the volume, (Z, Y, X) array-like) with
        the chosen views' scores as ``uncertainty``. Solidity is the chosen view's, but for the
        nuclei another view trims (:attr:`trimmed`), measured again on what is left of them. The
        rows are made one at a time as they are iterated (:class:`NucleusSums`)."""
        return measure_planes(self.plane, self.shape, image, voxel_size, solidity=self._measures["solidity"],
                              uncertainty=self._measures["uncertainty"], measure_solidity=self.trimmed)

    @property
    def solidity(self) -> np.ndarray:
        """(n_labels + 1,) float: the solidity of each nucleus' chosen view, by final id."""
        return self._measures["solidity"]

    @property
    def trimmed(self) -> np.ndarray:
        """Final ids (increasing) of the nuclei whose chosen view loses voxels to another
        block's view where the two overlap (:meth:`plane`): their :attr:`solidity` is their
        whole view's, not that of what is left of them."""
        return self._measures["trimmed"]

    @property
    def scores(self) -> np.ndarray:
        """(n_labels + 1,) float: the uncertainty score of each nucleus' chosen view, by final id
        (``nan``: none)."""
        return self._measures["uncertainty"]

    def uncertainty(self) -> dict[int, float]:
        """``{final id: score}`` of each nucleus' chosen view."""
        scores = self._measures["uncertainty"]
        return {k: float(scores[k]) for k in range(1, self.n_labels + 1) if not math.isnan(scores[k])}

    def close(self) -> None:
        """Remove the work folder."""
        shutil.rmtree(self.workdir, ignore_errors=True)


def _stitch(workdir: str, blocks: list[Block], summaries: list[dict], match_iou: float, address: str | None,
            report: Callable[[int, int], None]) -> tuple[list[np.ndarray], int, dict[str, np.ndarray], int]:
    """Group the pieces of each nucleus and choose one view of it.

    Pieces of touching blocks that overlap by IoU >= ``match_iou`` in their shared margin are
    one nucleus (union-find over ``(block, local id)``). A nucleus is kept when one of its
    pieces has voxels in its own block's core (otherwise it lies in margins only, and the block
    whose core holds it has its own view); its view is a piece not cut by its block's edge,
    with the most voxels (then the deepest centroid). Returns the per-block lookups (local id ->
    final id, 0 for pieces not chosen), the number of nuclei, their measures (solidity and
    uncertainty of the chosen view, by final id; ``trimmed``, the final ids whose view loses voxels
    to another block's where two chosen views overlap) and the number of merges."""
    # Every pair of blocks that segmented a region in common: touching ones match their pieces
    # there; all tell which pieces share voxels, so which chosen views the assembly trims.
    pairs = _overlapping(blocks)
    found = _run([(_match_pair, workdir, a, b,
                   match_iou if max(abs(i - j) for i, j in zip(a.index, b.index, strict=True)) <= 1 else None)
                  for a, b in pairs], address, lambda done: report(done, len(pairs)))
    summaries = sorted(summaries, key=lambda s: s["number"])
    offsets = np.concatenate([[0], np.cumsum([s["max_id"] + 1 for s in summaries])]).astype(np.int64)
    total = int(offsets[-1])
    edges = [(offsets[a.number] + i, offsets[b.number] + j)
             for (a, b), (matches, _) in zip(pairs, found, strict=True) for i, j in matches]
    roots = _union_find(total, edges)
    pieces = {key: np.concatenate([s["pieces"][key] for s in summaries])
              for key in ("present", "count", "in_core", "cut", "depth", "solidity", "uncertainty")}
    present = pieces["present"]
    kept_root = np.zeros(total, bool)
    kept_root[roots[present & pieces["in_core"]]] = True
    # The chosen view of each kept nucleus: not cut by its block's edge first, then the largest
    # (a block that split the nucleus has smaller pieces), then the deepest; ties to the first.
    candidates = np.flatnonzero(present & kept_root[roots])
    order = np.lexsort((candidates, -pieces["depth"][candidates], -pieces["count"][candidates],
                        pieces["cut"][candidates], roots[candidates]))
    ranked = candidates[order]
    first = np.ones(ranked.size, bool)
    first[1:] = roots[ranked[1:]] != roots[ranked[:-1]]
    chosen = ranked[first]  # one piece per kept nucleus, by increasing root
    n_labels = int(chosen.size)
    if n_labels >= 2 ** 32 - 1:
        raise InvalidInputError(f"{n_labels} nuclei do not fit uint32 ids")
    final = np.zeros(total, np.uint32)
    final[chosen] = np.arange(1, n_labels + 1, dtype=np.uint32)
    lookups = [final[offsets[s["number"]]:offsets[s["number"] + 1]].copy() for s in summaries]
    # Where two chosen views overlap, the block first in raster order keeps the voxels
    # (BlockwiseResult.plane): the other's nucleus is measured again on what is left of it.
    trimmed = np.zeros(n_labels + 1, bool)
    for (a, b), (_, contacts) in zip(pairs, found, strict=True):
        first_view, later_view = lookups[a.number][contacts[0]], lookups[b.number][contacts[1]]
        trimmed[later_view[(first_view > 0) & (later_view > 0)]] = True
    measures = {"solidity": np.concatenate([[1.0], pieces["solidity"][chosen]]),
                "uncertainty": np.concatenate([[np.nan], pieces["uncertainty"][chosen]]),
                "trimmed": np.flatnonzero(trimmed)}
    return lookups, n_labels, measures, len(edges)


def segment_blockwise(image: Any, params, blockwise: BlockwiseParams | None = None, *, workdir: str | os.PathLike,
                      gpu: bool = False, scheduler_address: str | None = None,
                      progress: Progress | None = None) -> BlockwiseResult:
    """Segment a (Z, Y, X) volume block by block and stitch the blocks.

    Parameters
    ----------
    image : (Z, Y, X) array-like of real numbers (a numpy array, a :class:`ZarrVolume`; for a
        cluster, one that pickles small, like ``ZarrVolume``); (Y, X) numpy arrays are taken as
        Z = 1. Read a block at a time; never modified.
    params : :class:`SegmentationParams`; a missing diameter is estimated once, on a centre crop
        of at most ``block_voxels`` voxels. Restoration is applied to each block (its margins
        included) with the method, settings and intensity scaling decided once on that crop
        (``restoration.restoration_reference``; ``auto`` chooses there), and the blocks are
        then normalised by the restored crop's intensity range.
    blockwise : grid and stitching parameters (defaults: ``BlockwiseParams()``).
    workdir : a folder to create for the blocks' labels (on a cluster: one every worker sees);
        it must not exist. :meth:`BlockwiseResult.close` removes it; a failure or cancel removes
        it before raising.
    gpu : use a GPU in this process (local scheduler); cluster workers use theirs if torch sees one.
    scheduler_address : a ``dask.distributed`` scheduler (``tcp://host:8786``); ``None``: local.
    progress : ``progress(fraction, message)``; an exception it raises stops the run and
        propagates, leaving nothing behind.

    Returns
    -------
    BlockwiseResult
    """
    from .engine import SegmentationEngine, _null_progress, _stage, plane_intensity_ranges
    from .params import SegmentationParams

    params = params or SegmentationParams()
    blockwise = blockwise or BlockwiseParams()
    report = progress or _null_progress
    image = _as_zyx(image)
    shape = tuple(int(s) for s in image.shape)
    if params.voxel_size is not None and len(params.voxel_size) != (3 if shape[0] > 1 else 2) \
            and len(params.voxel_size) != 3:
        raise InvalidParameterError(f"voxel_size has {len(params.voxel_size)} values for a volume of shape {shape}")
    if min(shape[1:]) < 8:
        raise InvalidInputError(f"image planes must be at least 8x8 pixels, got shape {shape}")
    workdir = Path(workdir)
    workdir.mkdir(parents=False, exist_ok=False)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        (workdir / "blocks").mkdir()
        report(0.0, "measuring the intensity range")
        t = time.perf_counter()
        lo, hi = intensity_range(image)
        # Planes scaled by their own ranges (as the engine does for a whole stack), or all by one.
        intensity = plane_intensity_ranges(image, (lo, hi)) if shape[0] > 1 and params.normalize_planes else (lo, hi)
        timings["intensity_range"] = time.perf_counter() - t
        info: dict[str, Any] = {}
        restoration, crop = None, None
        if params.restoration_mode != "none":
            t = time.perf_counter()
            report(0.005, "measuring image quality")
            crop = _centre_crop(image, blockwise.block_voxels)
            restoration, restored_range, crop = _restoration_plan(crop, params, info)
            if restoration is not None:  # the restored volume's range, not the raw one's
                intensity = restored_range
            timings["restoration_reference"] = time.perf_counter() - t
        diameter = params.diameter
        if diameter is None:
            t = time.perf_counter()
            crop = _centre_crop(image, blockwise.block_voxels) if crop is None else crop
            diameter, estimate = SegmentationEngine(gpu_available=gpu).estimate_diameter(
                crop[0] if crop.shape[0] == 1 else crop, dataclasses.replace(params, restoration_mode="none"),
                progress=_stage(report, 0.01, 0.05))
            info["diameter_estimation"] = {**estimate, "crop": list(crop.shape)}
            timings["diameter_estimation"] = time.perf_counter() - t
        block_params = dataclasses.replace(params, diameter=float(diameter), restoration_mode="none")
        z_diameter = diameter / params.anisotropy if shape[0] > 1 else 0
        overlap = (math.ceil(blockwise.overlap * z_diameter), math.ceil(blockwise.overlap * diameter),
                   math.ceil(blockwise.overlap * diameter))
        context = None
        if blockwise.whole_plane_tiles and not (shape[0] > 1 and params.do_3d and params.use_3d_backend == "true3d"):
            # Where the network runs plane by plane, each block reads what its tiles reach.
            reach = _run([(_tile_reach, params, shape, float(diameter))], scheduler_address, lambda done: None)[0]
            context = (0, reach, reach)
        blocks = block_grid(shape, block_voxels=blockwise.block_voxels, overlap=overlap, align=blockwise.align,
                            context=context)
        stage = _stage(report, 0.05, 0.92)
        total = len(blocks)
        stage(0.0, f"segmenting {total} blocks")
        t = time.perf_counter()
        finished = [0]  # blocks done so far (the local scheduler runs them in its own order)
        summaries = _run([(_segment_block, image, b, shape, overlap, block_params, intensity, str(workdir),
                           gpu if scheduler_address is None else None,
                           None if scheduler_address else _block_progress(stage, finished, total), restoration)
                          for b in blocks],
                         scheduler_address, lambda done: _blocks_done(stage, finished, done, total))
        timings["blocks"] = time.perf_counter() - t
        report(0.92, "stitching blocks")
        t = time.perf_counter()
        lookups, n_labels, measures, merged = _stitch(
            str(workdir), blocks, summaries, blockwise.match_iou, scheduler_address,
            lambda done, pairs: report(0.92 + 0.04 * done / max(pairs, 1), f"stitched {done}/{pairs} block pairs"))
        timings["stitching"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t_start
        first = min(summaries, key=lambda s: s["number"])
        info.update({
            "nucleus_count": n_labels,
            "backend": first["backend"],
            "do_3d": bool(shape[0] > 1 and params.do_3d),
            "shape": list(shape),
            "model": first["model"],
            "device": first["device"],
            "diameter": round(float(diameter), 3),
            "diameter_estimated": params.diameter is None,
            "params": params.to_dict(),
            "timings": {k: round(v, 4) for k, v in timings.items()},
            "blockwise": {
                **blockwise.to_dict(), "blocks": total, "grid": [max(b.index[a] for b in blocks) + 1 for a in range(3)],
                "core_shape": [s.stop - s.start for s in blocks[0].core], "overlap_voxels": list(overlap),
                "context_voxels": list(context or (0, 0, 0)),
                "intensity_range": [lo, hi], "pieces_merged": merged,
                "nuclei_trimmed": int(measures["trimmed"].size),
                "scheduler": scheduler_address or "local (dask sync)",
                "block_seconds": round(float(sum(s["seconds"] for s in summaries)), 3),
            },
        })
        report(0.97, f"stitched: {n_labels} nuclei")
        return BlockwiseResult(shape=shape, blocks=blocks, lookups=lookups, n_labels=n_labels, info=info,
                               workdir=str(workdir), _measures=measures)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _block_progress(stage: Progress, finished: list[int], total: int) -> Progress:
    """Progress of one block run in this process (the local scheduler): its share of the total
    after the blocks ``finished`` so far, so a cancel is seen within the block too."""
    def report(fraction: float, message: str) -> None:
        done = finished[0]
        stage((done + min(max(float(fraction), 0.0), 1.0)) / total, f"block {done + 1}/{total}: {message}")
    return report


def _blocks_done(stage: Progress, finished: list[int], done: int, total: int) -> None:
    finished[0] = done
    stage(done / total, f"segmented {done}/{total} blocks")


def _centre_crop(image: Any, max_voxels: int) -> np.ndarray:
    """The centre of a (Z, Y, X) image, at most 768 x 768 in y, x and ``max_voxels`` in all."""
    nz, ny, nx = image.shape
    cy, cx = min(ny, 768), min(nx, 768)
    cz = max(1, min(nz, max_voxels // (cy * cx)))
    z0, y0, x0 = (nz - cz) // 2, (ny - cy) // 2, (nx - cx) // 2
    return np.asarray(image[z0:z0 + cz, y0:y0 + cy, x0:x0 + cx])
