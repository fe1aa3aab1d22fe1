"""One retraining run: hold out, fine-tune an adapter, save it under its version's name, score it.

:func:`train_model_version` is the run that both :meth:`ActiveLearningManager.trigger_retraining
<segmentation.core.corrections.ActiveLearningManager.trigger_retraining>` (a training log on disk)
and the web app's training job (``segmentation.services``: a ``ModelVersion`` row) record;
:func:`holdout_split` is the rule that says which corrections it trains on and which it scores on.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .._validation import Params, check_name, check_number
from ..errors import InvalidParameterError

__all__ = ["RetrainingParams", "holdout_split", "train_model_version"]


def _adapter_params_cls():
    # The adapter package imports torch only when an adapter is built; importing its parameter
    # classes is cheap, but done here to keep this module's import graph small.
    from ..adapter import AdapterParams, AdapterTrainingParams

    return AdapterParams, AdapterTrainingParams


@dataclass(frozen=True)
class RetrainingParams(Params):
    """What :meth:`ActiveLearningManager.trigger_retraining` trains, and how.

    Parameters
    ----------
    base_model : str or None
        The model the adapter is trained on (``None`` = the default model).
    adapter : AdapterParams or dict, optional
        Rank, alpha, target layers (the defaults when ``None``).
    training : AdapterTrainingParams or dict, optional
        Steps, batch size, learning rate ... (the defaults when ``None``).
    holdout_fraction : float in [0, 0.5]
        Fraction of the corrections kept out of training to score the new version against
        the reference. A correction is held out by a hash of its id, so it stays held out in
        every later training and the scores of versions stay comparable.
    min_holdout_corrections : int >= 1
        Below this many corrections nothing is held out (and nothing evaluated).
    zone_margin, context_weight : see :func:`segmentation.core.adapter.correction_example`.
        The label image around a correction (its context) counts with ``context_weight``
        (0.25): it anchors the adapter to what the model already did right nearby
        (``bench/active_learning.py --context-weight``; figures in the README, "Active learning").
    """

    base_model: str | None = None
    adapter: Any = None
    training: Any = None
    holdout_fraction: float = 0.2
    min_holdout_corrections: int = 10
    zone_margin: int = 3
    context_weight: float = 0.25

    _what = "retraining parameters"

    def __post_init__(self) -> None:
        AdapterParams, AdapterTrainingParams = _adapter_params_cls()
        check_name("base_model", self.base_model)
        for name, cls in (("adapter", AdapterParams), ("training", AdapterTrainingParams)):
            value = getattr(self, name)
            if value is None:
                value = cls()
            elif isinstance(value, dict):
                value = cls.from_dict(value)
            elif not isinstance(value, cls):
                raise InvalidParameterError(f"{name} must be {cls.__name__} or a dict, got {type(value).__name__}")
            object.__setattr__(self, name, value)
        for name, bounds in (("holdout_fraction", {"low": 0, "high": 0.5}), ("context_weight", {"low": 0, "high": 1}),
                             ("min_holdout_corrections", {"low": 1, "integer": True}),
                             ("zone_margin", {"low": 0, "integer": True})):
            object.__setattr__(self, name, check_number(name, getattr(self, name), **bounds))


def _held_out(correction_id: int, fraction: float) -> bool:
    """Whether correction ``correction_id`` is held out: a stable hash, the same in every training."""
    digest = hashlib.sha256(f"ezquant-holdout-{int(correction_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < fraction


def holdout_split(correction_ids: Iterable[int], params: Any) -> tuple[list[int], list[int]]:
    """``(train_ids, held_out_ids)``, both sorted: the corrections a training learns from and those
    it scores the new version on.

    A correction is held out by a hash of its id (``params.holdout_fraction`` of them), so it
    stays held out in every later training and the scores of versions stay comparable; nothing
    is held out below ``params.min_holdout_corrections`` corrections. Should the hash hold out
    every one of them, all are trained on and none is scored: a version needs something to learn
    from.

    >>> from segmentation.core.corrections import RetrainingParams
    >>> holdout_split([3, 1, 2], RetrainingParams())
    ([1, 2, 3], [])
    """
    ids = sorted({int(i) for i in correction_ids})
    held = [i for i in ids if _held_out(i, params.holdout_fraction)] \
        if len(ids) >= params.min_holdout_corrections else []
    train = [i for i in ids if i not in held] or ids
    return train, [i for i in held if i not in train]


def train_model_version(examples: Mapping[int, Any], params: Any, *, folder: str | os.PathLike[str],
                        reference_model: str | None = None,
                        progress: Callable[[float, str, dict[str, Any]], None] | None = None,
                        resume: bool = True, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fine-tune an adapter on the corrections' examples and score it on the held-out ones.

    Parameters
    ----------
    examples : mapping of correction id to TrainingExample
        Every correction of the run (:func:`correction_examples`); :func:`holdout_split` of the
        ids says which are trained on.
    params : RetrainingParams
    folder : path
        Where the checkpoint (``run-<key>.ckpt``, the key a hash of the base, the parameters
        and the corrections trained on) and the adapter (``<base>.lora-<weights hash>.pt``: the
        file name is the model version) are written; created if missing.
    reference_model : str, optional
        The model the new version is compared with; when ``None``, the base it was trained on
        (``params.base_model``).
    progress : callable, optional
        ``progress(fraction, message, metrics)``: training takes 0..0.9 with ``metrics =
        {"step", "steps", "loss", "loss_avg", "lr", "stage": "training"}``, scoring starts at 0.9
        (``"stage": "evaluating"``). An exception it raises (a cancelled job) stops the run; the
        checkpoint is kept and a run of the same corrections and parameters with ``resume``
        continues from it.
    resume : bool
        Continue from the checkpoint of an interrupted run of the same key.
    metadata : dict, optional
        More metadata saved in the adapter file (beside ``held_out_ids``).

    Returns
    -------
    dict
        ``model_version`` (the adapter file's stem), ``adapter_path`` (Path), ``adapter`` (what
        :meth:`ModelAdapter.save <segmentation.core.ModelAdapter.save>` returned), ``base``
        (the base model's ``ModelInfo``), ``correction_ids`` and ``held_out_ids``, ``training``
        (the training record), ``metrics`` (``{"evaluated": False, "reason"}`` or
        :func:`~segmentation.core.adapter.compare_models`'s result with ``"evaluated": True``
        and ``reference_model``), ``checkpoint`` (Path: the caller removes it once the version
        is recorded, so a crash before that still resumes) and ``timings`` (seconds of
        ``train`` and ``evaluate``).

    Raises
    ------
    InvalidInputError
        No examples (from :meth:`ModelAdapter.train <segmentation.core.ModelAdapter.train>`).
    ModelNotAvailableError
        The base or reference model cannot be loaded.
    """
    from ..adapter import ModelAdapter, compare_models

    if not isinstance(params, RetrainingParams):
        raise InvalidParameterError(f"params must be RetrainingParams, got {type(params).__name__}")
    report = progress or (lambda fraction, message, metrics: None)
    train, held = holdout_split(examples, params)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    report(0.0, f"training on {len(train)} corrections", {"stage": "training"})
    adapter = ModelAdapter(params.base_model, params.adapter)
    run_key = hashlib.sha256(json.dumps({"base": adapter.base.sha256, "params": params.to_dict(), "train": train},
                                        sort_keys=True).encode()).hexdigest()[:16]
    checkpoint = folder / f"run-{run_key}.ckpt"
    t = time.perf_counter()
    record = adapter.train([examples[i] for i in train], params.training,
                           progress=lambda f, message, metrics: report(0.9 * f, message,
                                                                       {**metrics, "stage": "training"}),
                           checkpoint_path=checkpoint,
                           resume_from=checkpoint if resume and checkpoint.is_file() else None)
    timings["train"] = round(time.perf_counter() - t, 3)
    # Saved under the run's name, then renamed after its weights' hash: the file name is the
    # model version, and a half-written file never carries a version's name.
    pending = folder / f"run-{run_key}.pt"
    info = adapter.save(pending, correction_ids=train, metadata={**(metadata or {}), "held_out_ids": held})
    final = folder / f"{adapter.base.name}.lora-{info['weights_sha256'][:12]}.pt"
    os.replace(pending, final)
    info["path"] = str(final)

    if held:
        report(0.9, f"scoring on {len(held)} held-out corrections", {"stage": "evaluating"})
        t = time.perf_counter()
        reference = reference_model if reference_model is not None else params.base_model
        metrics = {**compare_models(str(final), reference, [examples[i] for i in held]), "evaluated": True,
                   "reference_model": reference or adapter.base.name}
        timings["evaluate"] = round(time.perf_counter() - t, 3)
    elif len(train) < params.min_holdout_corrections:
        metrics = {"evaluated": False,
                   "reason": f"fewer than {params.min_holdout_corrections} corrections: none held out"}
    else:
        metrics = {"evaluated": False, "reason": "the hash held out every correction: all were trained on, "
                                                 "none scored"}
    return {"model_version": final.stem, "adapter_path": final, "adapter": info, "base": adapter.base,
            "correction_ids": train, "held_out_ids": held, "training": record, "metrics": metrics,
            "checkpoint": checkpoint, "timings": timings}
