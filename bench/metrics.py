"""Agreement and speed of ``segmentation.core.metrics.average_precision`` against
``cellpose.metrics.average_precision`` on the same generated label images.

Ground truth comes from the nuclei generator (``segmentation.core.synthetic``); predictions are
made from it by realistic damage (shift, grown or shrunk outlines, missed nuclei, cut nuclei,
merged neighbours, spurious blobs). Both sides see contiguous ids, which cellpose needs (it
counts instances by the largest id). Times are best of --repeats, alternating the two sides.

    python bench/metrics.py [--images 20] [--repeats 5]
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels, relabel_sequential

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from segmentation.core.metrics import average_precision  # noqa: E402
from segmentation.core.synthetic import generate_2d, generate_3d  # noqa: E402

THRESHOLDS = [0.5, 0.75, 0.9]


def damage(labels, seed):
    """A plausible prediction from ground truth ``labels`` (2D or 3D), ids 1..n."""
    rng = np.random.default_rng(seed)
    pred = labels.astype(np.int64)
    ids = np.unique(pred)[1:]
    # Shift by a pixel in the plane.
    pred = np.roll(pred, tuple(rng.integers(-1, 2, 2)), axis=(-2, -1))
    # Grow every outline by one pixel, then shrink a third of the nuclei back by two.
    pred = expand_labels(pred, 1)
    shrink = rng.choice(ids, ids.size // 3, replace=False)
    eroded = ndi.grey_erosion(pred, size=(3,) * pred.ndim)
    pred = np.where(np.isin(pred, shrink) & (eroded != pred), 0, pred)
    # Miss 5 % of the nuclei.
    pred[np.isin(pred, rng.choice(ids, ids.size // 20, replace=False))] = 0
    # Cut 5 % in two along x.
    cut = rng.choice(ids, ids.size // 20, replace=False)
    xs = np.indices(pred.shape)[-1]
    for i in cut:
        inside = pred == i
        if not inside.any():  # already missed
            continue
        mid = np.median(xs[inside])
        pred[inside & (xs > mid)] = pred.max() + 1
    # Merge 5 % with a touching neighbour (grow them into it).
    for i in rng.choice(ids, ids.size // 20, replace=False):
        ring = ndi.binary_dilation(pred == i) & (pred > 0) & (pred != i)
        if ring.any():
            pred[pred == np.bincount(pred[ring]).argmax()] = i
    # A few spurious blobs.
    spots = np.zeros(pred.shape, np.int64)
    n_fp = max(1, ids.size // 50)
    spots[tuple(rng.integers(0, s, n_fp) for s in pred.shape)] = np.arange(pred.max() + 1, pred.max() + 1 + n_fp)
    spots = expand_labels(spots, 3)
    pred = np.where(pred == 0, spots, pred)
    return relabel_sequential(pred)[0].astype(np.int32)


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def compare(name, gts, preds, repeats, cp_metrics):
    ours = [average_precision(g, p, THRESHOLDS) for g, p in zip(gts, preds, strict=True)]
    ap, tp, fp, fn = cp_metrics.average_precision(list(gts), list(preds), threshold=THRESHOLDS)
    diff = {
        "ap": max(np.abs(r.ap - ap[k]).max() for k, r in enumerate(ours)),
        "tp": max(np.abs(r.tp - tp[k]).max() for k, r in enumerate(ours)),
        "fp": max(np.abs(r.fp - fp[k]).max() for k, r in enumerate(ours)),
        "fn": max(np.abs(r.fn - fn[k]).max() for k, r in enumerate(ours)),
    }
    t_ours, t_cp = [], []
    for _ in range(repeats):  # alternate so drifting machine load hits both sides alike
        t_ours.append(best_of(
            lambda: [average_precision(g, p, THRESHOLDS) for g, p in zip(gts, preds, strict=True)], 1))
        t_cp.append(best_of(lambda: cp_metrics.average_precision(list(gts), list(preds), threshold=THRESHOLDS), 1))
    total = average_precision(list(gts), list(preds), THRESHOLDS)
    n_obj = int(np.mean([g.max() for g in gts]))
    print(
        f"{name:28s} {n_obj:6d} {diff['ap']:8.1e} {diff['tp']:4.0f} {diff['fp']:4.0f} {diff['fn']:4.0f} "
        f"{1e3 * min(t_ours):9.1f} {1e3 * min(t_cp):9.1f} {min(t_ours) / min(t_cp):6.2f}   "
        + " ".join(f"{a:.3f}" for a in total.ap)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from cellpose import metrics as cp_metrics  # heavy (torch, numba): imported only here

    print(f"generating {args.images} 2D images 512x512 and one 3D volume 64x256x256 ...", flush=True)
    gts_2d = [generate_2d(shape=(512, 512), seed=s, diameter=20).labels.astype(np.int32) for s in range(args.images)]
    preds_2d = [damage(g, seed=1000 + k) for k, g in enumerate(gts_2d)]
    gt_3d = generate_3d(shape=(64, 256, 256), seed=7, voxel_size=(1.0, 0.5, 0.5), diameter=16).labels.astype(np.int32)
    pred_3d = damage(gt_3d, seed=77)
    cp_metrics.average_precision(gts_2d[0], preds_2d[0], threshold=THRESHOLDS)  # numba JIT warm-up

    print(f"\nthresholds {THRESHOLDS}; max |ours - cellpose| over images x thresholds; times best of {args.repeats}")
    print(f"{'case':28s} {'n_obj':>6s} {'d_AP':>8s} {'d_tp':>4s} {'d_fp':>4s} {'d_fn':>4s} "
          f"{'ours ms':>9s} {'cp ms':>9s} {'ratio':>6s}   AP (ours, summed over images)")
    compare(f"2D 512x512 x {args.images}", gts_2d, preds_2d, args.repeats, cp_metrics)
    compare("3D 64x256x256 x 1", [gt_3d], [pred_3d], args.repeats, cp_metrics)

    # Why ids matter: cellpose counts instances by the largest id.
    g, p = gts_2d[0], preds_2d[0]
    scattered = np.where(p > 0, p.astype(np.int64) * 100 + 7, 0)
    ours = average_precision(g, scattered, THRESHOLDS).ap
    theirs = cp_metrics.average_precision(g, scattered, threshold=THRESHOLDS)[0]
    before = average_precision(g, p, THRESHOLDS).ap
    print(f"\nimage 0 with prediction ids multiplied by 100 (+7): ours AP {np.round(ours, 3).tolist()} "
          f"(before: {np.round(before, 3).tolist()}), cellpose AP {[round(float(x), 3) for x in theirs]}")


if __name__ == "__main__":
    main()
