"""Does the uncertainty score find the nuclei the model got wrong?

For generated 2D images segmented by the default model, a predicted nucleus is an *error* when
it matches no true nucleus at IoU >= 0.5 (``match_instances``). The bench prints the AUROC of
the combined score and of each signal for telling errors from correct nuclei (0.5 = chance,
1 = every error ranks above every correct nucleus; target >= 0.75), with a 95% interval from
resampling whole images; the AUROC of a few other weightings, to justify the defaults; how
many errors a person finds by reviewing the top-ranked nuclei; and the time the scoring takes.

Typical generated images give the model almost no errors, so images cycle through five
conditions: typical, noisy (6 photons), blurred (sigma 3 px), dense and irregular, small (9 px).
The true median diameter is given to the model, so the errors are the network's, not the size
estimate's. Seeds start at 80 000, away from training (0, 1000) and the model bench (50 000+).

    python bench/uncertainty.py [--n 20] [--size 256] [--model PATH]

AUROC is the Mann-Whitney statistic: (sum of the ranks of the errors - n1 (n1 + 1) / 2) / (n1 n0),
with tied scores given their average rank.
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from segmentation.core.engine import SegmentationEngine  # noqa: E402
from segmentation.core.metrics import match_instances  # noqa: E402
from segmentation.core.params import SegmentationParams  # noqa: E402
from segmentation.core.synthetic import NucleiConfig, generate_2d  # noqa: E402
from segmentation.core.uncertainty import UncertaintyEstimator, UncertaintyParams  # noqa: E402

CONDITIONS = {
    "typical": {},
    "noisy (6 photons)": {"photons": 6.0},
    "blurred (sigma 3 px)": {"blur_sigma": 3.0},
    "dense, irregular": {"config": NucleiConfig(density_range=(0.45, 0.6), overlap=0.3, irregularity=0.12)},
    "small (9 px)": {"diameter": 9.0},
}

WEIGHTINGS = {   # (flow, cellprob, solidity)
    "equal (1, 1, 1)": (1.0, 1.0, 1.0),
    "no flow (0, 1, 1)": (0.0, 1.0, 1.0),
    "no cellprob (1, 0, 1)": (1.0, 0.0, 1.0),
    "no solidity (1, 1, 0)": (1.0, 1.0, 0.0),
    "flow-heavy (3, 1, 1)": (3.0, 1.0, 1.0),
}


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``positive`` (Mann-Whitney, ties averaged)."""
    n1 = int(positive.sum())
    n0 = positive.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def interval(score: np.ndarray, positive: np.ndarray, image: np.ndarray, n_boot: int = 400,
             seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the AUROC, resampling whole images with replacement."""
    rng = np.random.default_rng(seed)
    images = np.unique(image)
    rows = [np.flatnonzero(image == i) for i in images]
    values = []
    for _ in range(n_boot):
        pick = np.concatenate([rows[k] for k in rng.integers(0, images.size, images.size)])
        values.append(auroc(score[pick], positive[pick]))
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def speed(estimator: UncertaintyEstimator) -> tuple[int, float]:
    """Seconds to score a 1024 x 1024 image with about 500 nuclei (labels, flows, cellprob)."""
    from cellpose.dynamics import masks_to_flows

    labels = generate_2d(shape=(1024, 1024), seed=7, diameter=30.0).labels
    rng = np.random.default_rng(0)
    dp = (5 * masks_to_flows(labels.astype(np.int32)) + rng.normal(0, 1, (2, *labels.shape))).astype(np.float32)
    cellprob = rng.normal(3, 2, labels.shape).astype(np.float32)
    estimator.estimate(labels[:64, :64], dp[:, :64, :64], cellprob[:64, :64])   # imports, JIT
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        estimator.estimate(labels, dp, cellprob)
        best = min(best, time.perf_counter() - t)
    return int(np.unique(labels).size - 1), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="images (cycling through the conditions)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--model", default=None, help="model name or path (default: the shipped model)")
    parser.add_argument("--seed", type=int, default=80_000, help="seed of the first image")
    args = parser.parse_args()

    engine = SegmentationEngine()
    estimator = UncertaintyEstimator()
    names = list(CONDITIONS)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("image", "error", "score", "flow", "cellprob", "solidity", "area")}
    t_model = t_score = 0.0
    for i in range(args.n):
        condition = names[i % len(names)]
        sample = generate_2d(shape=(args.size, args.size), seed=args.seed + i, **CONDITIONS[condition])
        t = time.perf_counter()
        result = engine.segment(sample.image, SegmentationParams(model_name=args.model,
                                                                 diameter=sample.params["median_diameter"]))
        t_model += time.perf_counter() - t
        t = time.perf_counter()
        table = estimator.estimate(result.labels, result.flows, result.cellprob)
        t_score += time.perf_counter() - t
        matched = match_instances(sample.labels, result.labels, 0.5).pred_ids
        cols["image"].append(np.full(len(table), i))
        cols["error"].append(~np.isin(table.ids, matched))
        cols["score"].append(table.score)
        cols["flow"].append(table.flow_signal)
        cols["cellprob"].append(table.cellprob_signal)
        cols["solidity"].append(table.solidity_signal)
        cols["area"].append(np.bincount(result.labels.ravel())[table.ids].astype(float))
    data = {k: np.concatenate(v) for k, v in cols.items()}
    error, image = data["error"], data["image"]

    print(f"{args.n} images {args.size}x{args.size}, model {args.model or 'default'}: "
          f"{error.size} predicted nuclei, {int(error.sum())} errors (no true nucleus at IoU >= 0.5)")
    for k, name in enumerate(names):
        sel = (image % len(names)) == k
        print(f"  {name:22s} {int(sel.sum()):5d} nuclei {int(error[sel].sum()):4d} errors")
    print()
    print(f"{'AUROC for errors':34s} {'AUROC':>6s}  95% interval")
    p = estimator.params
    rows = [
        (f"score (weights {p.flow_weight:g}, {p.cellprob_weight:g}, {p.solidity_weight:g})", data["score"]),
        ("flow signal alone", data["flow"]),
        ("cellprob signal alone", data["cellprob"]),
        ("solidity signal alone", data["solidity"]),
    ]
    signals = np.stack([data["flow"], data["cellprob"], data["solidity"]])
    for name, w in WEIGHTINGS.items():
        rows.append((f"  weights {name}", np.asarray(w) @ signals / sum(w)))
    rows.append(("reference: small area", -data["area"]))
    for name, score in rows:
        lo, hi = interval(score, error, image)
        print(f"{name:34s} {auroc(score, error):6.3f}  [{lo:.3f}, {hi:.3f}]")

    print()
    print("reviewing the k most uncertain nuclei of each image finds (errors found / errors present):")
    base = error.mean()
    for k in (5, 10, 20):
        found = reviewed = 0
        for i in np.unique(image):
            sel = np.flatnonzero(image == i)
            top = sel[np.argsort(-data["score"][sel], kind="stable")[:k]]
            found += int(error[top].sum())
            reviewed += top.size
        print(f"  top {k:2d}: {found:3d} / {int(error.sum())} errors in {reviewed} reviewed "
              f"({found / max(reviewed, 1):.0%} of reviewed are errors; base rate {base:.1%})")

    print()
    n_nuclei, seconds = speed(UncertaintyEstimator(UncertaintyParams()))
    print(f"scoring: {t_score / args.n * 1000:.0f} ms per {args.size}x{args.size} image "
          f"(model {t_model / args.n:.2f} s); 1024x1024 with {n_nuclei} nuclei: {seconds:.2f} s")


if __name__ == "__main__":
    main()
