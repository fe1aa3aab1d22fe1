"""Blockwise segmentation (segmentation.core.blockwise): peak memory and time against volume
size, whole against blockwise, and the local scheduler against a two-worker cluster.

Three parts, each printing its figures:

``memory``
    Peak RSS of one process segmenting generated volumes of growing size (default up to
    128 x 3072 x 3072 = 1.2 Gvoxel) block by block, reading the volume from a zarr array and
    writing the stitched labels a plane at a time to another (as a job does), beside whole-volume
    segmentation on the sizes this machine can hold. Each run is a fresh process; its peak RSS
    is its own ``ru_maxrss``. A 1-Gvoxel volume with the shipped network takes hours on two CPU
    cores, so this part runs a *tiny* network (a CPnet of 2/8/16 channels with random weights,
    cellprob_threshold 8 so it finds nothing): what it measures is the pipeline's memory
    (image, float copy, flows and probabilities of a block, the network's activations, the
    stitching, the plane-by-plane write), not segmentation quality. The volumes are tiles of one
    generated 32 x 512 x 512 stack (uint16), written plane by plane.
``quality``
    The shipped default network for stacks (``DEFAULT_MODEL_3D``; ``--backend``, default true3d) on smaller
    generated stacks cut in 2 x 2 blocks: time and peak RSS whole against blockwise for each
    margin of ``--overlaps`` (in nucleus diameters, the cores the same), AP@0.5 between the two
    label volumes, and the whole-volume nuclei split at a block face (two nuclei on its two
    sides). Beside them the ceiling: AP@0.5 of the whole run against the whole run of the same
    stack shifted by 16 pixels in y and x (what both hold, nuclei cut by the crop left out),
    which is how much the network's output moves with its field of view alone.
``cluster``
    Generated stacks of growing size blockwise on the local scheduler and on a
    ``dask.distributed`` cluster of two single-threaded worker processes (``LocalCluster``, a
    fresh one per size), shipped network: time, the job process's peak RSS and each worker's.

    python bench/blockwise.py                 # all parts, default sizes
    python bench/blockwise.py --part memory --sizes 128x768x768,128x3072x3072
    python bench/blockwise.py --part quality --backend slice --quality-sizes 8x256x256 --overlaps 1,1.5,2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEMORY_SIZES = "128x768x768,128x1536x1536,128x2304x2304,128x3072x3072"
WHOLE_MAX_VOXELS = 160_000_000  # whole-volume runs above this would not fit beside the others here
BLOCK_VOXELS = 2 ** 25
BACKEND = "true3d"
TILES = "on"  # BlockwiseParams.whole_plane_tiles


def _shape(text: str) -> tuple[int, int, int]:
    z, y, x = (int(v) for v in text.lower().split("x"))
    return z, y, x


def _tile_volume(path: Path, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """A zarr uint16 array of ``shape``: a generated 32 x 512 x 512 stack tiled, a plane at a time."""
    import zarr

    from segmentation.core import synthetic

    if path.exists():
        return path
    tile = synthetic.generate_3d((min(shape[0], 32), 512, 512), seed=seed, diameter=16, voxel_size=(2.0, 0.5, 0.5))
    tile = np.clip(np.round(tile.image), 0, 65535).astype(np.uint16)
    array = zarr.create_array(store=str(path), shape=shape, dtype=np.uint16, chunks=(1, 512, 512))
    reps = (-(-shape[1] // 512), -(-shape[2] // 512))
    for z in range(shape[0]):
        array[z] = np.tile(tile[z % tile.shape[0]], reps)[:shape[1], :shape[2]]
    return path


def _tiny_model(path: Path) -> Path:
    import torch
    from cellpose.resnet_torch import CPnet

    from segmentation.core.training import save_weights

    if not path.exists():
        torch.manual_seed(0)
        save_weights(CPnet([2, 8, 16], 3, sz=3, mkldnn=False, max_pool=True, diam_mean=17.0), path, {"bench": True})
    return path


def _standin_segment(self, image, params=None, progress=None, intensity_range=None, view=None):
    """``SegmentationEngine.segment`` without the network (``--engine standin``): the same input
    checks and normalisation, then arrays of the engine's sizes (flows (3, Z, Y, X) float32 as
    gradients of a smoothed copy, cell probabilities, labels) and nuclei by thresholding that copy.
    What it holds a voxel is what the engine holds, so a blockwise run's memory is the pipeline's;
    it finds grid-cut blobs, not the network's nuclei. A block's ``view`` is ignored: the blobs of
    all it read are found, and the block keeps its outer region's."""
    from scipy import ndimage as ndi

    from segmentation.core.engine import SegmentationResult, _stack_ranges, normalize_intensity, validate_image

    data = validate_image(image)
    ranges = _stack_ranges(data, params) if intensity_range is None else intensity_range
    volume = normalize_intensity(data, ranges)
    smooth = ndi.gaussian_filter(volume, 1.0)
    flows = np.stack(np.gradient(smooth)).astype(np.float32)
    cellprob = ((smooth - 0.5) * 8).astype(np.float32)
    # Blobs cut by a 16-pixel grid in y and x: nucleus-sized pieces (touching nuclei merge when
    # only thresholded, and one huge blob would cost the uncertainty's flow simulation hours).
    mask = smooth > 0.5
    mask[..., ::16, :] = False
    mask[..., ::16] = False
    labels, count = ndi.label(mask)
    info = {"nucleus_count": int(count), "backend": "standin", "model": {"name": "standin"}, "device": "cpu"}
    del flows  # held like the engine's, not returned: the uncertainty's flow-error term (cellpose's
    # flow simulation of every mask) would take hours at 1 Gvoxel on two cores; its memory is a block's
    return SegmentationResult(labels=labels.astype(np.uint32), info=info, flows=None, cellprob=cellprob,
                              params=params)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args) -> None:
    """One run in this fresh process; prints a JSON line."""
    import zarr

    from segmentation.core import SegmentationEngine, SegmentationParams
    from segmentation.core.blockwise import BlockwiseParams, ZarrVolume, segment_blockwise

    if args.engine == "standin":
        SegmentationEngine.segment = _standin_segment
    params = SegmentationParams(model_name=args.model, diameter=16.0, do_3d=True, use_3d_backend=args.backend,
                                voxel_size=(2.0, 0.5, 0.5), cellprob_threshold=args.cellprob)
    source = ZarrVolume(args.volume)
    t = time.perf_counter()
    out: dict = {"shape": list(source.shape), "mode": args.mode}
    if args.mode == "whole":
        result = SegmentationEngine().segment(source[...], params)
        labels = result.labels
        out["nuclei"] = result.info["nucleus_count"]
    else:
        work = Path(args.work) / f"run-{os.getpid()}"
        result = segment_blockwise(source, params, BlockwiseParams(block_voxels=args.block_voxels,
                                                                   overlap=args.overlap,
                                                                   whole_plane_tiles=args.tiles == "on"),
                                   workdir=work, scheduler_address=args.scheduler)
        out["cores"] = [[[s.start, s.stop] for s in b.core] for b in result.blocks]
        stages = dict(result.info["timings"])
        t_write = time.perf_counter()
        target = zarr.create_array(store=str(Path(args.work) / f"labels-{os.getpid()}"), shape=source.shape,
                                   dtype=np.uint32, chunks=(1, 256, 256))
        for z in range(source.shape[0]):
            target[z] = result.plane(z)
        t_rows = time.perf_counter()
        rows = result.rows(source, (2.0, 0.5, 0.5))
        stages.update(write=t_rows - t_write, rows=time.perf_counter() - t_rows)
        out["stages"] = {k: round(v, 1) for k, v in stages.items()}
        out.update(nuclei=len(rows), blocks=result.info["blockwise"]["blocks"])
        result.close()
        labels = None
        if args.save:
            labels = np.asarray(target[...])
        shutil.rmtree(Path(args.work) / f"labels-{os.getpid()}", ignore_errors=True)
    out.update(seconds=round(time.perf_counter() - t, 1), peak_rss_mb=round(_peak_rss_mb()))
    if args.save and labels is not None:
        np.save(args.save, labels)
    print(json.dumps(out), flush=True)


