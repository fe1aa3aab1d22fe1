"""Does the active-learning loop pay? Adapters fine-tuned on simulated corrections, by strategy.

A generated, domain-shifted data set (nuclei with coarser chromatin texture and dimmer rims
than the default model was trained on: texture contrast 0.7-0.9 instead of at most 0.45, rims
60-80 % darker than the centre instead of at most 45 %) is split into a *pool* that simulated
annotators review and a held-out *test* set. On it the default model cuts textured nuclei into
pieces, finds spurious fragments and draws boundaries inside the dim rims. Each round, for each
picking strategy:

1. segment the pool with the strategy's current model (the base model, then its latest adapter);
2. pick ``--per-round`` nuclei with each strategy of ``SELECTION_STRATEGIES``, by its name, all
   through ``select_for_review``: ``top`` (the top of :class:`UncertaintyEstimator`'s ranking
   over the whole pool; "uncertainty" in older runs), ``round_robin`` (the ranking taken
   round-robin across images, so one bad image does not fill the queue; "diverse"), ``random``
   or ``mixed`` (half the top of the ranking, half at random);
3. the annotator corrects each picked nucleus with the ground truth: the predicted nucleus and
   the fragments of the true nuclei it overlaps are replaced by those true nuclei (a merge is
   split, a split merged, a false positive deleted, a boundary redrawn), and missed nuclei
   touching it are added. Each is recorded through ``ActiveLearningManager.record_correction``
   with the image and the label image after the fix as context;
4. ``trigger_retraining`` fine-tunes a fresh adapter on all corrections so far (nothing held
   out: the test set scores it);
5. AP@0.5 / AP@0.75 and split/merge errors on the test set.

Printed: AP per round per strategy, the corrections each needs to reach a target AP, and the
wall time of the fine-tuning round with 20 corrections.

Run: ``python bench/active_learning.py`` (about 13 minutes on 2 CPU cores; ``--repeats 3`` for means and
ranges, about three times as long) or ``--quick``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segmentation.core import (  # noqa: E402
    SELECTION_STRATEGIES,
    ActiveLearningManager,
    AdapterTrainingParams,
    RetrainingParams,
    SegmentationEngine,
    SegmentationParams,
    average_precision,
    compute_split_merge_errors,
    select_for_review,
    synthetic,
)
from segmentation.core.synthetic import NucleiConfig  # noqa: E402

# The shift: chromatin texture and rim dimming beyond what the default model saw (training
# drew texture 0.05-0.45 and rim dimming 0-0.45), on nuclei of 20-28 px.
DOMAIN = NucleiConfig(diameter_range=(20.0, 28.0), texture_range=(0.7, 0.9), rim_dimming_range=(0.6, 0.8))
STRATEGIES = tuple(SELECTION_STRATEGIES)  # the core's registry: top, round_robin, random, mixed


@dataclass
class Image:
    raw: np.ndarray
    truth: np.ndarray
    diameter: float
    corrected: np.ndarray = field(default=None)   # pixels an annotator already fixed

    def __post_init__(self):
        if self.corrected is None:
            self.corrected = np.zeros(self.truth.shape, bool)


def make_set(seed: int, n: int, size: int) -> list[Image]:
    out = []
    for i in range(n):
        s = synthetic.generate_2d((size, size), seed=(seed, i), config=DOMAIN)
        out.append(Image(s.image, s.labels, float(s.params["median_diameter"])))
    return out


def segment(engine: SegmentationEngine, model: str | None, images: list[Image]):
    return [engine.segment(im.raw, SegmentationParams(model_name=model, diameter=im.diameter)) for im in images]


def score(results, images: list[Image]) -> dict:
    ap = average_precision([im.truth for im in images], [r.labels for r in results], thresholds=(0.5, 0.75))
    splits = merges = 0
    for r, im in zip(results, images, strict=True):
        s, m = compute_split_merge_errors(r.labels, im.truth)
        splits += s
        merges += m
    return {"ap50": float(ap.ap[0]), "ap75": float(ap.ap[1]), "fp": int(ap.fp[0]), "fn": int(ap.fn[0]),
            "splits": splits, "merges": merges}


# -- the simulated annotator ---------------------------------------------------------------


def correct(pred: np.ndarray, truth: np.ndarray, nucleus: int, diameter: float):
    """What an annotator who knows the truth makes of predicted nucleus ``nucleus``.

    Returns ``(original, corrected, after, kind)``: the predicted nuclei changed (label image),
    the true nuclei drawn instead, the whole label image after the fix, and the correction type;
    ``None`` if the prediction is already exactly right.
    """
    picked = pred == nucleus
    ids, counts = np.unique(truth[picked], return_counts=True)
    size = picked.sum()
    true_ids = [int(g) for g, c in zip(ids, counts, strict=True)
                if g and (c >= 0.25 * size or c >= 0.25 * (truth == g).sum())]
    # Missed nuclei touching the picked one (within a third of a diameter): the annotator adds them.
    near = ndi.binary_dilation(picked, iterations=max(1, int(diameter / 3)))
    for g in np.unique(truth[near]):
        if g and int(g) not in true_ids and (pred[truth == g] > 0).mean() < 0.5:
            true_ids.append(int(g))
    drawn = np.isin(truth, true_ids)
    # Fragments: other predictions lying mostly inside the true nuclei (the rest of a split one).
    changed = [nucleus]
    for q, c in zip(*np.unique(pred[drawn], return_counts=True), strict=True):
        if q and q != nucleus and c > 0.5 * (pred == q).sum():
            changed.append(int(q))
    original = np.where(np.isin(pred, changed), pred, 0)
    corrected = np.where(drawn, truth, 0)
    if np.array_equal(original > 0, corrected > 0) and len(changed) == len(true_ids):
        return None
    after = np.where(np.isin(pred, changed), 0, pred).astype(np.int64)
    after[drawn] = truth[drawn].astype(np.int64) + int(pred.max())
    n_orig, n_corr = len(changed), len(true_ids)
    kind = "delete" if n_corr == 0 else "merge" if n_orig >= 2 else "split" if n_corr >= 2 else "modify"
    return original, corrected, after, kind


# -- picking ---------------------------------------------------------------------------------


def candidates(results, images: list[Image]) -> dict[int, list[tuple[int, float]]]:
    """Per pool image, its predicted nuclei not yet corrected, most uncertain first."""
    out = {}
    for k, (r, im) in enumerate(zip(results, images, strict=True)):
        ranked = r.uncertainty().ranked()
        labels = r.labels
        done = np.bincount(labels[im.corrected], minlength=int(labels.max()) + 1)
        sizes = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
        out[k] = [(n, s) for n, s in ranked if done[n] < 0.3 * sizes[n]]
    return out


def pick(strategy: str, ranking: dict[int, list[tuple[int, float]]], n: int, rng: np.random.Generator):
    picked = select_for_review(ranking, n, strategy=strategy, seed=int(rng.integers(2 ** 31)))
    return [(k, nucleus) for k, nucleus, _ in picked]


# -- the loop ----------------------------------------------------------------------------------


def run_strategy(strategy: str, pool: list[Image], test: list[Image], args, work: Path, base_score: dict,
                 engine: SegmentationEngine, seed: int) -> list[dict]:
    manager = ActiveLearningManager(work / strategy, min_corrections_for_training=1)
    images = [Image(im.raw, im.truth, im.diameter) for im in pool]
    rng = np.random.default_rng(seed)
    model = None
    rows = [{"round": 0, "corrections": 0, **base_score}]
    params = RetrainingParams(holdout_fraction=0.0, context_weight=args.context_weight,
                              training=AdapterTrainingParams(steps=args.steps, batch_size=8,
                                                             learning_rate=args.lr, seed=seed))
    for rnd in range(1, args.rounds + 1):
        results = segment(engine, model, images)
        chosen = pick(strategy, candidates(results, images), args.per_round, rng)
        kinds = []
        for k, nucleus in chosen:
            im, pred = images[k], results[k].labels
            fix = correct(pred, im.truth, nucleus, im.diameter)
            if fix is None:
                continue
            original, corrected, after, kind = fix
            manager.record_correction(f"pool-{k}", nucleus, original, corrected, kind, {"diameter": im.diameter},
                                      image=im.raw, context_labels=after)
            im.corrected |= (original > 0) | (corrected > 0)
            kinds.append(kind)
        t0, c0, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        trained = manager.trigger_retraining(params)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        model = trained["adapter_path"]
        row = {"round": rnd, "corrections": manager.tracker.count(), "train_s": seconds, "train_cpu_s": cpu,
               "load": load,
               "kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
               "adapter_bytes": trained["adapter"]["bytes"], "base_bytes": trained["adapter"].get("base_bytes"),
               **score(segment(engine, model, test), test)}
        rows.append(row)
        print(f"  {strategy:11s} round {rnd}: {row['corrections']:3d} corrections {row['kinds']}  "
              f"AP@0.5 {row['ap50']:.3f}  AP@0.75 {row['ap75']:.3f}  splits {row['splits']} merges {row['merges']}  "
              f"fine-tune {seconds:.0f} s (load {load:.1f})", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, smaller sets, fewer steps (a few minutes)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--per-round", type=int, default=5, help="nuclei corrected per round")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps per round")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--context-weight", type=float, default=0.25,
                        help="loss weight of the context labels around each correction")
    parser.add_argument("--pool", type=int, default=None, help="pool images (256 x 256)")
    parser.add_argument("--test", type=int, default=None, help="test images (256 x 256)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="repeat the loop on this many pools (other seeds) and report means and ranges")
    parser.add_argument("--target", type=float, default=None,
                        help="AP@0.5 to reach (default: halfway from the base model to the best final AP)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.steps = args.steps or (40 if args.quick else 80)
    args.pool = args.pool or (3 if args.quick else 4)
    args.test = args.test or (3 if args.quick else 4)
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")

    import torch  # noqa: F401  (imported here so the timings below do not include it)

    t_start = time.perf_counter()
    test = make_set(2000 + args.seed, args.test, 256)
    engine = SegmentationEngine()
    base_score = score(segment(engine, None, test), test)
    print(f"domain: {DOMAIN.diameter_range[0]:.0f}-{DOMAIN.diameter_range[1]:.0f} px nuclei, chromatin texture "
          f"{DOMAIN.texture_range[0]}-{DOMAIN.texture_range[1]} (training: 0.05-0.45), rim dimming "
          f"{DOMAIN.rim_dimming_range[0]}-{DOMAIN.rim_dimming_range[1]} (training: 0-0.45); pools of {args.pool} and a "
          f"test set of {args.test} images of 256x256 ({sum(int(im.truth.max()) for im in test)} test nuclei)")
    print(f"base model ezq_nuclei_v1 on the test set: AP@0.5 {base_score['ap50']:.3f}  AP@0.75 "
          f"{base_score['ap75']:.3f}  FP {base_score['fp']} FN {base_score['fn']}  splits {base_score['splits']} "
          f"merges {base_score['merges']}")
    print(f"{args.repeats} repeat(s) x {args.rounds} rounds of {args.per_round} corrections, {args.steps} fine-tuning "
          f"steps (batch 8) per round, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs", flush=True)

    runs: dict[str, list[list[dict]]] = {s: [] for s in strategies}
    with tempfile.TemporaryDirectory(prefix="ezq-al-") as tmp:
        for r in range(args.repeats):
            pool = make_set(1000 + args.seed + r, args.pool, 256)
            print(f"repeat {r + 1}: pool of {sum(int(im.truth.max()) for im in pool)} nuclei", flush=True)
            for s in strategies:
                runs[s].append(run_strategy(s, pool, test, args, Path(tmp) / f"r{r}", base_score, engine,
                                            args.seed + r))

    def mean(s: str, i: int, key: str) -> float:
        return float(np.mean([rows[i][key] for rows in runs[s]]))

    def cell(s: str, i: int, key: str) -> str:
        values = [rows[i][key] for rows in runs[s]]
        spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
        return f"{np.mean(values):.3f}{spread}"

    n = args.rounds
    best = max(mean(s, n, "ap50") for s in strategies)
    target = args.target
    if target is None:
        target = round(base_score["ap50"] + 0.5 * (best - base_score["ap50"]), 3)
    best75 = max(mean(s, n, "ap75") for s in strategies)
    target75 = round(base_score["ap75"] + 0.5 * (best75 - base_score["ap75"]), 3)
    width = 13 if args.repeats == 1 else 24
    for key, label in (("ap50", "AP@0.5"), ("ap75", "AP@0.75")):
        print()
        print(f"{label} on the test set after each round (round 0 = base model"
              + (f"; mean and range over {args.repeats} repeats" if args.repeats > 1 else "") + "):")
        print("round  corrections  " + "  ".join(f"{s:>{width}s}" for s in strategies))
        for i in range(n + 1):
            print(f"{i:5d}  {runs[strategies[0]][0][i]['corrections']:11d}  "
                  + "  ".join(f"{cell(s, i, key):>{width}s}" for s in strategies))

    def reached(s: str, key: str, goal: float) -> str:
        for i in range(n + 1):
            if mean(s, i, key) >= goal:
                return str(runs[s][0][i]["corrections"])
        return f"> {runs[s][0][n]['corrections']}"

    print()
    print(f"corrections needed to reach AP@0.5 {target:.3f} (halfway from the base model to the best mean): "
          + ", ".join(f"{s} {reached(s, 'ap50', target)}" for s in strategies))
    print(f"corrections needed to reach AP@0.75 {target75:.3f}: "
          + ", ".join(f"{s} {reached(s, 'ap75', target75)}" for s in strategies))
    print("mean AP@0.5 over rounds 1-" + str(n) + " (area under the learning curve): "
          + ", ".join(f"{s} {np.mean([mean(s, i, 'ap50') for i in range(1, n + 1)]):.3f}" for s in strategies))
    round20 = [row for rs in runs.values() for rows in rs for row in rows
               if row.get("corrections") == 20 and "train_s" in row]
    if round20:
        walls = [r["train_s"] for r in round20]
        cpus = [r["train_cpu_s"] for r in round20]
        print(f"fine-tuning round with 20 corrections ({args.steps} steps of 8 crops; adapter built, trained, saved): "
              f"median {np.median(walls):.0f} s wall (range {min(walls):.0f}-{max(walls):.0f}), "
              f"{np.median(cpus):.0f} s CPU, machine load {np.median([r['load'] for r in round20]):.1f} "
              f"over {len(round20)} rounds")
    last = runs[strategies[0]][0][-1]
    if last.get("base_bytes"):
        print(f"adapter file {last['adapter_bytes'] / 1024:.0f} KiB, "
              f"base model file {last['base_bytes'] / 1024:.0f} KiB "
              f"({last['adapter_bytes'] / last['base_bytes']:.1%})")
    print(f"total wall time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
