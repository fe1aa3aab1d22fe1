"""AP of the default model on generated held-out 2D images and 3D volumes.

Held-out means seeds the training command never uses (it draws from seeds 0 and 1000).
Prints AP@0.5 and AP@0.75 (tp / (tp + fp + fn), counts pooled over images) per condition, for
each model named (on the very same images, so models compare without noise between runs).
``bench/volumetric.py`` measures the 3D backends in depth.

    python bench/default_model.py [--n 24] [--models ezq_nuclei_v1,ezq_nuclei_v2]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from segmentation.core.engine import SegmentationEngine  # noqa: E402
from segmentation.core.metrics import average_precision  # noqa: E402
from segmentation.core.synthetic import generate_2d, generate_3d  # noqa: E402

CONDITIONS_2D = {
    "typical (drawn like training)": {},
    "noisy (8 photons)": {"photons": 8.0},
    "blurred (sigma 2.5 px)": {"blur_sigma": 2.5},
    "small nuclei (10 px)": {"diameter": 10.0},
    "large nuclei (40 px)": {"diameter": 40.0},
}


def _ap(gts, preds):
    r = average_precision(gts, preds, thresholds=(0.5, 0.75))
    return r.ap[0], r.ap[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=24, help="images per 2D condition")
    parser.add_argument("--n3d", type=int, default=4, help="volumes per 3D backend")
    parser.add_argument("--models", default="", help="comma-separated model names (default: the shipped default)")
    parser.add_argument("--skip-3d", action="store_true")
    args = parser.parse_args()
    engine = SegmentationEngine()
    models = [m for m in args.models.split(",") if m] or [None]
    print(f"{'2D condition':34s} {'model':14s} {'n':>3s} {'AP@0.5':>7s} {'AP@0.75':>8s}  diameter  s/image")
    for k, (name, kwargs) in enumerate(CONDITIONS_2D.items()):
        samples = [generate_2d(shape=(256, 256), seed=50_000 + 100 * k + i, **kwargs) for i in range(args.n)]
        for estimated in (False, True):
            for model in models:
                preds = []
                t = time.perf_counter()
                for s in samples:
                    d = None if estimated else s.params["median_diameter"]
                    masks, info = engine.segment_cellpose(s.image, model_name=model, diameter=d)
                    preds.append(masks)
                ap50, ap75 = _ap([s.labels for s in samples], preds)
                how = "estimated" if estimated else "given"
                print(f"{name:34s} {info['model']['name']:14s} {args.n:3d} {ap50:7.3f} {ap75:8.3f}  {how:9s} "
                      f"{(time.perf_counter() - t) / args.n:6.2f}", flush=True)
    if args.skip_3d:
        return
    print()
    print('3D volumes 24x192x192, voxel 2.0 x 0.5 x 0.5 um, ground truth in 3D')
    print(f"{'backend':12s} {'n':>3s} {'AP@0.5':>7s} {'AP@0.75':>8s} s/volume")
    vols = [generate_3d(shape=(24, 192, 192), seed=60_000 + i, voxel_size=(2.0, 0.5, 0.5)) for i in range(args.n3d)]
    runs = {
        "slice": {"use_3d_backend": "slice"},
        "hybrid2d3d": {"use_3d_backend": "hybrid2d3d"},
        "hybrid (ios)": {"use_3d_backend": "hybrid2d3d", "overlap_measure": "intersection_over_smaller",
                         "min_overlap_ratio": 0.7},
        "true3d": {"use_3d_backend": "true3d"},
    }
    for name, options in runs.items():
        preds = []
        t = time.perf_counter()
        for v in vols:
            masks, _ = engine.segment_cellpose(v.image, diameter=v.params["median_diameter"], do_3d=True,
                                               voxel_size=v.voxel_size, **options)
            preds.append(masks)
        ap50, ap75 = _ap([v.labels for v in vols], preds)
        print(f"{name:12s} {len(vols):3d} {ap50:7.3f} {ap75:8.3f} {(time.perf_counter() - t) / len(vols):7.1f}")
    print("hybrid (ios): linking by intersection over the smaller section >= 0.7 instead of IoU >= 0.3")


if __name__ == "__main__":
    main()
