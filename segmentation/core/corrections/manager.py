"""The active-learning loop, :class:`ActiveLearningManager`: what to review, when to retrain.

Retraining (:meth:`ActiveLearningManager.trigger_retraining`) fine-tunes a
:class:`~segmentation.core.ModelAdapter` on the recorded corrections and logs every trained
adapter as a model version in ``<storage_dir>/training.json``::

    {"trainings": [{"timestamp", "model_version", "last_correction_id", "n_corrections",
                    "metadata": {"adapter_path", "adapter_sha256", "weights_sha256", "adapter_bytes",
                                 "base": {...}, "correction_ids", "held_out_ids", "params",
                                 "training": {...loss curve...}, "metrics": {...}, "promoted"}}]}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError
from ..uncertainty import UncertaintyEstimator
from .records import CorrectionRecord, _check_metadata, _utc_now
from .retraining import RetrainingParams, train_model_version
from .tracker import CorrectionStorageError, CorrectionTracker, ImageCrop, _image_window, _write_atomic

__all__ = ["ActiveLearningManager", "correction_examples"]

# image_provider(record) -> ImageCrop (or an array of the record's shape, or None)
ImageProvider = Callable[[CorrectionRecord], Any]


class ActiveLearningManager:
    """Coordinate the active-learning loop: what to review, what was corrected, when to retrain.

    Parameters
    ----------
    storage_dir : str or Path
        Root folder; corrections go to ``<storage_dir>/corrections`` (``corrections.json`` and
        ``corr_*.npz``), the training log to ``<storage_dir>/training.json``.
    min_corrections_for_training : int >= 1
        Corrections recorded since the last training that make :meth:`should_retrain` true.
    estimator : UncertaintyEstimator, optional
        Scores nuclei; the defaults when ``None``.

    Examples
    --------
    >>> import tempfile
    >>> manager = ActiveLearningManager(tempfile.mkdtemp(), min_corrections_for_training=1)
    >>> masks = np.zeros((8, 8), np.int32); masks[1:4, 1:4] = 1; masks[4:7, 2:7] = 2; masks[5, 3:6] = 0
    >>> manager.identify_uncertain_nuclei(masks, top_n=1)
    [2]
    >>> manager.should_retrain()
    False
    >>> _ = manager.record_correction("img", 2, masks == 2, np.zeros((8, 8), bool), "delete")
    >>> manager.should_retrain()
    True
    """

    def __init__(self, storage_dir: str | os.PathLike[str] = "./active_learning",
                 min_corrections_for_training: int = 20, estimator: UncertaintyEstimator | None = None):
        if isinstance(min_corrections_for_training, bool) or \
                not isinstance(min_corrections_for_training, (int, np.integer)) or min_corrections_for_training < 1:
            raise InvalidParameterError(
                f"min_corrections_for_training must be a whole number >= 1, got {min_corrections_for_training!r}")
        if estimator is not None and not isinstance(estimator, UncertaintyEstimator):
            raise InvalidParameterError(f"estimator must be an UncertaintyEstimator, got {type(estimator).__name__}")
        self.storage_dir = Path(storage_dir)
        self.min_corrections_for_training = int(min_corrections_for_training)
        self.estimator = estimator or UncertaintyEstimator()
        self.tracker = CorrectionTracker(self.storage_dir / "corrections")

    def __repr__(self) -> str:
        return (f"ActiveLearningManager({str(self.storage_dir)!r}, "
                f"min_corrections_for_training={self.min_corrections_for_training})")

    # -- uncertainty ------------------------------------------------------------------------

    def rank_nuclei(self, masks: Any, flows: Any = None, cellprob: Any = None,
                    top_n: int | None = None) -> list[tuple[int, float]]:
        """``(nucleus id, score)`` pairs, most uncertain first (ties: smaller id first).

        Parameters
        ----------
        masks : (Y, X) or (Z, Y, X) int array, 0 = background
        flows : Cellpose's ``flows`` list or ``dP`` array, optional
        cellprob : logits of the shape of ``masks``, optional (taken from a flows list)
        top_n : int >= 0, optional
            At most this many; all when ``None``.

        See :meth:`UncertaintyEstimator.estimate` for shapes and errors.
        """
        return self.estimator.rank(masks, flows, cellprob, top_n=top_n)

    def identify_uncertain_nuclei(self, masks: Any, flows: Any = None, cellprob: Any = None,
                                  top_n: int = 10) -> list[int]:
        """Ids of the ``top_n`` most uncertain nuclei, most uncertain first.

        Arguments as in :meth:`rank_nuclei`.
        """
        return [nucleus for nucleus, _ in self.rank_nuclei(masks, flows, cellprob, top_n=top_n)]

    # -- corrections ------------------------------------------------------------------------

    def record_correction(self, image_id: str, nucleus_id: int, original_mask: Any, corrected_mask: Any,
                          correction_type: str, metadata: dict[str, Any] | None = None, *, image: Any = None,
                          image_range: Any = None, context_labels: Any = None) -> CorrectionRecord:
        """Store a correction; see :meth:`CorrectionTracker.record`.

        Give ``image`` (and ideally ``context_labels``, the label image after the correction)
        so that :meth:`trigger_retraining` can learn from the record without an image provider.
        """
        return self.tracker.record(image_id, nucleus_id, original_mask, corrected_mask, correction_type, metadata,
                                   image=image, image_range=image_range, context_labels=context_labels)

    # -- retraining -------------------------------------------------------------------------

    @property
    def training_log_path(self) -> Path:
        """``<storage_dir>/training.json``."""
        return self.storage_dir / "training.json"

    def last_training(self) -> dict[str, Any] | None:
        """The last entry of the training log (``timestamp``, ``last_correction_id``, ``model_version``)."""
        path = self.training_log_path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise CorrectionStorageError(f"{path} is not valid JSON ({exc}); fix or restore it") from None
        runs = data.get("trainings") if isinstance(data, dict) else None
        if not isinstance(runs, list) or not all(
                isinstance(r, dict) and isinstance(r.get("last_correction_id"), int) for r in runs):
            raise CorrectionStorageError(
                f'{path} is not an EZQuant training log (expected {{"trainings": [{{"last_correction_id": ...}}]}})')
        return runs[-1] if runs else None

    def corrections_since_training(self) -> int:
        """Corrections recorded after the last training (all of them if none has run)."""
        last = self.last_training()
        cutoff = last["last_correction_id"] if last else 0
        return sum(1 for r in self.tracker.records() if r.id > cutoff)

    def should_retrain(self) -> bool:
        """Whether at least ``min_corrections_for_training`` corrections came since the last training."""
        return self.corrections_since_training() >= self.min_corrections_for_training

    def record_training(self, model_version: str, metadata: dict[str, Any] | None = None, *,
                        last_correction_id: int | None = None) -> dict[str, Any]:
        """Log that a model was trained on the corrections up to ``last_correction_id``.

        :meth:`trigger_retraining` calls this when it finishes, so that :meth:`should_retrain`
        counts from here. ``last_correction_id`` defaults to the newest record now; a training
        passes the newest it used, so corrections recorded while it ran still count as new.
        Returns the logged entry.
        """
        if not isinstance(model_version, str) or not model_version.strip():
            raise InvalidParameterError(f"model_version must be a non-empty string, got {model_version!r}")
        metadata = _check_metadata(metadata)
        # Under the corrections lock: the id read and the log written are consistent with
        # concurrent recording, and two trainers never lose each other's entry.
        with self.tracker._locked():
            last = self.last_training()
            runs = [] if last is None else json.loads(self.training_log_path.read_text(encoding="utf-8"))["trainings"]
            records = self.tracker.records()
            newest = max((r.id for r in records), default=0)
            if last_correction_id is not None:
                if isinstance(last_correction_id, bool) or not isinstance(last_correction_id, (int, np.integer)) \
                        or not 0 <= last_correction_id <= newest:
                    raise InvalidParameterError(
                        f"last_correction_id must be a recorded id (0..{newest}), got {last_correction_id!r}")
                newest = int(last_correction_id)
            entry = {"timestamp": _utc_now(), "model_version": model_version, "last_correction_id": newest,
                     "n_corrections": sum(1 for r in records if r.id <= newest), "metadata": metadata}
            payload = json.dumps({"trainings": runs + [entry]}, indent=1).encode("utf-8")
            _write_atomic(self.training_log_path, lambda fh: fh.write(payload))
        return entry

    def trainings(self) -> list[dict[str, Any]]:
        """Every entry of the training log, oldest first (the model versions)."""
        if self.last_training() is None:
            return []
        return json.loads(self.training_log_path.read_text(encoding="utf-8"))["trainings"]

    def current_model(self) -> str | None:
        """The model to segment with now: the newest promoted adapter, or ``None`` (the default).

        A trained adapter is *promoted* when it scored better than the model it was compared
        with on the held-out corrections (see :meth:`trigger_retraining`).
        """
        for entry in reversed(self.trainings()):
            meta = entry.get("metadata") or {}
            path = meta.get("adapter_path")
            if meta.get("promoted") and path and Path(path).is_file():
                return str(path)
        return None

    # -- training data -----------------------------------------------------------------------

    def training_examples(self, records: list[CorrectionRecord] | None = None, *,
                          image_provider: ImageProvider | None = None, zone_margin: int = 3,
                          context_weight: float = 0.25) -> list[Any]:
        """:func:`correction_examples` of this manager's tracker (all records by default)."""
        return correction_examples(self.tracker, records, image_provider=image_provider, zone_margin=zone_margin,
                                   context_weight=context_weight)

    # -- retraining ---------------------------------------------------------------------------

    def trigger_retraining(self, params: RetrainingParams | None = None, *,
                           correction_ids: list[int] | None = None, image_provider: ImageProvider | None = None,
                           reference_model: str | None = None,
                           progress: Callable[[float, str, dict[str, Any]], None] | None = None,
                           resume: bool = True) -> dict[str, Any]:
        """Train an adapter on the corrections, score it, and log it as a new model version.

        Every recorded correction is used: most to train on, a stable ``holdout_fraction`` of
        them (by a hash of their id, once there are ``min_holdout_corrections``) to compare the
        new version with ``reference_model`` (default :meth:`current_model`, i.e. the newest
        promoted adapter or the base model) by AP@0.5, AP@0.75 and split/merge errors. The run is
        :func:`~segmentation.core.corrections.train_model_version` (the web app's training job
        runs it too; :func:`~segmentation.core.corrections.holdout_split` is the hold-out rule:
        should the hash hold out every correction, all are trained on and none scored); this
        method adds the training log.

        Parameters
        ----------
        params : RetrainingParams, optional
        correction_ids : list of int, optional
            Train on these records only (the approved ones); all when ``None``.
        image_provider : callable, optional
            For records stored without an image; see :meth:`training_examples`.
        reference_model : str, optional
            The model the new version is compared with.
        progress : callable, optional
            ``progress(fraction, message, metrics)``; training takes 0..0.9 with
            ``metrics = {"step", "steps", "loss", "loss_avg", "lr", "stage": "training"}``,
            evaluation 0.9..1 (``"stage": "evaluating"``). An exception it raises (a cancelled
            job) stops the run, the training state is kept in ``<storage_dir>/adapters`` and the
            next call with the same corrections and parameters resumes it (``resume=True``).
        resume : bool
            Continue an interrupted training of the same corrections and parameters.

        Returns
        -------
        dict
            ``status`` ("completed"), ``model_version`` (the adapter file's stem),
            ``adapter_path``, ``metrics`` (``{"evaluated": False}`` or
            :func:`~segmentation.core.adapter.compare_models`'s ``candidate``, ``reference``,
            ``delta``, ``better``, plus ``reference_model``), ``promoted``, ``correction_ids``,
            ``held_out_ids``, ``training`` (the training record, loss curve included),
            ``adapter`` (file size, hashes, parameter counts, size against the base), ``entry``
            (what was logged in ``training.json``).

        Raises
        ------
        InvalidInputError
            No corrections, or one without an image (see :meth:`training_examples`).
        ModelNotAvailableError
            The base or reference model cannot be loaded.
        """
        params = params or RetrainingParams()
        if not isinstance(params, RetrainingParams):
            raise InvalidParameterError(f"params must be RetrainingParams, got {type(params).__name__}")
        records = self.tracker.records()
        if correction_ids is not None:
            wanted = {int(i) for i in correction_ids}
            unknown = sorted(wanted - {r.id for r in records})
            if unknown:
                raise InvalidInputError(f"no correction record {unknown[0]} in {self.tracker.storage_dir}")
            records = [r for r in records if r.id in wanted]
        if not records:
            raise InvalidInputError("no corrections recorded yet: there is nothing to retrain on")
        examples = self.training_examples(records, image_provider=image_provider, zone_margin=params.zone_margin,
                                          context_weight=params.context_weight)
        run = train_model_version(dict(zip((r.id for r in records), examples, strict=True)), params,
                                  folder=self.storage_dir / "adapters",
                                  reference_model=reference_model if reference_model is not None
                                  else self.current_model(), progress=progress, resume=resume)
        metrics, info = run["metrics"], run["adapter"]
        promoted: bool | None = bool(metrics["better"]) if metrics["evaluated"] else None
        entry = self.record_training(run["model_version"], {
            "adapter_path": info["path"], "adapter_sha256": info["sha256"], "weights_sha256": info["weights_sha256"],
            "adapter_bytes": info["bytes"], "base": run["base"].describe(), "correction_ids": run["correction_ids"],
            "held_out_ids": run["held_out_ids"], "params": params.to_dict(), "training": run["training"],
            "metrics": metrics, "promoted": promoted}, last_correction_id=max(r.id for r in records))
        run["checkpoint"].unlink(missing_ok=True)
        if progress is not None:
            progress(1.0, f"trained {run['model_version']}", {"stage": "done"})
        return {"status": "completed", "model_version": run["model_version"], "adapter_path": info["path"],
                "metrics": metrics, "promoted": promoted, "correction_ids": run["correction_ids"],
                "held_out_ids": run["held_out_ids"], "training": run["training"], "adapter": info, "entry": entry}


