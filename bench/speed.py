"""Speed of the engine: seconds per megapixel (2D), seconds per volume per backend, and the
overhead of the engine over a bare ``CellposeModel.eval`` on the same input.

Each figure is the best of --repeats runs, given both as wall time and as the CPU time of this
process (``time.process_time``, all threads): on a shared machine the CPU time is the steadier
of the two. The overhead is a ratio taken in the same run, engine and bare eval alternating, so
machine noise mostly cancels; the target is at most 5 %.

    python bench/speed.py [--repeats 3]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from segmentation.core.engine import SegmentationEngine  # noqa: E402
from segmentation.core.modelzoo import load_model  # noqa: E402
from segmentation.core.synthetic import generate_2d, generate_3d  # noqa: E402


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(engine_fn, bare_fn, repeats):
    """Best (wall, cpu) of each side, alternating the two."""
    e, b = [], []
    for _ in range(repeats):
        e.append(timed(engine_fn))
        b.append(timed(bare_fn))
    return min(e), min(b)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    engine = SegmentationEngine()
    model = load_model(None)
    cp = model.cellpose_model
    print(f"model {model.name} {model.version}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")

    print("\n2D: engine vs bare cellpose eval (diameter 20 given)")
    print(f"{'shape':>11s} {'engine wall/cpu s':>18s} {'bare wall/cpu s':>16s} {'overhead wall/cpu':>18s} "
          f"{'cpu s/Mpx':>9s}")
    for size in (512, 1024):
        img = generate_2d(shape=(size, size), seed=size, diameter=20).image
        engine.segment_cellpose(img, diameter=20)  # warm-up (numba, allocator)
        (ew, ec), (bw, bc) = compare(lambda img=img: engine.segment_cellpose(img, diameter=20),
                                     lambda img=img: cp.eval(img, channels=[0, 0], diameter=20), args.repeats)
        print(f"{size:5d}x{size:<5d} {ew:9.2f}/{ec:<8.2f} {bw:8.2f}/{bc:<7.2f} {100 * (ew / bw - 1):8.1f}%/"
              f"{100 * (ec / bc - 1):<+7.1f}% {ec / (size * size / 1e6):9.2f}")

    vol = generate_3d(shape=(32, 256, 256), seed=3, voxel_size=(2.0, 0.5, 0.5), diameter=20)
    mvox = vol.image.size / 1e6
    print(f"\n3D: one volume 32x256x256 ({mvox:.1f} Mvoxel), diameter given")
    print(f"{'backend':11s} {'wall s':>8s} {'cpu s':>8s} {'cpu s/Mvoxel':>13s}")
    for backend in ("slice", "hybrid2d3d", "true3d"):
        reps = 1 if backend == "true3d" else args.repeats
        wall, cpu = min(timed(lambda backend=backend: engine.segment_cellpose(
                            vol.image, diameter=20, do_3d=True, use_3d_backend=backend, voxel_size=vol.voxel_size))
                        for _ in range(reps))
        print(f"{backend:11s} {wall:8.2f} {cpu:8.2f} {cpu / mvox:13.2f}")

    (ew, ec), (bw, bc) = compare(
        lambda: engine.segment_cellpose(vol.image, diameter=20, do_3d=True, use_3d_backend="slice"),
        lambda: cp.eval(vol.image, channels=[0, 0], diameter=20, z_axis=0, do_3D=False), args.repeats)
    print(f"\nslice backend vs bare eval of the stack: wall {ew:.2f} vs {bw:.2f} s ({100 * (ew / bw - 1):+.1f}%), "
          f"cpu {ec:.2f} vs {bc:.2f} s ({100 * (ec / bc - 1):+.1f}%)")
    (ew, ec), (bw, bc) = compare(
        lambda: engine.segment_cellpose(vol.image, diameter=20, do_3d=True, use_3d_backend="true3d",
                                        voxel_size=vol.voxel_size),
        lambda: cp.eval(vol.image, channels=[0, 0], diameter=20, z_axis=0, do_3D=True, anisotropy=4.0), 1)
    print(f"true3d backend vs bare 3D eval:          wall {ew:.2f} vs {bw:.2f} s ({100 * (ew / bw - 1):+.1f}%), "
          f"cpu {ec:.2f} vs {bc:.2f} s ({100 * (ec / bc - 1):+.1f}%)")


if __name__ == "__main__":
    main()
