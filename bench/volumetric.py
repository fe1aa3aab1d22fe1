"""3D segmentation on generated z-stacks: every backend, and Cellpose's own 3D modes, on one network.

For each condition (z step 1x, 2x, 4x the pixel size; typical, crowded, low-photon and
small-nuclei stacks; three hard cases at once; and "full range", every property drawn from the
training data's whole range) a few held-out volumes are generated with their 3D ground
truth (``synthetic.generate_3d``: anisotropic PSF, signal falling with depth, nuclei cut by
every face, stacked nuclei, flickering planes) and segmented by

* ``slice``, ``hybrid2d3d`` and ``true3d``: the engine's backends, as ``manage.py segment``
  runs them with only ``--voxel-size`` given (the diameter is the engine's own estimate, the
  restoration a stack's default, ``DEFAULT_3D_RESTORATION``);
* ``cp-stitch3D``: Cellpose's ``eval`` per plane with ``stitch_threshold=0.25`` (its 2D + stitch);
* ``cp-do_3D``: Cellpose's ``eval(do_3D=True, anisotropy=...)`` with its own normalisation;

both Cellpose modes on the same network and at the diameter the engine estimated. Prints AP@0.5
and AP@0.75 (counts pooled over the volumes), split and merge errors (summed), seconds and peak
memory above the start (resident set, sampled every 5 ms) per volume; then, per method, on how
many conditions it reaches the issue's target (``TARGETS``: 0.85 typical at 1-2x, 0.7 else).

    python bench/volumetric.py [--n 4] [--model NAME] [--only typical,crowded] [--backends hybrid2d3d,true3d]
                               [--set flow3d_smooth=0 --set normalize_planes=false]

``--set NAME=VALUE`` changes one ``SegmentationParams`` field for the engine's backends (and
the diameter estimate), to measure what a default is worth.
"""

import argparse
import json
import os
import sys
import threading
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from segmentation.core.engine import SegmentationEngine  # noqa: E402
from segmentation.core.metrics import average_precision, compute_split_merge_errors  # noqa: E402
from segmentation.core.modelzoo import DEFAULT_MODEL_3D, load_model  # noqa: E402
from segmentation.core.params import DEFAULT_3D_RESTORATION, SegmentationParams  # noqa: E402
from segmentation.core.synthetic import NucleiConfig, generate_3d  # noqa: E402

PIXEL = 0.5
DEPTH_UM = 16.0
# A typical stack: nuclei of 7-18 um (14-36 px), a tissue up to a quarter full, 40-2000 photons;
# with everything every generated stack has (axial PSF 2-4x the lateral one, signal falling with
# depth, nuclei cut by every face, a fifth of them stacked in z, flickering planes). Each hard
# condition changes one thing (or all three at once); "full range" draws every property from the
# whole range the training data is drawn from, small dense and dim nuclei included.
TYPICAL = {"diameter_range": (14.0, 36.0), "volume_density_range": (0.06, 0.25), "photons_range": (40.0, 2000.0)}
CROWDED = {**TYPICAL, "volume_density_range": (0.36, 0.42), "stacked_fraction": 0.4}
LOW_PHOTONS = {**TYPICAL, "photons_range": (6.0, 15.0)}
SMALL = {**TYPICAL, "diameter_range": (9.0, 13.0)}
CONDITIONS = {
    "typical 1x": (1, TYPICAL),
    "typical 2x": (2, TYPICAL),
    "typical 4x": (4, TYPICAL),
    "crowded 2x": (2, CROWDED),
    "crowded 4x": (4, CROWDED),
    "low photons 2x": (2, LOW_PHOTONS),
    "low photons 4x": (4, LOW_PHOTONS),
    "small nuclei 2x": (2, SMALL),
    "crowded+4x+low photons": (4, {**CROWDED, "photons_range": (6.0, 15.0)}),
    "full range 2x": (2, {}),
}
# The targets for the default 3D backend: 0.85 on typical stacks at z steps of 1-2x the
# pixel size, 0.7 on every hard condition (a 4x z step, crowded, low photons, small nuclei).
TARGETS = {c: (0.85 if c in ("typical 1x", "typical 2x") else 0.70) for c in CONDITIONS}
METHODS = ("slice", "hybrid2d3d", "true3d", "cp-stitch3D", "cp-do_3D")


class PeakRSS:
    """Peak resident memory of this process above its level at the start, sampled by a thread."""

    def __init__(self):
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self):
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def __enter__(self):
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mb = (self.peak - self.start) / 2**20


