"""EZQuant segmentation core: the science, importable and testable without Django.

The public names keep those of the EZQUANT guide (``../shared/reference``); everything a user
or the web layer needs is importable from here. Modules import numpy, scipy and scikit-image
at import time; torch and cellpose are imported only by the functions that run a network, so
importing this package stays cheap.

=========================  ==================================================================
Segmentation               :class:`SegmentationEngine`, :class:`SegmentationParams`,
                           :class:`SegmentationResult`, backends ``"slice"``,
                           ``"hybrid2d3d"`` (:class:`Hybrid2D3DBackend`), ``"true3d"``
                           (:class:`True3DBackend`), :func:`link_slices`; a backend runs
                           the network through a :class:`ModelRunner`
Anisotropy                 :class:`Anisotropy3DPreprocessor`
Restoration                :class:`Cellpose3RestorationEngine`, :func:`should_use_restoration`,
                           :func:`measure_image_quality`, :func:`restore`
Evaluation                 :func:`compute_3d_iou`, :func:`compute_3d_dice`,
                           :func:`compute_split_merge_errors`, :func:`average_precision`,
                           :func:`match_instances`, :func:`iou_matrix`,
                           :func:`coefficient_of_variation`
Active learning            :class:`UncertaintyEstimator`, :func:`nucleus_uncertainty`,
                           :class:`CorrectionTracker` (:class:`ImageCrop`),
                           :class:`ActiveLearningManager` (:class:`RetrainingParams`),
                           :func:`correction_examples`, :func:`select_for_review`
                           (:data:`SELECTION_STRATEGIES`)
Corrections                :data:`EDIT_KINDS` (:class:`EditKind`, :func:`register_edit_kind`):
                           the kinds of correction
Curation                   :func:`keep_curated` (:class:`CuratedMerge`): people's nuclei kept
                           through a new segmentation (:class:`CuratedPaste`: a chunk at a
                           time); :func:`revert_edit` (:class:`Revert`)
Adapters                   :class:`ModelAdapter` (LoRA on the CPnet), :class:`AdapterParams`,
                           :class:`AdapterTrainingParams`, :class:`TrainingExample`,
                           :func:`correction_example`, :func:`evaluate_model`,
                           :func:`compare_models`, :func:`read_adapter_file`
Measurements               :func:`nucleus_table` (the per-nucleus table)
Large volumes              :func:`segment_blockwise` (:class:`BlockwiseParams`,
                           :class:`BlockwiseResult`): overlapping blocks on Dask, stitched
Meshes                     :func:`nucleus_mesh` (:class:`NucleusMesh`), :func:`touching_labels`,
                           :func:`z_profile`, :func:`z_merge_signs`, :func:`z_waist`
Models and data            :func:`load_model`, :data:`DEFAULT_MODEL`, :mod:`synthetic`
=========================  ==================================================================
"""

from . import synthetic
from .adapter import (
    AdapterParams,
    AdapterTrainingParams,
    ModelAdapter,
    TrainingExample,
    compare_models,
    correction_example,
    evaluate_model,
    read_adapter_file,
)
from .anisotropy import Anisotropy3DPreprocessor
from .backends import BACKENDS, Backend, Hybrid2D3DBackend, SliceBackend, True3DBackend
from .blockwise import BlockwiseParams, BlockwiseResult, segment_blockwise
from .corrections import (
    CORRECTION_TYPES,
    SELECTION_STRATEGIES,
    ActiveLearningManager,
    CorrectionRecord,
    CorrectionStorageError,
    CorrectionTracker,
    ImageCrop,
    RetrainingParams,
    SelectionStrategy,
    correction_examples,
    register_selection_strategy,
    select_for_review,
)
from .curation import CuratedMerge, CuratedPaste, Revert, keep_curated, revert_edit
from .editing import EDIT_KINDS, EditKind, register_edit_kind
from .engine import Cellpose3RestorationEngine, SegmentationEngine, SegmentationResult, validate_image
from .errors import InvalidInputError, InvalidParameterError, ModelNotAvailableError, SegmentationError
from .linking import LinkingParams, link_slices
from .measurements import NUCLEUS_FIELDS, nucleus_table
from .meshes import NucleusMesh, nucleus_mesh, touching_labels, z_merge_signs, z_profile, z_waist
from .metrics import (
    APResult,
    average_precision,
    coefficient_of_variation,
    compute_3d_dice,
    compute_3d_iou,
    compute_split_merge_errors,
    iou_matrix,
    match_instances,
)
from .modelzoo import DEFAULT_MODEL, DEFAULT_MODEL_3D, load_model
from .params import RESTORATION_MODES, SegmentationParams
from .restoration import RestorationParams, measure_image_quality, restore, should_use_restoration
from .runner import ModelRunner
from .uncertainty import NucleusUncertainty, UncertaintyEstimator, UncertaintyParams, nucleus_uncertainty

__all__ = [
    "AdapterParams", "AdapterTrainingParams", "ModelAdapter", "TrainingExample", "compare_models",
    "correction_example", "evaluate_model", "read_adapter_file", "ImageCrop", "RetrainingParams", "correction_examples",
    "select_for_review",
    "NUCLEUS_FIELDS", "nucleus_table",
    "CuratedMerge", "CuratedPaste", "Revert", "keep_curated", "revert_edit",
    "BlockwiseParams", "BlockwiseResult", "segment_blockwise",
    "NucleusMesh", "nucleus_mesh", "touching_labels", "z_merge_signs", "z_profile", "z_waist",
    "Cellpose3RestorationEngine", "RestorationParams", "measure_image_quality", "restore", "should_use_restoration",
    "EDIT_KINDS", "EditKind", "register_edit_kind", "SELECTION_STRATEGIES", "SelectionStrategy",
    "register_selection_strategy",
    "CORRECTION_TYPES", "ActiveLearningManager", "CorrectionRecord", "CorrectionStorageError", "CorrectionTracker",
    "NucleusUncertainty", "UncertaintyEstimator", "UncertaintyParams", "nucleus_uncertainty",
    "APResult", "Anisotropy3DPreprocessor", "BACKENDS", "Backend",
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_3D",
    "Hybrid2D3DBackend", "InvalidInputError", "InvalidParameterError", "LinkingParams",
    "ModelNotAvailableError", "ModelRunner", "RESTORATION_MODES", "SegmentationEngine", "SegmentationError",
    "SegmentationParams", "SegmentationResult", "SliceBackend", "True3DBackend",
    "average_precision", "coefficient_of_variation", "compute_3d_dice", "compute_3d_iou",
    "compute_split_merge_errors", "iou_matrix", "link_slices", "load_model", "match_instances",
    "synthetic",
    "validate_image",
]
