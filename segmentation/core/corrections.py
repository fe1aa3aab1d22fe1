"""Record the corrections people make to segmented nuclei, and decide when to retrain.

Storage (the EZQUANT guide's layout) under ``<storage_dir>`` of :class:`CorrectionTracker`::

    corrections.json      {"format": "ezquant-corrections", "version": 1, "records": [...]}
    corr_000001.npz       the masks of record 1
    corrections.lock      taken with fcntl.flock while a record is written

Each ``corr_<id>.npz`` (compressed) holds the two masks cropped to the bounding box of their
union, not the whole image: ``original`` and ``corrected`` (the crop, dtype as given),
``offset`` (the crop's start per axis) and ``shape`` (the full image shape), so a corrected
30-pixel nucleus of a 2048 x 2048 image costs a few hundred bytes, not 4 MB.
:meth:`CorrectionTracker.load` puts the crops back into full-size arrays.

Writes are safe against crashes and against other processes: the npz and the JSON are each
written to a temporary file in the same folder and moved into place with ``os.replace``
(atomic on POSIX), and the read-modify-write of ``corrections.json`` happens under an exclusive
``fcntl.flock`` on ``corrections.lock``, so two workers recording at once both keep their
record. A ``corrections.json`` that is not what this module wrote (bad JSON, a missing field, a
duplicate id) raises :class:`CorrectionStorageError` naming the file: records are never dropped
silently.

Examples
--------
>>> import tempfile
>>> tracker = CorrectionTracker(tempfile.mkdtemp())
>>> before = np.zeros((64, 64), bool); before[10:20, 10:30] = True
>>> after = np.zeros((64, 64), np.uint8); after[10:20, 10:19] = 1; after[10:20, 21:30] = 2
>>> record = tracker.record("img_001", 7, before, after, "split", {"user": "alice"})
>>> record.bbox, tracker.count()
(((10, 20), (10, 30)), 1)
>>> original, corrected = tracker.load(record.id)
>>> bool((original == before).all()), int(corrected.max())
(True, 2)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from scipy import ndimage as ndi

from .errors import InvalidInputError, InvalidParameterError, SegmentationError
from .uncertainty import UncertaintyEstimator

try:  # POSIX (Linux, macOS, the Docker image); without it the package still imports
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "CORRECTION_TYPES", "ActiveLearningManager", "CorrectionRecord", "CorrectionStorageError", "CorrectionTracker",
]

CORRECTION_TYPES = ("split", "merge", "delete", "add", "modify")

_FORMAT = "ezquant-corrections"
_VERSION = 1
_INDEX = "corrections.json"
_LOCK = "corrections.lock"


class CorrectionStorageError(SegmentationError):
    """The corrections folder holds something this module did not write (or a file is missing)."""


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
        One of :data:`CORRECTION_TYPES`.
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
                or any(not 0 <= a < b <= s for (a, b), s in zip(bbox, shape)):
            raise InvalidParameterError(f"bbox {self.bbox!r} does not fit in shape {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "metadata", _check_metadata(self.metadata))
        if not isinstance(self.file, str):
            raise InvalidParameterError(f"file must be a string, got {self.file!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["bbox"] = [list(b) for b in self.bbox]
        data["shape"] = list(self.shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CorrectionRecord":
        if not isinstance(data, dict):
            raise InvalidParameterError("a correction record must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted(names - set(data))
        if unknown or missing:
            raise InvalidParameterError(
                "bad correction record: " + "; ".join(
                    part for part in (f"unknown fields {unknown}" if unknown else "",
                                      f"missing fields {missing}" if missing else "") if part))
        return cls(**data)


# ---------------------------------------------------------------------------------------------
# validation


def _check_type(correction_type: Any) -> str:
    if correction_type not in CORRECTION_TYPES:
        raise InvalidParameterError(
            f"unknown correction type {correction_type!r}; choose one of {', '.join(CORRECTION_TYPES)}")
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
    """Refuse masks that do not fit ``correction_type`` (both are the bounding-box crops)."""
    n_orig, n_corr = _n_objects(original), _n_objects(corrected)
    if np.array_equal(original, corrected):
        raise InvalidInputError("the corrected mask equals the original: nothing was corrected")
    rules = {
        "delete": (n_orig >= 1 and n_corr == 0, "'delete' needs a non-empty original and an empty corrected mask"),
        "add": (n_orig == 0 and n_corr >= 1, "'add' needs an empty original and a non-empty corrected mask"),
        "split": (n_orig >= 1 and n_corr >= 2,
                  "'split' needs a non-empty original and at least two nuclei in the corrected mask "
                  "(distinct ids, or separate components of a boolean mask)"),
        "merge": (n_orig >= 2 and n_corr >= 1,
                  "'merge' needs at least two nuclei in the original (distinct ids, or separate components "
                  "of a boolean mask) and a non-empty corrected mask"),
        "modify": (n_orig >= 1 and n_corr >= 1, "'modify' needs both masks non-empty"),
    }
    ok, message = rules[correction_type]
    if not ok:
        raise InvalidInputError(f"{message}; got {n_orig} nucleus/nuclei before and {n_corr} after")


def _bbox(original: np.ndarray, corrected: np.ndarray) -> tuple[tuple[int, int], ...]:
    union = (original != 0) | (corrected != 0)
    boxes = ndi.find_objects(union.astype(np.uint8))
    if not boxes:
        raise InvalidInputError("both masks are empty: nothing was corrected")
    return tuple((int(s.start), int(s.stop)) for s in boxes[0])


# ---------------------------------------------------------------------------------------------
# files


def _write_atomic(path: Path, write) -> None:
    """Write through ``write(file_object)`` to a temporary file beside ``path``, then os.replace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class CorrectionTracker:
    """Append-only store of corrections: metadata in ``corrections.json``, masks in ``corr_<id>.npz``.

    Parameters
    ----------
    storage_dir : str or Path
        Folder of the store; created on the first :meth:`record`.
    """

    def __init__(self, storage_dir: str | os.PathLike[str] = "./active_learning/corrections"):
        self.storage_dir = Path(storage_dir)

    def __repr__(self) -> str:
        return f"CorrectionTracker({str(self.storage_dir)!r})"

    @property
    def index_path(self) -> Path:
        """``<storage_dir>/corrections.json``."""
        return self.storage_dir / _INDEX

    # -- reading ---------------------------------------------------------------------------

    def _read(self) -> list[CorrectionRecord]:
        path = self.index_path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorrectionStorageError(f"{path} is not valid JSON ({exc}); fix or restore it") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("records"), list):
            raise CorrectionStorageError(
                f"{path} is not an EZQuant corrections index "
                f'(expected {{"format": "{_FORMAT}", "version": {_VERSION}, "records": [...]}})')
        if data.get("version") != _VERSION:
            raise CorrectionStorageError(f"{path} has version {data.get('version')!r}; this code reads {_VERSION}")
        records: list[CorrectionRecord] = []
        seen: set[int] = set()
        for k, entry in enumerate(data["records"]):
            try:
                record = CorrectionRecord.from_dict(entry)
            except InvalidParameterError as exc:
                raise CorrectionStorageError(f"{path}: record #{k} is invalid: {exc}") from None
            if record.id in seen:
                raise CorrectionStorageError(f"{path}: record id {record.id} appears twice")
            seen.add(record.id)
            records.append(record)
        return records

    def records(self) -> list[CorrectionRecord]:
        """Every record, in the order recorded.

        Raises
        ------
        CorrectionStorageError
            If ``corrections.json`` is not what this class writes.
        """
        # No lock: the index is only ever replaced whole (os.replace), so a reader sees the old
        # or the new file, never half of one.
        return self._read()

    def count(self) -> int:
        """Number of records."""
        return len(self._read())

    def get(self, record_id: int) -> CorrectionRecord:
        """The record with id ``record_id``; ``KeyError`` if there is none."""
        for record in self._read():
            if record.id == record_id:
                return record
        raise KeyError(f"no correction record {record_id!r} in {self.storage_dir}")

    def load(self, record_id: int, *, crop: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The masks of one record.

        Parameters
        ----------
        record_id : int
        crop : bool, optional
            Return only the stored bounding-box crops (``record.bbox``) instead of full-size
            arrays.

        Returns
        -------
        original, corrected : arrays of ``record.shape`` (or the crop), dtype as recorded
            Zero outside the bounding box.

        Raises
        ------
        KeyError
            If there is no such record.
        CorrectionStorageError
            If its npz is missing or does not match the record.
        """
        record = self.get(record_id)
        path = self.storage_dir / record.file
        try:
            with np.load(path, allow_pickle=False) as npz:
                original, corrected = npz["original"], npz["corrected"]
                offset, shape = tuple(npz["offset"].tolist()), tuple(npz["shape"].tolist())
        except FileNotFoundError:
            raise CorrectionStorageError(f"{path} of record {record.id} is missing") from None
        except (OSError, KeyError, ValueError) as exc:
            raise CorrectionStorageError(f"{path} of record {record.id} is unreadable: {exc}") from None
        box = tuple(slice(a, b) for a, b in record.bbox)
        expected = tuple(b - a for a, b in record.bbox)
        if shape != record.shape or offset != tuple(a for a, _ in record.bbox) \
                or original.shape != expected or corrected.shape != expected:
            raise CorrectionStorageError(f"{path} does not match record {record.id} in {self.index_path}")
        if crop:
            return original, corrected
        full_original = np.zeros(record.shape, original.dtype)
        full_corrected = np.zeros(record.shape, corrected.dtype)
        full_original[box] = original
        full_corrected[box] = corrected
        return full_original, full_corrected

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # An exclusive flock on a separate lock file (never replaced, unlike the index, whose
        # inode changes on every write) serialises the read-modify-write of the index across
        # processes; the kernel drops the lock if the process dies.
        if fcntl is None:  # pragma: no cover - Windows
            raise CorrectionStorageError("recording corrections needs POSIX file locks (fcntl); run on Linux or macOS")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        with open(self.storage_dir / _LOCK, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _next_id(self, records: list[CorrectionRecord]) -> int:
        # Also above any leftover corr_*.npz, so a hand-removed index entry never gets its file
        # overwritten.
        top = max((r.id for r in records), default=0)
        for path in self.storage_dir.glob("corr_*.npz"):
            with contextlib.suppress(ValueError):
                top = max(top, int(path.stem[5:]))
        return top + 1

    def record(self, image_id: str, nucleus_id: int, original_mask: Any, corrected_mask: Any,
               correction_type: str, metadata: dict[str, Any] | None = None) -> CorrectionRecord:
        """Store one correction and return its record.

        Parameters
        ----------
        image_id : str
            The image or volume the nucleus belongs to.
        nucleus_id : int >= 0
            The nucleus' id in the segmentation (for ``add``, the new id).
        original_mask, corrected_mask : (Y, X) or (Z, Y, X) bool or int arrays, same shape
            The region before and after the correction, in full-image coordinates: boolean
            masks or label arrays (0 = background). Never modified.
        correction_type : {'split', 'merge', 'delete', 'add', 'modify'}
            ``delete``: corrected is empty; ``add``: original is empty; ``split``: corrected
            holds at least two nuclei; ``merge``: original holds at least two; ``modify``: both
            non-empty. Nuclei are counted as distinct ids of a label array, or connected
            components of a boolean one.
        metadata : dict, optional
            JSON-serialisable (who, which model ...).

        Returns
        -------
        CorrectionRecord

        Raises
        ------
        InvalidParameterError
            On an unknown correction type, a bad ``image_id``/``nucleus_id`` or metadata that is
            not JSON-serialisable.
        InvalidInputError
            On masks of different shapes, a non-integer dtype, or masks that do not fit the
            correction type.
        CorrectionStorageError
            If the existing ``corrections.json`` is corrupt (nothing is written then).
        """
        correction_type = _check_type(correction_type)
        image_id = _check_image_id(image_id)
        nucleus_id = _check_nucleus_id(nucleus_id)
        metadata = _check_metadata(metadata)
        original = _check_mask(original_mask, "original_mask")
        corrected = _check_mask(corrected_mask, "corrected_mask")
        if original.shape != corrected.shape:
            raise InvalidInputError(
                f"original_mask {original.shape} and corrected_mask {corrected.shape} differ in shape")
        bbox = _bbox(original, corrected)
        box = tuple(slice(a, b) for a, b in bbox)
        # Outside the box both masks are 0, so the crops decide consistency (and cost little).
        _check_consistency(correction_type, original[box], corrected[box])
        crops = {
            "original": np.ascontiguousarray(original[box]),
            "corrected": np.ascontiguousarray(corrected[box]),
            "offset": np.array([a for a, _ in bbox], np.int64),
            "shape": np.array(original.shape, np.int64),
        }

        with self._locked():
            records = self._read()
            new_id = self._next_id(records)
            record = CorrectionRecord(id=new_id, image_id=image_id, nucleus_id=nucleus_id,
                                      correction_type=correction_type, timestamp=_utc_now(), bbox=bbox,
                                      shape=original.shape, metadata=metadata, file=f"corr_{new_id:06d}.npz")
            npz_path = self.storage_dir / record.file
            _write_atomic(npz_path, lambda fh: np.savez_compressed(fh, **crops))
            index = {"format": _FORMAT, "version": _VERSION,
                     "records": [r.to_dict() for r in records] + [record.to_dict()]}
            payload = json.dumps(index, indent=1).encode("utf-8")
            try:
                _write_atomic(self.index_path, lambda fh: fh.write(payload))
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    npz_path.unlink()
                raise
        return record


# ---------------------------------------------------------------------------------------------


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

