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
    The shipped default network (ezq_nuclei_v2, true3d) on smaller generated stacks: time and
    peak RSS whole against blockwise, and AP@0.5 between the two label volumes.
``cluster``
    One generated stack blockwise on the local scheduler and on a ``dask.distributed`` cluster
    of two single-threaded worker processes (``LocalCluster``), shipped network: time.

    python bench/blockwise.py                 # all parts, default sizes
    python bench/blockwise.py --part memory --sizes 128x768x768,128x3072x3072
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


def _standin_segment(self, image, params=None, progress=None, intensity_range=None):
    """``SegmentationEngine.segment`` without the network (``--engine standin``): the same input
    checks and normalisation, then arrays of the engine's sizes (flows (3, Z, Y, X) float32 as
    gradients of a smoothed copy, cell probabilities, labels) and nuclei by thresholding that copy.
    What it holds a voxel is what the engine holds, so a blockwise run's memory is the pipeline's;
    it finds grid-cut blobs, not the network's nuclei."""
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
        result = segment_blockwise(source, params, BlockwiseParams(block_voxels=args.block_voxels), workdir=work,
                                   scheduler_address=args.scheduler)
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
               save: Path | None = None, scheduler: str | None = None, engine: str = "network") -> dict:
    command = [sys.executable, __file__, "--child", "--volume", str(volume), "--mode", mode, "--work", str(work),
               "--cellprob", str(cellprob), "--block-voxels", str(BLOCK_VOXELS), "--backend", BACKEND,
               "--engine", engine]
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


def part_quality(work: Path, sizes: list[tuple[int, int, int]]) -> None:
    from segmentation.core.metrics import average_precision

    global BLOCK_VOXELS
    print(f"\n== quality: shipped network ({BACKEND}), whole against blockwise ==")
    print(f"{'shape':>14} {'blocks':>6} {'whole s':>8} {'block s':>8} {'ratio':>6} {'whole MB':>8} "
          f"{'block MB':>8} {'nuclei w/b':>11} {'AP@0.5':>7}")
    for shape in sizes:
        volume = _tile_volume(work / f"q-{'x'.join(map(str, shape))}.zarr", shape, seed=3)
        saved = BLOCK_VOXELS
        BLOCK_VOXELS = max(4096, int(np.prod(shape) * 0.4))  # four blocks or so, margins included
        w = _run_child(volume, "whole", None, work, save=work / "whole.npy")
        b = _run_child(volume, "blockwise", None, work, save=work / "block.npy")
        BLOCK_VOXELS = saved
        if "error" in w or "error" in b:
            print(f"{'x'.join(map(str, shape)):>14} error: {w.get('error') or b.get('error')}")
            continue
        ap = average_precision(np.load(work / "whole.npy"), np.load(work / "block.npy"), thresholds=(0.5,)).ap[0]
        print(f"{'x'.join(map(str, shape)):>14} {b['blocks']:>6} {w['seconds']:8.1f} {b['seconds']:8.1f} "
              f"{b['seconds'] / w['seconds']:6.2f} {w['peak_rss_mb']:8.0f} {b['peak_rss_mb']:8.0f} "
              f"{w['nuclei']:>5}/{b['nuclei']:<5} {ap:7.3f}", flush=True)
        shutil.rmtree(volume, ignore_errors=True)


def part_cluster(work: Path, shape: tuple[int, int, int]) -> None:
    from distributed import LocalCluster

    global BLOCK_VOXELS
    print(f"\n== cluster: local scheduler against two worker processes (shipped network, {shape}) ==")
    volume = _tile_volume(work / "c.zarr", shape, seed=4)
    saved = BLOCK_VOXELS
    BLOCK_VOXELS = max(4096, int(np.prod(shape) * 0.4))
    local = _run_child(volume, "blockwise", None, work)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = _run_child(volume, "blockwise", None, work, scheduler=cluster.scheduler_address)
    BLOCK_VOXELS = saved
    for name, r in (("local", local), ("2 workers", remote)):
        print(f"{name:>10}: " + (f"error: {r['error']}" if "error" in r else
                                 f"{r['blocks']} blocks, {r['seconds']:.1f} s, "
                                 f"client peak RSS {r['peak_rss_mb']:.0f} MB"))
    if "error" not in local and "error" not in remote:
        print(f"speed-up with 2 workers: {local['seconds'] / remote['seconds']:.2f}x")


def main() -> None:
    global BLOCK_VOXELS, BACKEND
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["all", "memory", "quality", "cluster"])
    parser.add_argument("--sizes", default=MEMORY_SIZES, help="memory part: ZxYxX,...")
    parser.add_argument("--quality-sizes", default="16x256x256,32x384x384")
    parser.add_argument("--cluster-size", default="16x384x384")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--volume"), parser.add_argument("--mode"), parser.add_argument("--work")
    parser.add_argument("--model"), parser.add_argument("--save"), parser.add_argument("--scheduler")
    parser.add_argument("--cellprob", type=float, default=0.0)
    parser.add_argument("--block-voxels", type=int, default=BLOCK_VOXELS,
                        help="memory part: largest block (the quality and cluster parts cut theirs in four)")
    parser.add_argument("--whole-max", type=int, default=WHOLE_MAX_VOXELS,
                        help="memory part: whole-volume runs only up to this many voxels")
    parser.add_argument("--backend", default=BACKEND, help="memory part: the 3D backend (default true3d)")
    parser.add_argument("--engine", default="network", choices=["network", "standin"],
                        help="memory part: the tiny network, or a stand-in without one (thresholded blobs, the "
                             "engine's arrays): the only way to reach 1 Gvoxel on a few CPU cores")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    BLOCK_VOXELS, BACKEND = args.block_voxels, args.backend
    work = Path(tempfile.mkdtemp(prefix="bench-blockwise-"))
    try:
        print(f"machine: {os.cpu_count()} CPUs; blocks of {BLOCK_VOXELS} voxels")
        if args.part in ("all", "memory"):
            part_memory(work, [_shape(s) for s in args.sizes.split(",")], args.whole_max, args.engine)
        if args.part in ("all", "quality"):
            part_quality(work, [_shape(s) for s in args.quality_sizes.split(",")])
        if args.part in ("all", "cluster"):
            part_cluster(work, _shape(args.cluster_size))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
