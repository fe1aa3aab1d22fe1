"""How well ``auto`` restoration decides, and whether restoring helps segmentation.

Part 1: the ``auto`` decision (``should_use_restoration``) on generated images of three kinds,
with nucleus diameters 10-40 px (log-uniform), the generator's range of densities, textures and
backgrounds, and image sizes 128-384 px:

* clean:   peak photons 150-2000, Gaussian blur sigma 0.5-1.5 px;
* noisy:   peak photons 2-10 (half drawn so by the generator, half by ``degrade(..., "noise")``
  of a clean image at strength 0.8-1);
* blurred: peak photons 150-2000, blur sigma 3-5 px (half by the generator, half by
  ``degrade(..., "blur")`` at strength 0.7-1, i.e. a 3-4 px Gaussian on top of the image's own).

Prints the confusion matrix, accuracy, per-class counts, the metric ranges per class, the
share of images restored as photons fall and blur grows (where the thresholds fall), and the
time per decision and per restoration.

Part 2 (needs the default model): AP@0.5 and AP@0.75 of ``SegmentationEngine.segment_cellpose``
on noisy and on blurred images, with ``restoration_mode`` "none", "auto" and the matching
explicit mode, against the generator's ground truth; diameter given.

    python bench/restoration.py [--n 30] [--n-ap 12] [--skip-ap]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from segmentation.core.restoration import (  # noqa: E402
    DEBLUR_MIN_BLUR_SIGMA,
    DENOISE_MAX_ROBUST_SNR,
    measure_image_quality,
    restore,
    should_use_restoration,
)
from segmentation.core.synthetic import degrade, generate_2d  # noqa: E402

CLASSES = {"clean": "none", "noisy": "denoise", "blurred": "deblur"}
DECISIONS = ("none", "denoise", "deblur")
SEED_BASE = 700_000  # far from the seeds the training set and other benches use


def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def make_image(kind: str, i: int):
    """One generated image of ``kind`` (clean, noisy, blurred): (image, labels, description)."""
    rng = np.random.default_rng((SEED_BASE, list(CLASSES).index(kind), i))
    size = int(rng.choice([128, 192, 256, 384]))
    diameter = _log_uniform(rng, 10, 40)
    seed = (SEED_BASE, list(CLASSES).index(kind), i, 1)
    clean_kwargs = dict(shape=(size, size), seed=seed, diameter=diameter,
                        photons=_log_uniform(rng, 150, 2000), blur_sigma=float(rng.uniform(0.5, 1.5)))
    via_degrade = i % 2 == 1
    if kind == "clean":
        s = generate_2d(**clean_kwargs)
        return s.image, s.labels, (f"d={diameter:.0f} photons={clean_kwargs['photons']:.0f} "
                                   f"blur={clean_kwargs['blur_sigma']:.1f}")
    if kind == "noisy":
        if via_degrade:
            s = generate_2d(**clean_kwargs)
            strength = float(rng.uniform(0.8, 1.0))
            return (degrade(s.image, "noise", strength, seed=seed), s.labels,
                    f"d={diameter:.0f} degrade(noise, {strength:.2f})")
        photons = _log_uniform(rng, 2, 10)
        s = generate_2d(**{**clean_kwargs, "photons": photons})
        return s.image, s.labels, f"d={diameter:.0f} photons={photons:.1f}"
    if via_degrade:
        s = generate_2d(**clean_kwargs)
        strength = float(rng.uniform(0.7, 1.0))
        return (degrade(s.image, "blur", strength, seed=seed), s.labels,
                f"d={diameter:.0f} degrade(blur, {strength:.2f})")
    blur = float(rng.uniform(3.0, 5.0))
    s = generate_2d(**{**clean_kwargs, "blur_sigma": blur})
    return s.image, s.labels, f"d={diameter:.0f} blur={blur:.1f}"


def decision_bench(n: int) -> None:
    print(f"Part 1: auto decision on {n} generated images per class "
          f"(denoise if robust_snr < {DENOISE_MAX_ROBUST_SNR:g}, "
          f"else deblur if blur_sigma > {DEBLUR_MIN_BLUR_SIGMA:g} px)")
    confusion = {c: {d: 0 for d in DECISIONS} for c in CLASSES}
    ranges = {c: {"robust_snr": [], "blur_sigma": [], "snr": [], "blur_score": []} for c in CLASSES}
    wrong = []
    t_measure = 0.0
    for kind in CLASSES:
        for i in range(n):
            image, _, desc = make_image(kind, i)
            t = time.perf_counter()
            metrics = measure_image_quality(image)
            decision = should_use_restoration(image)
            t_measure += (time.perf_counter() - t) / 2
            confusion[kind][decision] += 1
            for key in ranges[kind]:
                ranges[kind][key].append(metrics[key])
            if decision != CLASSES[kind]:
                wrong.append(f"  {kind:8s} -> {decision:8s} {desc}: robust_snr {metrics['robust_snr']:.1f}, "
                             f"blur_sigma {metrics['blur_sigma']:.2f}")
    print()
    print(f"{'true class':12s} {'expected':9s}" + "".join(f"{d:>9s}" for d in DECISIONS) + f"{'correct':>10s}")
    total_ok = 0
    for kind, expected in CLASSES.items():
        row = confusion[kind]
        ok = row[expected]
        total_ok += ok
        print(f"{kind:12s} {expected:9s}" + "".join(f"{row[d]:9d}" for d in DECISIONS) + f"{ok:6d}/{n:<3d}")
    print(f"\naccuracy {total_ok}/{3 * n} = {total_ok / (3 * n):.1%}   "
          f"({t_measure / (3 * n) * 1000:.0f} ms per decision, images 128-384 px)")
    if wrong:
        print("misclassified:")
        print("\n".join(wrong))
    print("\nmetric ranges per class (min / median / max):")
    for kind in CLASSES:
        parts = []
        for key, values in ranges[kind].items():
            v = np.asarray(values)
            parts.append(f"{key} {v.min():.3g}/{np.median(v):.3g}/{v.max():.3g}")
        print(f"  {kind:8s} " + "; ".join(parts))
    naive = {kind: sum((np.asarray(ranges[kind]["snr"]) < 10) | (np.asarray(ranges[kind]["blur_score"]) > 0.1))
             for kind in CLASSES}
    print("the guide's naive rule (restore if snr < 10 or blur_score > 0.1) would restore: "
          + ", ".join(f"{k} {v}/{n}" for k, v in naive.items()))


def threshold_sweep(n: int) -> None:
    """Where the thresholds fall: the share of images auto restores, by photons and by blur."""
    print(f"\nwhere the thresholds fall ({n} images per value, diameters 10-40 px, 192x192):")
    cells = []
    for photons in (4, 8, 12, 16, 24, 32, 48, 100):
        count = snr = 0.0
        for i in range(n):
            rng = np.random.default_rng((SEED_BASE, 5, int(photons), i))
            s = generate_2d(shape=(192, 192), seed=(SEED_BASE, 6, int(photons), i), diameter=_log_uniform(rng, 10, 40),
                            photons=photons, blur_sigma=float(rng.uniform(0.5, 1.5)))
            m = measure_image_quality(s.image)
            count += m["robust_snr"] < DENOISE_MAX_ROBUST_SNR
            snr += np.log(m["robust_snr"]) / n
        cells.append(f"{photons:g}: {count / n:4.0%} (snr {np.exp(snr):.0f})")
    print("  denoised, by peak photons (blur 0.5-1.5 px; geometric mean robust_snr):\n    " + ", ".join(cells))
    cells = []
    for blur in (1.0, 1.5, 2.0, 2.5, 3.0, 3.5):
        count = est = 0.0
        for i in range(n):
            rng = np.random.default_rng((SEED_BASE, 7, int(blur * 10), i))
            s = generate_2d(shape=(192, 192), seed=(SEED_BASE, 8, int(blur * 10), i),
                            diameter=_log_uniform(rng, 10, 40), photons=_log_uniform(rng, 150, 2000),
                            blur_sigma=blur)
            m = measure_image_quality(s.image)
            count += m["blur_sigma"] > DEBLUR_MIN_BLUR_SIGMA
            est += m["blur_sigma"] / n
        cells.append(f"{blur:g}: {count / n:4.0%} (est {est:.2f})")
    print("  deblurred, by true blur sigma in px (150-2000 photons; mean estimated blur_sigma):\n    "
          + ", ".join(cells))


def restoration_speed() -> None:
    print("\nrestore() time (fallback methods; best of 2):")
    from segmentation.core.synthetic import generate_3d

    images = {"512x512": generate_2d(shape=(512, 512), seed=(SEED_BASE, 9), photons=6, blur_sigma=3.5).image,
              "32x256x256": generate_3d(shape=(32, 256, 256), seed=(SEED_BASE, 9), photons=6, blur_sigma=3.0).image}
    for name, image in images.items():
        for mode in ("denoise", "deblur"):
            times = []
            for _ in range(2):
                t = time.perf_counter()
                _, info = restore(image, mode, use_cellpose=False)
                times.append(time.perf_counter() - t)
            print(f"  {name:11s} {mode:8s} {info['method']:25s} {min(times):6.2f} s")


def ap_bench(n: int) -> None:
    print(f"\nPart 2: AP of the default model with and without restoration ({n} images per condition, 256x256)")
    try:
        from segmentation.core.engine import SegmentationEngine
        from segmentation.core.metrics import average_precision
        from segmentation.core.modelzoo import load_model

        load_model(None)
    except Exception as exc:  # engine, metrics or the default weights not there (yet)
        print(f"  skipped: the segmentation engine or its default model is not available "
              f"({exc.__class__.__name__}: {exc})")
        return
    engine = SegmentationEngine()
    conditions = {
        "noisy (3-8 photons)": ("denoise", lambda rng: {"photons": _log_uniform(rng, 3, 8),
                                                          "blur_sigma": float(rng.uniform(0.7, 1.5))}),
        "blurred (sigma 3-4.5 px)": ("deblur", lambda rng: {"photons": _log_uniform(rng, 200, 2000),
                                                             "blur_sigma": float(rng.uniform(3.0, 4.5))}),
    }
    print(f"  {'condition':26s} {'mode':8s} {'AP@0.5':>7s} {'AP@0.75':>8s} {'applied':>22s} {'s/image':>8s}")
    for c, (name, (explicit, draw)) in enumerate(conditions.items()):
        samples = []
        for i in range(n):
            rng = np.random.default_rng((SEED_BASE, 20 + c, i))
            samples.append(generate_2d(shape=(256, 256), seed=(SEED_BASE, 30 + c, i),
                                       diameter=_log_uniform(rng, 12, 35), **draw(rng)))
        for mode in ("none", "auto", explicit):
            preds, applied = [], {}
            t = time.perf_counter()
            for s in samples:
                masks, info = engine.segment_cellpose(s.image, diameter=s.params["median_diameter"],
                                                      restoration_mode=mode)
                preds.append(masks)
                key = info.get("restoration_mode", "none")
                applied[key] = applied.get(key, 0) + 1
            r = average_precision([s.labels for s in samples], preds, thresholds=(0.5, 0.75))
            how = " ".join(f"{k}:{v}" for k, v in sorted(applied.items()))
            print(f"  {name:26s} {mode:8s} {r.ap[0]:7.3f} {r.ap[1]:8.3f} {how:>22s} "
                  f"{(time.perf_counter() - t) / n:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="images per class for the decision bench")
    parser.add_argument("--n-ap", type=int, default=12, help="images per condition for the AP bench")
    parser.add_argument("--skip-ap", action="store_true", help="only the decision bench and timings")
    args = parser.parse_args()
    decision_bench(args.n)
    threshold_sweep(max(args.n // 3, 4))
    restoration_speed()
    if not args.skip_ap:
        ap_bench(args.n_ap)


if __name__ == "__main__":
    main()
