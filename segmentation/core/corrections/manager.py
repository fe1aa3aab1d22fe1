"""The active-learning loop, :class:`ActiveLearningManager`: what to review, when to retrain."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..uncertainty import UncertaintyEstimator
from .records import CorrectionRecord, _check_metadata, _utc_now
from .tracker import CorrectionStorageError, CorrectionTracker, _write_atomic


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
                          correction_type: str, metadata: dict[str, Any] | None = None) -> CorrectionRecord:
        """Store a correction; see :meth:`CorrectionTracker.record`."""
        return self.tracker.record(image_id, nucleus_id, original_mask, corrected_mask, correction_type, metadata)

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

    def record_training(self, model_version: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Log that a model was trained on every correction recorded so far.

        The adapter training calls this when it finishes, so that :meth:`should_retrain`
        counts from here. Returns the logged entry.
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
            entry = {"timestamp": _utc_now(), "model_version": model_version,
                     "last_correction_id": max((r.id for r in records), default=0),
                     "n_corrections": len(records), "metadata": metadata}
            payload = json.dumps({"trainings": runs + [entry]}, indent=1).encode("utf-8")
            _write_atomic(self.training_log_path, lambda fh: fh.write(payload))
        return entry
