"""One recorded correction (:class:`CorrectionRecord`) and the checks a correction must pass."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .._validation import check_fields
from ..editing import EDIT_KINDS, EDIT_TYPES
from ..errors import InvalidInputError, InvalidParameterError

#: The kinds of correction: those of :data:`~segmentation.core.editing.EDIT_KINDS`, the one
#: registry (its :class:`~segmentation.core.editing.EditKind` entries hold each kind's rule).
#: ``confirm`` is a person saying "this nucleus is right": both masks hold it, unchanged (a
#: positive training example).
CORRECTION_TYPES = EDIT_TYPES


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class CorrectionRecord:
    """One recorded correction: what ``corrections.json`` stores per entry.

    Attributes
    ----------
    id : int
        1, 2, ... in the order of recording; never reused within one storage folder.
    image_id : str
        The image (or volume) the nucleus belongs to.
    nucleus_id : int
        The nucleus id in the segmentation that was corrected (for ``add``, the new id).
    correction_type : str
        A name in :data:`~segmentation.core.editing.EDIT_KINDS`.
    timestamp : str
        ISO 8601, UTC, e.g. ``2025-01-31T09:15:02.123+00:00``.
    bbox : tuple of (start, stop) per axis
        Bounding box of the union of the two masks in the full image; the stored crop.
    shape : tuple of int
        Shape of the full image.
    metadata : dict
        JSON-serialisable extra information (user, model version, ...).
    file : str
        Name of the ``.npz`` holding the masks, relative to the storage folder.
    """

    id: int
    image_id: str
    nucleus_id: int
    correction_type: str
    timestamp: str
    bbox: tuple[tuple[int, int], ...]
    shape: tuple[int, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    file: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, (int, np.integer)) or self.id < 1:
            raise InvalidParameterError(f"record id must be a whole number >= 1, got {self.id!r}")
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "image_id", _check_image_id(self.image_id))
        object.__setattr__(self, "nucleus_id", _check_nucleus_id(self.nucleus_id))
        _check_type(self.correction_type)
        if not isinstance(self.timestamp, str):
            raise InvalidParameterError(f"timestamp must be an ISO 8601 string, got {self.timestamp!r}")
        try:
            _dt.datetime.fromisoformat(self.timestamp)
        except ValueError:
            raise InvalidParameterError(f"timestamp must be ISO 8601, got {self.timestamp!r}") from None
        try:
            shape = tuple(int(s) for s in self.shape)
            bbox = tuple((int(a), int(b)) for a, b in self.bbox)
        except (TypeError, ValueError):
            raise InvalidParameterError(f"bad shape {self.shape!r} or bbox {self.bbox!r}") from None
        if len(shape) not in (2, 3) or len(bbox) != len(shape) or any(s < 1 for s in shape) \
                or any(not 0 <= a < b <= s for (a, b), s in zip(bbox, shape, strict=True)):
            raise InvalidParameterError(f"bbox {self.bbox!r} does not fit in shape {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "metadata", _check_metadata(self.metadata))
        if not isinstance(self.file, str):
            raise InvalidParameterError(f"file must be a string, got {self.file!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists, the metadata a copy), fields in their order."""
        # Spelled out rather than dataclasses.asdict, whose recursive deep copy cost 0.4 ms a
        # record: a store's records are all made into dicts when it is read or folded.
        return {"id": self.id, "image_id": self.image_id, "nucleus_id": self.nucleus_id,
                "correction_type": self.correction_type, "timestamp": self.timestamp,
                "bbox": [list(b) for b in self.bbox], "shape": list(self.shape),
                "metadata": json.loads(json.dumps(self.metadata)), "file": self.file}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CorrectionRecord":
        # Every field, defaults too: a record that corrections.json lacks one of was not written by to_dict.
        return cls(**check_fields(cls, data, what="correction record fields", require_all=True))


# ---------------------------------------------------------------------------------------------
# validation


def _check_type(correction_type: Any) -> str:
    if not isinstance(correction_type, str) or correction_type not in EDIT_KINDS:
        raise InvalidParameterError(
            f"unknown correction type {correction_type!r}; choose one of {', '.join(EDIT_KINDS)}")
    return correction_type


def _check_image_id(image_id: Any) -> str:
    if not isinstance(image_id, str) or not image_id.strip():
        raise InvalidParameterError(f"image_id must be a non-empty string, got {image_id!r}")
    return image_id


def _check_nucleus_id(nucleus_id: Any) -> int:
    if isinstance(nucleus_id, bool) or not isinstance(nucleus_id, (int, np.integer)) or nucleus_id < 0:
        raise InvalidParameterError(f"nucleus_id must be a whole number >= 0, got {nucleus_id!r}")
    return int(nucleus_id)


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidParameterError("metadata must be a dict with string keys")
    try:
        # A round trip both checks serialisability and takes a private copy.
        return json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"metadata must be JSON-serialisable: {exc}") from None


def _check_mask(mask: Any, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"{name} must be a boolean or integer label array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise InvalidInputError(f"{name} must be (Y, X) or (Z, Y, X), got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidInputError(f"{name} is empty (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise InvalidInputError(f"{name} must be >= 0 (0 = background)")
    return arr


def _n_objects(crop: np.ndarray) -> int:
    """Nuclei in a mask: distinct non-zero ids of a label array, components of a boolean one."""
    if crop.dtype == bool:
        return int(ndi.label(crop)[1])
    return int(np.count_nonzero(np.unique(crop)))


def _check_consistency(correction_type: str, original: np.ndarray, corrected: np.ndarray) -> None:
    """Refuse masks that do not fit ``correction_type`` (both are the bounding-box crops): the
    kind's :attr:`~segmentation.core.editing.EditKind.consistent` rule on the counts of nuclei."""
    kind = EDIT_KINDS[correction_type]
    n_orig, n_corr = _n_objects(original), _n_objects(corrected)
    same = np.array_equal(original, corrected)
    if not kind.changes_voxels:
        if not same or not kind.consistent(n_orig, n_corr):
            raise InvalidInputError(f"{kind.rule}; got {n_orig} nucleus/nuclei before and {n_corr} after"
                                    + ("" if same else ", and the masks differ"))
        return
    if same:
        raise InvalidInputError("the corrected mask equals the original: nothing was corrected")
    if not kind.consistent(n_orig, n_corr):
        raise InvalidInputError(f"{kind.rule}; got {n_orig} nucleus/nuclei before and {n_corr} after")


def _bbox(original: np.ndarray, corrected: np.ndarray) -> tuple[tuple[int, int], ...]:
    union = (original != 0) | (corrected != 0)
    boxes = ndi.find_objects(union.astype(np.uint8))
    if not boxes:
        raise InvalidInputError("both masks are empty: nothing was corrected")
    return tuple((int(s.start), int(s.stop)) for s in boxes[0])