def _run_child(volume: Path, mode: str, model: str | None, work: Path, *, cellprob: float = 0.0,
               save: Path | None = None, scheduler: str | None = None, engine: str = "network",
               overlap: float = 1.0, tiles: str | None = None) -> dict:
    command = [sys.executable, __file__, "--child", "--volume", str(volume), "--mode", mode, "--work", str(work),
               "--cellprob", str(cellprob), "--block-voxels", str(BLOCK_VOXELS), "--backend", BACKEND,
               "--engine", engine, "--overlap", str(overlap), "--whole-plane-tiles", tiles or TILES]
    if model:
        command += ["--model", model]
    if save:
        command += ["--save", str(save)]
    if scheduler:
        command += ["--scheduler", scheduler]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"mode": mode, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def part_memory(work: Path, sizes: list[tuple[int, int, int]], whole_max: int = WHOLE_MAX_VOXELS,
                engine: str = "network") -> None:
    model = str(_tiny_model(work / "tiny.pt"))
    what = "tiny network" if engine == "network" else "stand-in engine, no network"
    print(f"\n== memory: peak RSS against volume size ({what}, {BACKEND}, blocks of {BLOCK_VOXELS} voxels) ==")
    print(f"{'shape':>18} {'Mvoxel':>8} {'mode':>10} {'blocks':>6} {'seconds':>8} {'peak RSS MB':>11}")
    for shape in sizes:
        volume = _tile_volume(work / f"volume-{'x'.join(map(str, shape))}.zarr", shape)
        modes = ["blockwise"] + (["whole"] if np.prod(shape) <= whole_max else [])
        for mode in modes:
            r = _run_child(volume, mode, model, work, cellprob=8.0, engine=engine)
            print(f"{'x'.join(map(str, shape)):>18} {np.prod(shape) / 1e6:8.1f} {mode:>10} {r.get('blocks', 1):>6} "
                  f"{r.get('seconds', float('nan')):8.1f} {r.get('peak_rss_mb', float('nan')):11.0f}"
                  + (f"  error: {r['error']}" if "error" in r else "")
                  + (f"  stages: {r['stages']}" if "stages" in r else ""), flush=True)
        shutil.rmtree(volume, ignore_errors=True)