def volumes(condition: str, n: int):
    factor, overrides = CONDITIONS[condition]
    z_step = factor * PIXEL
    nz = int(round(DEPTH_UM / z_step))
    config = NucleiConfig(**overrides)
    offset = 80_000 + 100 * list(CONDITIONS).index(condition)
    return [generate_3d(shape=(nz, 160, 160), seed=offset + i, voxel_size=(z_step, PIXEL, PIXEL), config=config)
            for i in range(n)]


def run_method(method, engine, model, volume, diameter, overrides):
    if method in ("slice", "hybrid2d3d", "true3d"):
        masks, _ = engine.segment_cellpose(volume.image, model_name=model, diameter=diameter, do_3d=True,
                                           use_3d_backend=method, voxel_size=volume.voxel_size, **overrides)
        return masks
    cp = load_model(model).cellpose_model
    anisotropy = volume.voxel_size[0] / volume.voxel_size[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "cp-stitch3D":
            masks, _, _ = cp.eval(volume.image, channels=[0, 0], diameter=diameter, stitch_threshold=0.25)
        else:
            masks, _, _ = cp.eval(volume.image, channels=[0, 0], diameter=diameter, do_3D=True, z_axis=0,
                                  anisotropy=anisotropy)
    return np.asarray(masks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4, help="volumes per condition")
    parser.add_argument("--model", default=None, help="model name (default: the shipped default)")
    parser.add_argument("--only", default="", help="comma-separated condition prefixes")
    parser.add_argument("--backends", default=",".join(METHODS))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a SegmentationParams field for the engine's backends (JSON value)")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name] = json.loads(value)
    overrides.setdefault("restoration_mode", DEFAULT_3D_RESTORATION)  # what a stack gets by default
    args.model = args.model or DEFAULT_MODEL_3D  # what the engine segments a stack with by default
    methods = [m for m in args.backends.split(",") if m]
    conditions = [c for c in CONDITIONS if not args.only or any(c.startswith(p) for p in args.only.split(","))]
    engine = SegmentationEngine()
    model = load_model(args.model)
    print(f"model {model.name} {model.version}; {args.n} volumes per condition, 160x160 px of {PIXEL} um, "
          f"{DEPTH_UM:.0f} um deep; diameter estimated by the engine (only the voxel size given)"
          + (f"; set {overrides}" if overrides else ""))
    print(f"{'condition':24s} {'method':12s} {'nuclei':>6s} {'AP@0.5':>7s} {'AP@0.75':>8s} {'splits':>6s} "
          f"{'merges':>6s} {'s/vol':>6s} {'peak MB':>8s}")
    summary = {}
    for condition in conditions:
        vols = volumes(condition, args.n)
        diameters = []
        for v in vols:
            # The engine's estimate (what every backend finds by itself), made once per volume.
            params = SegmentationParams(model_name=args.model, do_3d=True, voxel_size=v.voxel_size, **overrides)
            diameters.append(engine.estimate_diameter(v.image, params)[0])
        for method in methods:
            preds, seconds, peaks = [], 0.0, []
            for v, d in zip(vols, diameters, strict=True):
                with PeakRSS() as mem:
                    t = time.perf_counter()
                    preds.append(run_method(method, engine, args.model, v, d, overrides))
                    seconds += time.perf_counter() - t
                peaks.append(mem.mb)
            gts = [v.labels for v in vols]
            ap = average_precision(gts, preds, thresholds=(0.5, 0.75)).ap
            splits = merges = 0
            for g, p in zip(gts, preds, strict=True):
                s, m = compute_split_merge_errors(p, g)
                splits, merges = splits + s, merges + m
            n_gt = sum(int(g.max()) for g in gts)
            summary[(condition, method)] = ap[0]
            print(f"{condition:24s} {method:12s} {n_gt:6d} {ap[0]:7.3f} {ap[1]:8.3f} {splits:6d} {merges:6d} "
                  f"{seconds / len(vols):6.1f} {max(peaks):8.0f}", flush=True)
    print()
    for method in methods:
        values = [summary[(c, method)] for c in conditions if (c, method) in summary]
        met = [c for c in conditions if summary[(c, method)] >= TARGETS[c]]
        print(f"{method:12s} mean AP@0.5 over conditions {np.mean(values):.3f}  min {np.min(values):.3f}  "
              f"target met on {len(met)} of {len(conditions)}")
    if "true3d" in methods:
        missed = [f"{c} {summary[(c, 'true3d')]:.2f} < {TARGETS[c]:.2f}" for c in conditions
                  if summary[(c, "true3d")] < TARGETS[c]]
        print("true3d (the default) misses: " + ("; ".join(missed) if missed else "none"))


if __name__ == "__main__":
    main()
