"""Speed of the engine: seconds per megapixel (2D), seconds per volume per backend, and the
overhead of the engine over a bare ``CellposeModel.eval`` on the same input.

The overhead is a ratio measured in one run (best of --repeats for each side, alternating), so
machine noise cancels; the target is at most 5 %.

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


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    engine = SegmentationEngine()
    model = load_model(None)
    cp = model.cellpose_model
    print(f"model {model.name} {model.version}, torch threads {__import__('torch').get_num_threads()}")

    print("\n2D: engine vs bare cellpose eval (diameter given)")
    print(f"{'shape':>11s} {'engine s':>9s} {'bare s':>8s} {'overhead':>9s} {'s/Mpx':>7s}")
    for size in (512, 1024):
        img = generate_2d(shape=(size, size), seed=size, diameter=20).image
        engine.segment_cellpose(img, diameter=20)  # warm-up (numba, allocator)
        t_engine, t_bare = [], []
        for _ in range(args.repeats):
            t_engine.append(best_of(lambda: engine.segment_cellpose(img, diameter=20), 1))
            t_bare.append(best_of(lambda: cp.eval(img, channels=[0, 0], diameter=20), 1))
        e, b = min(t_engine), min(t_bare)
        print(f"{size:5d}x{size:<5d} {e:9.2f} {b:8.2f} {100 * (e / b - 1):8.1f}% {e / (size * size / 1e6):7.2f}")

    print("\n3D: seconds per volume (diameter given), and slice backend vs bare eval of the stack")
    vol = generate_3d(shape=(32, 256, 256), seed=3, voxel_size=(2.0, 0.5, 0.5), diameter=20)
    for backend in ("slice", "hybrid2d3d", "true3d"):
        reps = 1 if backend == "true3d" else args.repeats
        t = best_of(lambda: engine.segment_cellpose(vol.image, diameter=20, do_3d=True, use_3d_backend=backend,
                                                    voxel_size=vol.voxel_size), reps)
        print(f"{backend:11s} 32x256x256: {t:7.2f} s  ({t / (32 * 256 * 256 / 1e6):.2f} s/Mvoxel)")
    t_engine = best_of(lambda: engine.segment_cellpose(vol.image, diameter=20, do_3d=True, use_3d_backend="slice"),
                       args.repeats)
    t_bare = best_of(lambda: cp.eval(vol.image, channels=[0, 0], diameter=20, z_axis=0, do_3D=False), args.repeats)
    print(f"slice backend vs bare eval of the stack: {t_engine:.2f} s vs {t_bare:.2f} s, "
          f"overhead {100 * (t_engine / t_bare - 1):.1f}%")
    t_engine = best_of(lambda: engine.segment_cellpose(vol.image, diameter=20, do_3d=True, use_3d_backend="true3d",
                                                       voxel_size=vol.voxel_size), 1)
    t_bare = best_of(lambda: cp.eval(vol.image, channels=[0, 0], diameter=20, z_axis=0, do_3D=True, anisotropy=4.0), 1)
    print(f"true3d backend vs bare 3D eval: {t_engine:.2f} s vs {t_bare:.2f} s, "
          f"overhead {100 * (t_engine / t_bare - 1):.1f}%")



if __name__ == "__main__":
    main()