def _split_at_faces(reference: np.ndarray, labels: np.ndarray, cores: list) -> int:
    """Nuclei of ``reference`` that cross a core face and whose voxels on its two sides are
    mostly two different nuclei of ``labels``."""
    split = set()
    for core in cores:
        core = tuple(slice(a, b) for a, b in core)
        for axis in range(3):
            face = core[axis].stop
            if face >= labels.shape[axis]:
                continue
            before, after = list(core), list(core)
            before[axis], after[axis] = slice(face - 1, face), slice(face, face + 1)
            ref_a, ref_b = reference[tuple(before)], reference[tuple(after)]
            lab_a, lab_b = labels[tuple(before)], labels[tuple(after)]
            for nucleus in set(np.unique(ref_a)) & set(np.unique(ref_b)) - {0}:
                sides = []
                for ref, lab in ((ref_a, lab_a), (ref_b, lab_b)):
                    ids, counts = np.unique(lab[ref == nucleus], return_counts=True)
                    sides.append(ids[np.argmax(counts)])
                if 0 not in sides and sides[0] != sides[1]:
                    split.add(int(nucleus))
    return len(split)


def _shifted_ap(work: Path, volume: Path, whole: np.ndarray, shift: int = 16) -> tuple[float, float]:
    """AP@0.5 of ``whole`` against the whole run of the volume less its first ``shift`` rows and
    columns, on what both hold, nuclei cut by the crop left out; and the run's seconds."""
    import zarr

    from segmentation.core.metrics import average_precision

    source = zarr.open_array(str(volume), mode="r")
    shifted = work / "shifted.zarr"
    shutil.rmtree(shifted, ignore_errors=True)
    crop = zarr.create_array(store=str(shifted), shape=(source.shape[0], source.shape[1] - shift,
                                                        source.shape[2] - shift), dtype=source.dtype,
                             chunks=(1, 512, 512))
    crop[...] = source[:, shift:, shift:]
    r = _run_child(shifted, "whole", None, work, save=work / "shifted.npy")
    shutil.rmtree(shifted, ignore_errors=True)
    if "error" in r:
        return float("nan"), float("nan")
    a, b = whole[:, shift:, shift:].copy(), np.load(work / "shifted.npy")
    for labels in (a, b):
        cut = np.unique(np.concatenate([labels[:, 0, :].ravel(), labels[:, :, 0].ravel()]))
        labels[np.isin(labels, cut[cut > 0])] = 0
    return float(average_precision(a, b, thresholds=(0.5,)).ap[0]), r["seconds"]


