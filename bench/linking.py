"""Linking 2D slice masks into 3D nuclei: ``link_slices`` (Hungarian, gap bridging) against
``cellpose.utils.stitch3D`` (greedy best match between adjacent slices only).

Per-slice 2D masks come from one of two sources:

``perturbed`` (default)
    The ground truth of a generated volume, cut into slices (each slice's connected pieces of
    each nucleus become 2D objects) and damaged the way a 2D model errs: 2D objects missed on
    some slices (gaps), outlines grown or shrunk, a few cut in two, ids shuffled per slice.
``model``
    The engine's ``"slice"`` backend run on the generated image (needs the shipped model).

Both linkers get the same masks, numbered 1..n on each slice (what stitch3D expects; it
modifies its input, so it gets a copy, made outside the timing). ``link_slices`` runs twice:
with the guide's IoU criterion at the same threshold as stitch3D, and with
``overlap_measure="intersection_over_smaller"`` at --ios-threshold. Reported: AP at IoU 0.5 and
0.75 against the 3D ground truth, split and merge errors
(:func:`segmentation.core.metrics.compute_split_merge_errors`), the number of 3D objects, and
the time of each linker (best of --repeats).

    python bench/linking.py [--source perturbed|model [--model NAME]] [--seeds 3] [--shape 64 256 256]
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label as connected_components
from skimage.segmentation import relabel_sequential

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from segmentation.core.linking import link_slices  # noqa: E402
from segmentation.core.metrics import average_precision, compute_split_merge_errors  # noqa: E402
from segmentation.core.synthetic import generate_3d  # noqa: E402


def relabel_per_slice(stack):
    """Number the 2D objects of every slice 1..n, keeping their order (stitch3D's input)."""
    out = np.zeros(stack.shape, np.int32)
    for z in range(stack.shape[0]):
        out[z] = relabel_sequential(stack[z])[0]
    return out


def perturbed_slices(gt, seed, p_drop=0.1, p_grow=0.15, p_shrink=0.15, p_cut=0.03):
    """Per-slice 2D masks made from the 3D ground truth ``gt`` by typical 2D-model errors."""
    rng = np.random.default_rng(seed)
    out = np.zeros(gt.shape, np.int32)
    ys, xs = np.indices(gt.shape[1:])
    for z in range(gt.shape[0]):
        plane = connected_components(gt[z], background=0, connectivity=1)  # equal values = one region
        ids = np.unique(plane)[1:]
        fate = rng.random(ids.size)
        drop = ids[fate < p_drop]
        grow = ids[(fate >= p_drop) & (fate < p_drop + p_grow)]
        shrink = ids[(fate >= p_drop + p_grow) & (fate < p_drop + p_grow + p_shrink)]
        cut = ids[(fate >= 1 - p_cut)]
        plane[np.isin(plane, drop)] = 0
        eroded = ndi.grey_erosion(plane, size=3)
        plane = np.where(np.isin(plane, shrink) & (eroded != plane), 0, plane)
        grown = ndi.grey_dilation(plane, size=3)
        plane = np.where((plane == 0) & np.isin(grown, grow), grown, plane)
        top = plane.max()
        for k, i in enumerate(cut):  # cut in two along a random line through the centroid
            inside = plane == i
            if inside.sum() < 8:
                continue
            angle = rng.uniform(0, np.pi)
            side = (ys - ys[inside].mean()) * np.cos(angle) + (xs - xs[inside].mean()) * np.sin(angle) > 0
            plane[inside & side] = top + 1 + k
        # Shuffle the ids, as an independent 2D model would number its objects.
        ids = np.unique(plane)[1:]
        lut = np.zeros(plane.max() + 1, np.int32)
        lut[ids] = rng.permutation(ids.size) + 1
        out[z] = lut[plane]
    return out


def model_slices(volume, voxel_size, model_name):
    from segmentation.core.engine import SegmentationEngine  # heavy (torch): only for this source

    masks, _ = SegmentationEngine().segment_cellpose(volume, model_name=model_name, do_3d=True,
                                                     use_3d_backend="slice", voxel_size=voxel_size)
    return masks


def best_of(fn, repeats, prepare=lambda: None):
    times, result = [], None
    for _ in range(repeats):
        arg = prepare()
        t = time.perf_counter()
        result = fn(arg)
        times.append(time.perf_counter() - t)
    return min(times), result


def evaluate(gt, linked):
    res = average_precision(gt, linked, (0.5, 0.75))
    splits, merges = compute_split_merge_errors(linked, gt)
    return res.ap[0], res.ap[1], splits, merges, len(np.unique(linked)) - 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", choices=("perturbed", "model"), default="perturbed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 256, 256))
    parser.add_argument("--voxel-size", type=float, nargs=3, default=(2.0, 0.5, 0.5))
    parser.add_argument("--diameter", type=float, default=20.0, help="median nucleus diameter in xy pixels")
    parser.add_argument("--threshold", type=float, default=0.3, help="min IoU for both linkers")
    parser.add_argument("--ios-threshold", type=float, default=0.7,
                        help="min intersection over the smaller object, for the second link_slices run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None,
                        help="engine model name or path (--source model); default model if omitted")
    args = parser.parse_args()
    from cellpose.utils import stitch3D  # heavy (torch): imported only here

    stitch3D(np.ones((2, 4, 4), np.int32))  # compile cellpose's numba overlap before timing it

    print(f"source {args.source}, volume {tuple(args.shape)}, voxel size {tuple(args.voxel_size)} um, "
          f"IoU threshold {args.threshold}, link_slices max_distance_z 2, times best of {args.repeats}")
    header = f"{'seed':>4s} {'linker':12s} {'AP@0.5':>7s} {'AP@0.75':>7s} {'splits':>6s} {'merges':>6s} " \
             f"{'objects':>7s} {'time ms':>8s}"
    print(header)
    linkers = {
        "link_slices": lambda s: link_slices(s, min_overlap_ratio=args.threshold, max_distance_z=2),
        "link/ios": lambda s: link_slices(s, min_overlap_ratio=args.ios_threshold, max_distance_z=2,
                                          overlap_measure="intersection_over_smaller"),
        "stitch3D": lambda s: stitch3D(s, stitch_threshold=args.threshold),
    }
    totals = {name: [] for name in linkers}
    for seed in range(args.seeds):
        sample = generate_3d(shape=tuple(args.shape), seed=seed, voxel_size=tuple(args.voxel_size),
                             diameter=args.diameter)
        gt = sample.labels
        if args.source == "perturbed":
            slices = perturbed_slices(gt, seed=100 + seed)
        else:
            slices = model_slices(sample.image, tuple(args.voxel_size), args.model)
        slices = relabel_per_slice(slices)
        print(f"{seed:4d} {'GT':12s} {'':7s} {'':7s} {'':6s} {'':6s} {len(np.unique(gt)) - 1:7d}")
        for name, fn in linkers.items():
            t, linked = best_of(fn, args.repeats, prepare=lambda s=slices: s.copy())
            row = evaluate(gt, linked)
            totals[name].append((*row, t))
            print(f"{seed:4d} {name:12s} {row[0]:7.3f} {row[1]:7.3f} {row[2]:6d} {row[3]:6d} {row[4]:7d} "
                  f"{1e3 * t:8.1f}")
    print("\nmean over seeds")
    for name, rows in totals.items():
        m = np.mean(np.array(rows, float), axis=0)
        print(f"{'':4s} {name:12s} {m[0]:7.3f} {m[1]:7.3f} {m[2]:6.1f} {m[3]:6.1f} {m[4]:7.1f} {1e3 * m[5]:8.1f}")
    ratio = np.mean([r[5] for r in totals["link_slices"]]) / np.mean([r[5] for r in totals["stitch3D"]])
    print(f"time ratio link_slices / stitch3D: {ratio:.2f}")

    # Speed at the size the engine meets: 64 slices of 512 x 512, ~100 nuclei per slice.
    big = generate_3d(shape=(64, 512, 512), seed=99, voxel_size=tuple(args.voxel_size), diameter=args.diameter)
    big_slices = relabel_per_slice(perturbed_slices(big.labels, seed=99))
    per_slice = np.mean([len(np.unique(p)) - 1 for p in big_slices])
    t_ours, _ = best_of(lambda s: link_slices(s, min_overlap_ratio=args.threshold), args.repeats,
                        prepare=lambda: big_slices)
    t_cp, _ = best_of(lambda s: stitch3D(s, stitch_threshold=args.threshold), args.repeats,
                      prepare=lambda: big_slices.copy())
    print(f"\n64x512x512, {per_slice:.0f} objects per slice: link_slices {t_ours:.2f} s, stitch3D {t_cp:.2f} s")


if __name__ == "__main__":
    main()
