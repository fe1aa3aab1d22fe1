"""Scores of a model on held-out examples: AP@0.5, AP@0.75, split and merge errors.

A held-out correction knows its labels only in its reviewed zone (the pixels of positive
weight, see :func:`correction_example`), so both the reference nuclei and the predicted ones
are restricted to the objects lying mostly (more than half of their pixels) inside it: a
neighbour nobody reviewed counts neither as found nor as a false positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..metrics import average_precision, compute_split_merge_errors
from .data import TrainingExample, as_examples, example_diameters, example_planes

__all__ = ["evaluate_model", "compare_models"]


def _inside(labels: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``labels`` keeping only the objects with more than half of their pixels in ``region``."""
    flat = labels.ravel().astype(np.int64)
    if not flat.any():
        return labels
    size = np.bincount(flat)
    within = np.bincount(flat[region.ravel()], minlength=size.size)
    keep = 2 * within > size
    keep[0] = False
    return np.where(keep[labels], labels, 0)


def _as_loaded(model: Any) -> Any:
    from ..modelzoo import LoadedModel, load_model

    return model if isinstance(model, LoadedModel) else load_model(model)


def evaluate_model(model: Any, examples: Any, *, params: Any = None) -> dict[str, Any]:
    """Segment the xy planes of ``examples`` with ``model`` and score them against their labels.

    Parameters
    ----------
    model : str, None or LoadedModel
        A model name as :func:`segmentation.core.load_model` takes it (an adapter file too), or
        a loaded model.
    examples : list of TrainingExample (or ``(image, labels[, weight])`` tuples)
        Held-out crops; each plane is segmented at its example's diameter (measured on its
        labels when not given), with the thresholds of ``params``.
    params : SegmentationParams, optional

    Returns
    -------
    dict
        ``ap50``, ``ap75``, ``tp50``, ``fp50``, ``fn50`` (counts pooled over planes),
        ``splits``, ``merges`` (:func:`compute_split_merge_errors`, summed), ``n_planes``,
        ``n_nuclei`` (reference nuclei scored).
    """
    from ..params import SegmentationParams
    from ..runner import CellposeRunner

    examples: list[TrainingExample] = as_examples(examples)
    loaded = _as_loaded(model)
    params = params or SegmentationParams()
    diameters = example_diameters(examples)
    fallback = float(np.median(diameters)) if diameters else loaded.diam_mean
    runner = CellposeRunner(loaded, params, diameter=fallback)
    gts, preds = [], []
    splits = merges = 0
    for ex in examples:
        diameter = ex.diameter or (example_diameters([ex]) or [fallback])[0]
        for image, labels, weight in example_planes(ex, ortho=False):
            region = weight > 0
            pred, _, _ = runner.eval_2d(image, diameter)
            gt = _inside(labels.astype(np.int64), region)
            pred = _inside(pred.astype(np.int64), region)
            gts.append(gt)
            preds.append(pred)
            s, m = compute_split_merge_errors(pred, gt)
            splits += s
            merges += m
    if not gts:
        raise InvalidInputError("no held-out plane has a pixel with positive weight: nothing to evaluate")
    ap = average_precision(gts, preds, thresholds=(0.5, 0.75))
    return {"ap50": round(float(ap.ap[0]), 4), "ap75": round(float(ap.ap[1]), 4), "tp50": int(ap.tp[0]),
            "fp50": int(ap.fp[0]), "fn50": int(ap.fn[0]), "splits": int(splits), "merges": int(merges),
            "n_planes": len(gts), "n_nuclei": int(sum(np.count_nonzero(np.unique(g)) for g in gts))}


def compare_models(candidate: Any, reference: Any, examples: Any, *, params: Any = None) -> dict[str, Any]:
    """:func:`evaluate_model` of two models on the same examples, and which is better.

    Returns
    -------
    dict
        ``candidate`` and ``reference`` (the scores), ``delta`` (candidate minus reference for
        ``ap50``, ``ap75``, ``splits``, ``merges``) and ``better``: the candidate is no worse at
        AP@0.5 and AP@0.75 and better at one of them.
    """
    examples = as_examples(examples)
    cand = evaluate_model(candidate, examples, params=params)
    ref = evaluate_model(reference, examples, params=params)
    delta = {k: round(cand[k] - ref[k], 4) for k in ("ap50", "ap75", "splits", "merges")}
    better = delta["ap50"] >= 0 and delta["ap75"] >= 0 and (delta["ap50"] > 0 or delta["ap75"] > 0)
    return {"candidate": cand, "reference": ref, "delta": delta, "better": bool(better)}