def part_quality(work: Path, sizes: list[tuple[int, int, int]], overlaps: list[float],
                 tiles: list[str] = ("on",)) -> None:
    import math

    from segmentation.core.metrics import average_precision

    global BLOCK_VOXELS
    print(f"\n== quality: shipped network ({BACKEND}), whole against blockwise, 2 x 2 blocks ==")
    print(f"{'shape':>14} {'tiles':>5} {'overlap':>7} {'whole s':>8} {'block s':>8} {'ratio':>6} {'whole MB':>8} "
          f"{'block MB':>8} {'nuclei w/b':>11} {'AP@0.5':>7} {'split':>5}")
    for shape in sizes:
        volume = _tile_volume(work / f"q-{'x'.join(map(str, shape))}.zarr", shape, seed=3)
        w = _run_child(volume, "whole", None, work, save=work / "whole.npy")
        if "error" in w:
            print(f"{'x'.join(map(str, shape)):>14} error: {w['error']}")
            continue
        whole = np.load(work / "whole.npy")
        saved = BLOCK_VOXELS
        for overlap, tile in ((o, t) for t in tiles for o in overlaps):
            # Cores of half the plane in y and x whatever the margin: blocks of the core plus it.
            margin = math.ceil(overlap * 16)
            BLOCK_VOXELS = shape[0] * (-(-shape[1] // 2) + 2 * margin) * (-(-shape[2] // 2) + 2 * margin)
            b = _run_child(volume, "blockwise", None, work, save=work / "block.npy", overlap=overlap, tiles=tile)
            if "error" in b:
                print(f"{'x'.join(map(str, shape)):>14} {tile:>5} {overlap:7.2g} error: {b['error']}")
                continue
            stitched = np.load(work / "block.npy")
            ap = average_precision(whole, stitched, thresholds=(0.5,)).ap[0]
            print(f"{'x'.join(map(str, shape)):>14} {tile:>5} {overlap:7.2g} {w['seconds']:8.1f} {b['seconds']:8.1f} "
                  f"{b['seconds'] / w['seconds']:6.2f} {w['peak_rss_mb']:8.0f} {b['peak_rss_mb']:8.0f} "
                  f"{w['nuclei']:>5}/{b['nuclei']:<5} {ap:7.3f} {_split_at_faces(whole, stitched, b['cores']):>5}",
                  flush=True)
        BLOCK_VOXELS = saved
        ceiling, seconds = _shifted_ap(work, volume, whole)
        print(f"{'x'.join(map(str, shape)):>14} ceiling: whole against whole shifted by 16 px, AP@0.5 {ceiling:.3f} "
              f"({seconds:.1f} s)", flush=True)
        shutil.rmtree(volume, ignore_errors=True)


def part_cluster(work: Path, shapes: list[tuple[int, int, int]]) -> None:
    from distributed import Client, LocalCluster

    global BLOCK_VOXELS
    print(f"\n== cluster: local scheduler against two worker processes (shipped network, {BACKEND}, 2 x 2 blocks) ==")
    print(f"{'shape':>14} {'Mvoxel':>7} {'where':>10} {'blocks':>6} {'seconds':>8} {'job MB':>7} {'worker MB':>12}")
    for shape in shapes:
        volume = _tile_volume(work / f"c-{'x'.join(map(str, shape))}.zarr", shape, seed=4)
        saved = BLOCK_VOXELS
        BLOCK_VOXELS = shape[0] * (-(-shape[1] // 2) + 32) * (-(-shape[2] // 2) + 32)
        local = _run_child(volume, "blockwise", None, work)
        # A fresh cluster per size, so each worker's peak is this volume's.
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            remote = _run_child(volume, "blockwise", None, work, scheduler=cluster.scheduler_address)
            workers = sorted(client.run(_peak_rss_mb).values())
        BLOCK_VOXELS = saved
        name = "x".join(map(str, shape))
        for where, r, peaks in (("local", local, "-"), ("2 workers", remote, "/".join(f"{w:.0f}" for w in workers))):
            print(f"{name:>14} {np.prod(shape) / 1e6:7.1f} {where:>10} " + (
                f"error: {r['error']}" if "error" in r else
                f"{r['blocks']:>6} {r['seconds']:8.1f} {r['peak_rss_mb']:7.0f} {peaks:>12}"), flush=True)
        if "error" not in local and "error" not in remote:
            print(f"{name:>14} speed-up with 2 workers: {local['seconds'] / remote['seconds']:.2f}x", flush=True)
        shutil.rmtree(volume, ignore_errors=True)


def main() -> None:
    global BLOCK_VOXELS, BACKEND, TILES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["all", "memory", "quality", "cluster"])
    parser.add_argument("--sizes", default=MEMORY_SIZES, help="memory part: ZxYxX,...")
    parser.add_argument("--quality-sizes", default="16x256x256,32x384x384")
    parser.add_argument("--overlaps", default="1",
                        help="quality part: the margins to compare, in nucleus diameters (e.g. 1,1.5,2)")
    parser.add_argument("--overlap", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--cluster-sizes", default="4x256x256,4x512x512",
                        help="cluster part: ZxYxX,... (each cut in 2 x 2 blocks)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--volume"), parser.add_argument("--mode"), parser.add_argument("--work")
    parser.add_argument("--model"), parser.add_argument("--save"), parser.add_argument("--scheduler")
    parser.add_argument("--cellprob", type=float, default=0.0)
    parser.add_argument("--block-voxels", type=int, default=BLOCK_VOXELS,
                        help="memory part: largest block (the quality and cluster parts cut theirs in four)")
    parser.add_argument("--whole-max", type=int, default=WHOLE_MAX_VOXELS,
                        help="memory part: whole-volume runs only up to this many voxels")
    parser.add_argument("--backend", default=BACKEND, help="the 3D backend (default true3d)")
    parser.add_argument("--whole-plane-tiles", dest="tiles", default=TILES,
                        help="BlockwiseParams.whole_plane_tiles: on, off, or (quality part) on,off to compare both")
    parser.add_argument("--engine", default="network", choices=["network", "standin"],
                        help="memory part: the tiny network, or a stand-in without one (thresholded blobs, the "
                             "engine's arrays): the only way to reach 1 Gvoxel on a few CPU cores")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    BLOCK_VOXELS, BACKEND, TILES = args.block_voxels, args.backend, args.tiles.split(",")[0]
    work = Path(tempfile.mkdtemp(prefix="bench-blockwise-"))
    try:
        print(f"machine: {os.cpu_count()} CPUs; blocks of {BLOCK_VOXELS} voxels")
        if args.part in ("all", "memory"):
            part_memory(work, [_shape(s) for s in args.sizes.split(",")], args.whole_max, args.engine)
        if args.part in ("all", "quality"):
            part_quality(work, [_shape(s) for s in args.quality_sizes.split(",")],
                         [float(o) for o in args.overlaps.split(",")], args.tiles.split(","))
        if args.part in ("all", "cluster"):
            part_cluster(work, [_shape(s) for s in args.cluster_sizes.split(",")])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
