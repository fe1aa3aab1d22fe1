"""Segmentation quality metrics for 2D and 3D label images.

Every function here works on arrays of any dimensionality (a 2D ``(Y, X)`` image or a 3D
``(Z, Y, X)`` volume). Label images are integer arrays where ``0`` is background and every other
value names one instance; the ids need not be contiguous or small (``10**6`` is as good as ``1``),
and two label images are compared by their overlap, never by their ids.

Sub-modules, by what they compute: :mod:`.overlap` (foreground IoU and Dice, the contingency
table of two label images, the IoU matrix), :mod:`.matching` (one-to-one matching of instances
and average precision), :mod:`.split_merge` (split and merge errors) and :mod:`.stability`
(coefficient of variation of repeated measurements). Import from this package, not from them.

Conventions shared by all functions:

- ``gt`` is the reference, ``pred`` the segmentation under test, except in
  :func:`compute_split_merge_errors`, which keeps the guide's order ``(pred, gt)``.
- Inputs are never modified.
- Comparing two empty images counts as perfect agreement (IoU, Dice and AP are 1.0).
"""

from .matching import APResult, InstanceMatches, average_precision, match_instances
from .overlap import LabelOverlap, compute_3d_dice, compute_3d_iou, iou_matrix, label_overlap
from .split_merge import compute_split_merge_errors
from .stability import coefficient_of_variation

__all__ = [
    "APResult",
    "InstanceMatches",
    "LabelOverlap",
    "average_precision",
    "coefficient_of_variation",
    "compute_3d_dice",
    "compute_3d_iou",
    "compute_split_merge_errors",
    "iou_matrix",
    "label_overlap",
    "match_instances",
]