def correction_examples(tracker: CorrectionTracker, records: list[CorrectionRecord] | None = None, *,
                        image_provider: ImageProvider | None = None, zone_margin: int = 3,
                        context_weight: float = 0.25) -> list[Any]:
    """One :class:`~segmentation.core.adapter.TrainingExample` per correction record of ``tracker``.

    Parameters
    ----------
    tracker : CorrectionTracker
    records : list of CorrectionRecord (or record ids), optional
        Which corrections (all when ``None``): pass the approved ones.
    image_provider : callable, optional
        For records stored without an image: ``image_provider(record)`` returns an
        :class:`ImageCrop` (the image around the record's bounding box in the record's frame,
        normalised like the engine, optionally with the label image after the correction as
        context), or an array of the record's full shape normalised likewise, or ``None``.
    zone_margin, context_weight : see :func:`~segmentation.core.adapter.correction_example`.

    The nucleus diameter and anisotropy come from the record's ``metadata`` (``diameter``,
    ``anisotropy``) when present. Several trackers (one per volume) give their examples to one
    :meth:`ModelAdapter.train <segmentation.core.ModelAdapter.train>` call.

    Raises
    ------
    InvalidInputError
        A record has no image and no provider gives one, or its crop does not cover the
        correction's bounding box.
    """
    from ..adapter import correction_example

    if records is None:
        records = tracker.records()
    else:
        records = [r if isinstance(r, CorrectionRecord) else tracker.get(r) for r in records]
    examples = []
    for record in records:
        crop = tracker.load_image(record.id)
        if crop is None and image_provider is not None:
            crop = image_provider(record)
            if crop is not None and not isinstance(crop, ImageCrop):
                arr = np.asarray(crop, np.float32)
                if arr.shape != record.shape:
                    raise InvalidInputError(
                        f"the image provider gave an array of shape {arr.shape} for correction {record.id}, "
                        f"whose masks have shape {record.shape}: return an ImageCrop for a part of it")
                window = _image_window(record.bbox, record.shape, 32)
                crop = ImageCrop(arr[window], tuple(w.start for w in window))
        if crop is None:
            raise InvalidInputError(
                f"correction {record.id} has no image to learn from: record corrections with image=..., "
                f"or pass image_provider")
        window = crop.window
        if len(window) != len(record.shape) or any(
                w.start > a or w.stop < b for w, (a, b) in zip(window, record.bbox, strict=True)):
            raise InvalidInputError(
                f"the image crop of correction {record.id} (offset {crop.offset}, shape {crop.image.shape}) "
                f"does not cover its bounding box {record.bbox}")
        original_box, corrected_box = tracker.load(record.id, crop=True)
        original = np.zeros(crop.image.shape, original_box.dtype)
        corrected = np.zeros(crop.image.shape, corrected_box.dtype)
        inner = tuple(slice(a - w.start, b - w.start) for (a, b), w in zip(record.bbox, window, strict=True))
        original[inner] = original_box
        corrected[inner] = corrected_box
        meta = record.metadata
        examples.append(correction_example(
            crop.image, original, corrected, context_labels=crop.context_labels, diameter=meta.get("diameter"),
            anisotropy=meta.get("anisotropy") if crop.image.ndim == 3 else None, zone_margin=zone_margin,
            context_weight=context_weight, correction_id=record.id))
    return examples
