"""Record the corrections people make to segmented nuclei, and decide when to retrain.

Sub-modules: :mod:`.records` (:class:`CorrectionRecord`, :data:`CORRECTION_TYPES` and the checks
a correction must pass), :mod:`.tracker` (:class:`CorrectionTracker`; its docstring describes the
storage layout, the atomic writes and the locking) and :mod:`.manager`
(:class:`ActiveLearningManager`: what to review, when to retrain an adapter on the
corrections), :mod:`.retraining` (:class:`RetrainingParams`, what a retraining trains and how;
:func:`train_model_version`, the one retraining run both the manager and the web app's training
job record; and :func:`holdout_split`) and :mod:`.selection` (:func:`select_for_review`: which
nuclei of several images to review next, by a strategy of the registry
:data:`SELECTION_STRATEGIES`). Import from this package, not from them.
"""

from .manager import ActiveLearningManager, correction_examples
from .records import CORRECTION_TYPES, CorrectionRecord
from .retraining import RetrainingParams, holdout_split, train_model_version
from .selection import SELECTION_STRATEGIES, SelectionStrategy, register_selection_strategy, select_for_review
from .tracker import CorrectionStorageError, CorrectionTracker, ImageCrop

__all__ = [
    "CORRECTION_TYPES", "ActiveLearningManager", "CorrectionRecord", "CorrectionStorageError", "CorrectionTracker",
    "ImageCrop", "RetrainingParams", "SELECTION_STRATEGIES", "SelectionStrategy", "correction_examples",
    "holdout_split", "register_selection_strategy", "select_for_review",
    "train_model_version",
]
