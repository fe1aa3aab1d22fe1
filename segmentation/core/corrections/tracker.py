"""The store of corrections, :class:`CorrectionTracker`: files, atomic writes, locking.

Storage (the EZQUANT guide's layout) under ``<storage_dir>`` of :class:`CorrectionTracker`::

    corrections.json      {"format": "ezquant-corrections", "version": 1, "records": [...]}
    corrections.jsonl     the records made since corrections.json was last written, one a line
    corr_000001.npz       the masks of record 1
    corrections.lock      taken with fcntl.flock while a record is written (shared while read)

A record costs what it adds, whatever the store's history: it is appended to the journal
``corrections.jsonl`` (one JSON object a line, the entry ``corrections.json`` would hold), and
``corrections.json`` is rewritten only when the store is read whole (:meth:`CorrectionTracker.records`
folds the journal into it, as :meth:`CorrectionTracker.compact` does) and by the store's first
record. So ``corrections.json`` holds every record up to its last fold, and the journal those
since; a reader of the files who wants every record reads both (or calls ``compact()`` first).
A store written before the journal existed is a ``corrections.json`` alone, and reads as it
did. Each process keeps what it parsed of a store and reads only what was appended since
(keyed by the files' inode, size and times), so :meth:`CorrectionTracker.get` and the id of the
next record do not grow with the history either.

Each ``corr_<id>.npz`` (compressed) holds the two masks cropped to the bounding box of their
union, not the whole image: ``original`` and ``corrected`` (the crop, dtype as given),
``offset`` (the crop's start per axis) and ``shape`` (the full image shape), so a corrected
30-pixel nucleus of a 2048 x 2048 image costs a few hundred bytes, not 4 MB.
:meth:`CorrectionTracker.load` puts the crops back into full-size arrays.

A record made with ``image=`` also keeps what an adapter needs to learn from it (a few tens of
kB): ``image`` (float32, the image around the bounding box grown by ``image_margin`` pixels in
y and x and 2 planes in z, normalised like the engine: ``image_range`` = the intensities mapped
to 0 and 1, by default the 1st and 99th percentiles of the image given), ``image_offset``, and
with ``context_labels=`` also ``context`` (the whole label image after the correction over the
same window, so the corrected nuclei's neighbours are known). :meth:`CorrectionTracker.load_image`
returns them as an :class:`ImageCrop`.

Writes are safe against crashes and against other processes: the npz and the JSON are each
written to a temporary file in the same folder and moved into place with ``os.replace``
(atomic on POSIX); a journal line is appended in one ``write`` and synced, after its npz. Every
write happens under an exclusive ``fcntl.flock`` on ``corrections.lock`` (reads take it
shared), so two workers recording at once both keep their record. A crash part way through an
append leaves a torn last line: it is ignored with a warning (its record was never returned to
anyone) and cut off by the next record, and no earlier record is lost. A crash between a fold's
new ``corrections.json`` and the journal's truncation leaves journal lines equal to entries of
the JSON: they are skipped. A ``corrections.json`` or a journal line that is not what this
module wrote (bad JSON, a missing field, a duplicate id) raises :class:`CorrectionStorageError`
naming the file: records are never dropped silently.

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
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import InvalidInputError, InvalidParameterError, SegmentationError
from .records import (
    CorrectionRecord,
    _bbox,
    _check_consistency,
    _check_image_id,
    _check_mask,
    _check_metadata,
    _check_nucleus_id,
    _check_type,
    _utc_now,
)

try:  # POSIX (Linux, macOS, the Docker image); without it the package still imports
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

_FORMAT = "ezquant-corrections"
_VERSION = 1
_INDEX = "corrections.json"
_JOURNAL = "corrections.jsonl"
_LOCK = "corrections.lock"


class CorrectionStorageError(SegmentationError):
    """The corrections folder holds something this module did not write (or a file is missing)."""


@dataclass(frozen=True, eq=False)
class ImageCrop:
    """The image around a correction, as an adapter trains on it.

    Attributes
    ----------
    image : (Y, X) or (Z, Y, X) float32
        Normalised like the engine does (the whole image's ``image_range`` mapped to 0..1).
    offset : tuple of int
        Start of the crop per axis, in the record's frame (the masks' full shape). It may be
        negative, and the crop may reach past that shape: a record may hold its masks over
        just the edited region (as the web app records them) while the image around it is
        wider; the masks count as background outside their frame.
    context_labels : int array of ``image``'s shape, or None
        The label image after the correction over the crop, when it was recorded.
    """

    image: np.ndarray
    offset: tuple[int, ...]
    context_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image, np.float32)
        offset = tuple(int(o) for o in self.offset)
        if image.ndim not in (2, 3) or len(offset) != image.ndim:
            raise InvalidInputError(f"an image crop needs a 2D or 3D image and one offset per axis, got "
                                    f"shape {image.shape} and offset {self.offset!r}")
        if self.context_labels is not None and np.asarray(self.context_labels).shape != image.shape:
            raise InvalidInputError(f"context_labels {np.asarray(self.context_labels).shape} and the image crop "
                                    f"{image.shape} differ in shape")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "offset", offset)

    @property
    def window(self) -> tuple[slice, ...]:
        """Where the crop lies in the record's frame."""
        return tuple(slice(o, o + n) for o, n in zip(self.offset, self.image.shape, strict=True))


_Z_MARGIN = 2  # planes of image context above and below a 3D correction


def _image_window(bbox: tuple[tuple[int, int], ...], shape: tuple[int, ...], margin: int) -> tuple[slice, ...]:
    margins = ([_Z_MARGIN] if len(shape) == 3 else []) + [margin, margin]
    return tuple(slice(max(a - m, 0), min(b + m, n)) for (a, b), n, m in zip(bbox, shape, margins, strict=True))


def _image_range(image: np.ndarray, image_range: Any) -> tuple[float, float]:
    if image_range is None:
        lo, hi = np.percentile(image, [1.0, 99.0])
        if hi - lo < 1e-6:  # as the engine's normalisation does for a flat image
            hi = lo + max(float(np.abs(image).max() - lo), 1e-6)
        return float(lo), float(hi)
    try:
        lo, hi = (float(v) for v in image_range)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"image_range must be (low, high), got {image_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise InvalidParameterError(f"image_range must be finite with high > low, got {image_range!r}")
    return lo, hi


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

    @property
    def journal_path(self) -> Path:
        """``<storage_dir>/corrections.jsonl``: the records since ``corrections.json`` was written."""
        return self.storage_dir / _JOURNAL

    # -- reading ---------------------------------------------------------------------------

    def records(self) -> list[CorrectionRecord]:
        """Every record, in the order recorded.

        Reading the store whole also folds the journal into ``corrections.json`` (when no other
        process holds the store's lock; module docstring).

        Raises
        ------
        CorrectionStorageError
            If ``corrections.json`` or the journal is not what this class writes.
        """
        with self._state("fold") as (index, exclusive):
            if exclusive and index.journal_ino is not None:
                try:
                    self._fold(index)
                except OSError as exc:  # a read-only folder: the records are read all the same
                    log.warning("could not fold %s into %s: %s", self.journal_path, self.index_path, exc)
            return [CorrectionRecord.from_dict(entry) for entry in index.entries()]

    def count(self) -> int:
        """Number of records."""
        with self._state("shared") as (index, _):
            return len(index.folded) + len(index.journal)

    def get(self, record_id: int) -> CorrectionRecord:
        """The record with id ``record_id``; ``KeyError`` if there is none."""
        with self._state("shared") as (index, _):
            entry = index.journal.get(record_id) or index.folded.get(record_id)
        if entry is None:
            raise KeyError(f"no correction record {record_id!r} in {self.storage_dir}")
        return CorrectionRecord.from_dict(entry)

    def compact(self) -> None:
        """Fold the journal into ``corrections.json``, so that the JSON alone holds every record.

        Raises
        ------
        CorrectionStorageError
            If ``corrections.json`` or the journal is corrupt (nothing is written then).
        """
        with self._state("exclusive") as (index, _):
            if index.journal_ino is not None:
                self._fold(index)

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

    def load_image(self, record_id: int) -> ImageCrop | None:
        """The image crop (and context labels) stored with a record, or ``None`` if it has none.

        Raises
        ------
        KeyError
            If there is no such record.
        CorrectionStorageError
            If its npz is missing or unreadable.
        """
        record = self.get(record_id)
        path = self.storage_dir / record.file
        try:
            with np.load(path, allow_pickle=False) as npz:
                if "image" not in npz.files:
                    return None
                image = npz["image"]
                offset = tuple(npz["image_offset"].tolist())
                context = npz["context"] if "context" in npz.files else None
        except FileNotFoundError:
            raise CorrectionStorageError(f"{path} of record {record.id} is missing") from None
        except (OSError, KeyError, ValueError) as exc:
            raise CorrectionStorageError(f"{path} of record {record.id} is unreadable: {exc}") from None
        try:
            return ImageCrop(image, offset, context)
        except InvalidInputError as exc:
            raise CorrectionStorageError(f"{path} of record {record.id}: {exc}") from None

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, mode: str = "exclusive") -> Iterator[bool]:
        """Hold the store's lock: ``"exclusive"`` (to write), ``"shared"`` (to read) or
        ``"fold"`` (exclusive if no one holds it, else shared); yields whether it is exclusive."""
        # A flock on a separate lock file (never replaced, unlike the index, whose inode changes
        # on every fold) serialises writes across processes, and readers take it shared, so they
        # never see half of a fold or of an append; the kernel drops it if the process dies. It
        # is re-entrant per thread: a second flock of the same file on another descriptor would
        # wait on the first.
        if fcntl is None:  # pragma: no cover - Windows
            if mode == "exclusive":
                raise CorrectionStorageError(
                    "recording corrections needs POSIX file locks (fcntl); run on Linux or macOS")
            yield False
            return
        held = _held_locks()
        key = _store_key(self.storage_dir)
        if key in held:
            if mode == "exclusive" and not held[key]:
                raise RuntimeError(f"{self.storage_dir}: a write inside a read of the store")
            yield held[key]
            return
        if mode == "exclusive":
            self.storage_dir.mkdir(parents=True, exist_ok=True)
        elif not self.storage_dir.is_dir():
            yield False  # nothing stored yet, and a read makes no folder
            return
        try:
            fh = open(self.storage_dir / _LOCK, "a+b")
        except OSError:
            if mode == "exclusive":
                raise
            yield False  # a read-only folder: no one writes there
            return
        with fh:
            exclusive = mode != "shared"
            if mode == "fold":
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    exclusive = False
            if mode != "fold" or not exclusive:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            held[key] = exclusive
            try:
                yield exclusive
            finally:
                del held[key]
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _state(self, mode: str) -> Iterator[tuple[_Parsed, bool]]:
        """Under the lock (``mode`` as :meth:`_locked`): what this process parsed of the store,
        brought up to date, and whether the lock is exclusive."""
        with self._locked(mode) as exclusive:
            parsed = _parsed_store(self.storage_dir)
            with parsed.lock:
                parsed.refresh(self.storage_dir)
                yield parsed, exclusive

    def _fold(self, parsed: _Parsed, extra: CorrectionRecord | None = None) -> None:
        """Under the exclusive lock: write ``corrections.json`` with every record (and ``extra``),
        then remove the journal. A crash in between leaves journal lines equal to entries of
        the new JSON, which reading skips."""
        entries = list(parsed.entries()) + ([extra.to_dict()] if extra is not None else [])
        payload = json.dumps({"format": _FORMAT, "version": _VERSION, "records": entries}, indent=1).encode("utf-8")
        _write_atomic(self.index_path, lambda fh: fh.write(payload))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal_path)
        parsed.folded_as(self.storage_dir, entries)

    def record(self, image_id: str, nucleus_id: int, original_mask: Any, corrected_mask: Any,
               correction_type: str, metadata: dict[str, Any] | None = None, *, image: Any = None,
               image_range: Any = None, context_labels: Any = None, image_margin: int = 32) -> CorrectionRecord:
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
        correction_type : {'split', 'merge', 'delete', 'add', 'modify', 'confirm'}
            ``delete``: corrected is empty; ``add``: original is empty; ``split``: corrected
            holds at least two nuclei; ``merge``: original holds at least two; ``modify``: both
            non-empty; ``confirm`` (a person checked the nucleus: a positive example): both
            equal and non-empty. Nuclei are counted as distinct ids of a label array, or connected
            components of a boolean one.
        metadata : dict, optional
            JSON-serialisable (who, which model ...). An adapter reads ``diameter`` (the
            segmentation's nucleus diameter in pixels) and ``anisotropy`` (z step over pixel
            size) from it when present.
        image : array of the masks' shape, optional
            The image the masks were drawn on; its crop around the correction is stored, so an
            adapter can be trained on the record (see the module docstring). Never modified.
        image_range : (low, high), optional
            The intensities the engine mapped to 0 and 1 when it segmented the whole image;
            by default the 1st and 99th percentiles of ``image``, right when ``image`` is the
            whole image or volume.
        context_labels : int array of the masks' shape, optional
            The whole label image after the correction (stored over the same crop).
        image_margin : int >= 0
            Pixels of image kept around the bounding box in y and x.

        Returns
        -------
        CorrectionRecord

        Raises
        ------
        InvalidParameterError
            On an unknown correction type, a bad ``image_id``/``nucleus_id`` or metadata that is
            not JSON-serialisable.
        InvalidInputError
            On masks of different shapes, a non-integer dtype, masks that do not fit the
            correction type, or an image or context of another shape (or with NaN).
        CorrectionStorageError
            If the existing ``corrections.json`` is corrupt (nothing is written then).
        """
        correction_type = _check_type(correction_type)
        image_id = _check_image_id(image_id)
        nucleus_id = _check_nucleus_id(nucleus_id)
        metadata = _check_metadata(metadata)
        original, corrected = _check_mask_pair(original_mask, corrected_mask)
        bbox = _bbox(original, corrected)
        crops = _mask_crops(correction_type, original, corrected, bbox)
        if image is not None:
            crops.update(_image_crops(original.shape, bbox, image, image_range, context_labels, image_margin))
        elif context_labels is not None:
            raise InvalidParameterError("context_labels are stored with the image crop: give image= too")
        return self._append(lambda new_id: CorrectionRecord(
            id=new_id, image_id=image_id, nucleus_id=nucleus_id, correction_type=correction_type,
            timestamp=_utc_now(), bbox=bbox, shape=original.shape, metadata=metadata,
            file=f"corr_{new_id:06d}.npz"), crops)

    def _append(self, make_record: Callable[[int], CorrectionRecord], crops: dict[str, np.ndarray]) -> CorrectionRecord:
        """Write the record ``make_record(next id)`` and its crops under the lock: the npz first,
        then its journal line (the npz is removed again when the line cannot be written). The
        store's first record writes ``corrections.json`` instead, so the guide's file is there
        from the start."""
        with self._state("exclusive") as (parsed, _):
            record = make_record(parsed.next_id(self.storage_dir))
            npz_path = self.storage_dir / record.file
            _write_atomic(npz_path, lambda fh: np.savez_compressed(fh, **crops))
            try:
                if parsed.index_key is None:
                    self._fold(parsed, record)
                else:
                    parsed.append(self.storage_dir, record)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    npz_path.unlink()
                raise
            parsed.recorded(self.storage_dir, record.id)
        return record


# ---------------------------------------------------------------------------------------------
# what a process parsed of a store


def _file_key(path: Path) -> tuple[int, int, int, int] | None:
    """Inode, size and times of ``path`` (``None`` if absent): a file replaced or rewritten has
    another key."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _store_key(storage_dir: Path) -> str:
    return os.path.realpath(storage_dir)


_HELD = threading.local()


def _held_locks() -> dict[str, bool]:
    """The stores whose lock this thread holds (store -> exclusive)."""
    if not hasattr(_HELD, "stores"):
        _HELD.stores = {}
    return _HELD.stores


_UNREAD = object()
_SEAL = 64


class _Parsed:
    """What one process read of one store: the entries of ``corrections.json`` and of the
    journal as ``to_dict()`` gives them (checked once; each caller gets a record of its own
    made from them), and how far the files were read. :meth:`refresh` reads only what changed
    since: the JSON again when its key changed, else the journal's new whole lines. Used under
    the store's lock and ``self.lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.index_key: Any = _UNREAD
        self.folded: dict[int, dict[str, Any]] = {}
        self.journal_ino: int | None = None  # None: no journal file
        self.journal_end = 0                 # bytes of it read, whole lines
        self.journal_lines = 0
        self.journal_seal = b""              # the last bytes read (up to _SEAL)
        self.journal: dict[int, dict[str, Any]] = {}
        self.top = 0                         # the largest record id
        self.torn: tuple[int, int] | None = None
        self.folder_key: int | None = None   # the folder's mtime when npz_top was found
        self.npz_top = 0

    def entries(self) -> Iterator[dict[str, Any]]:
        yield from self.folded.values()
        yield from self.journal.values()

    def _forget_journal(self) -> None:
        self.journal_ino, self.journal_end, self.journal_lines, self.journal = None, 0, 0, {}
        self.journal_seal = b""
        self.top = max(self.folded, default=0)

    def refresh(self, storage_dir: Path) -> None:
        index = storage_dir / _INDEX
        key = _file_key(index)  # before reading: a file replaced meanwhile is read again next time
        if key != self.index_key:
            self.folded = _read_index(index) if key is not None else {}
            self.index_key = key
            self._forget_journal()
        journal = storage_dir / _JOURNAL
        try:
            fh = open(journal, "rb")
        except FileNotFoundError:
            if self.journal_ino is not None:
                self._forget_journal()
            return
        with fh:
            st = os.fstat(fh.fileno())
            size, ino = st.st_size, st.st_ino
            if ino == self.journal_ino and size >= self.journal_end and self.journal_end:
                # Appends never change what was read: the bytes before where reading stopped
                # are the same, unless the file was rewritten by hand (then it is read again).
                fh.seek(self.journal_end - len(self.journal_seal))
                if fh.read(len(self.journal_seal)) != self.journal_seal:
                    self._forget_journal()
            if ino != self.journal_ino or size < self.journal_end:
                self._forget_journal()
                self.journal_ino = ino
            if size == self.journal_end:
                return
            fh.seek(self.journal_end)
            tail = fh.read(size - self.journal_end)
        whole = tail.rfind(b"\n") + 1
        added: dict[int, dict[str, Any]] = {}  # kept only if every new line is a record
        lines = tail[:whole].split(b"\n")[:-1]
        for number, line in enumerate(lines, start=self.journal_lines + 1):
            if line.strip():
                self._add_line(journal, number, line, added)
        self.journal.update(added)
        self.top = max(self.top, max(added, default=0))
        self.journal_lines += len(lines)
        self.journal_end += whole
        self.journal_seal = (self.journal_seal + tail[:whole])[-_SEAL:]
        if whole < len(tail) and self.torn != (ino, self.journal_end):
            # A crash part way through an append (module docstring): that record was never
            # returned to anyone, and the next record cuts the line off.
            log.warning("%s: its last line (%d bytes) is cut short and ignored", journal, len(tail) - whole)
            self.torn = (ino, self.journal_end)

    def _add_line(self, journal: Path, number: int, line: bytes, added: dict[int, dict[str, Any]]) -> None:
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise CorrectionStorageError(f"{journal}: line {number} is not valid JSON ({exc}); fix or restore it") \
                from None
        try:
            record = CorrectionRecord.from_dict(entry)
        except InvalidParameterError as exc:
            raise CorrectionStorageError(f"{journal}: line {number} is an invalid record: {exc}") from None
        entry = record.to_dict()
        if record.id in self.folded:
            if self.folded[record.id] == entry:  # folded already: a crash came before the journal's removal
                return
            raise CorrectionStorageError(f"{journal}: record id {record.id} (line {number}) is in "
                                         f"{journal.with_name(_INDEX)} already, different")
        if record.id in self.journal or record.id in added:
            raise CorrectionStorageError(f"{journal}: record id {record.id} appears twice (line {number})")
        added[record.id] = entry

    def next_id(self, storage_dir: Path) -> int:
        """Above every record and above any leftover ``corr_*.npz``, so a hand-removed entry
        never gets its file overwritten. The folder is listed again only when it changed."""
        folder = os.stat(storage_dir).st_mtime_ns
        if folder != self.folder_key:
            top = 0
            with os.scandir(storage_dir) as names:
                for name in names:
                    if name.name.startswith("corr_") and name.name.endswith(".npz"):
                        with contextlib.suppress(ValueError):
                            top = max(top, int(name.name[5:-4]))
            self.folder_key, self.npz_top = folder, top
        return max(self.top, self.npz_top) + 1

    def append(self, storage_dir: Path, record: CorrectionRecord) -> None:
        """Append ``record``'s line to the journal, in one write, synced; cut off a torn last
        line first. On any failure the journal is cut back to what it was."""
        entry = record.to_dict()
        line = (json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
        path = storage_dir / _JOURNAL
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            st = os.fstat(fd)
            if self.journal_ino not in (None, st.st_ino):
                raise CorrectionStorageError(f"{path} was replaced while the store was locked")
            if st.st_size > self.journal_end:
                log.warning("%s: cutting off its last line (%d bytes), cut short by an earlier crash", path,
                            st.st_size - self.journal_end)
                os.ftruncate(fd, self.journal_end)
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self.journal_end)
                raise
        finally:
            os.close(fd)
        self.journal_ino = st.st_ino
        self.journal_end += len(line)
        self.journal_seal = (self.journal_seal + line)[-_SEAL:]
        self.journal_lines += 1
        self.journal[record.id] = entry
        self.top = max(self.top, record.id)

    def folded_as(self, storage_dir: Path, entries: list[dict[str, Any]]) -> None:
        """After a fold: ``corrections.json`` holds ``entries`` and there is no journal."""
        self.folded = {entry["id"]: entry for entry in entries}
        self.index_key = _file_key(storage_dir / _INDEX)
        self._forget_journal()

    def recorded(self, storage_dir: Path, record_id: int) -> None:
        """After a record: its npz is the highest; the folder's mtime now includes it."""
        self.npz_top = max(self.npz_top, record_id)
        self.folder_key = os.stat(storage_dir).st_mtime_ns


def _read_index(path: Path) -> dict[int, dict[str, Any]]:
    """The entries of ``corrections.json`` by id (as ``to_dict()`` gives them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
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
    entries: dict[int, dict[str, Any]] = {}
    for k, entry in enumerate(data["records"]):
        try:
            record = CorrectionRecord.from_dict(entry)
        except InvalidParameterError as exc:
            raise CorrectionStorageError(f"{path}: record #{k} is invalid: {exc}") from None
        if record.id in entries:
            raise CorrectionStorageError(f"{path}: record id {record.id} appears twice")
        entries[record.id] = record.to_dict()
    return entries


_PARSED_STORES = 32
_PARSED: OrderedDict[str, _Parsed] = OrderedDict()
_PARSED_LOCK = threading.Lock()


def _parsed_store(storage_dir: Path) -> _Parsed:
    """This process' :class:`_Parsed` of a store (the last 32 stores used)."""
    key = _store_key(storage_dir)
    with _PARSED_LOCK:
        parsed = _PARSED.get(key)
        if parsed is None:
            parsed = _PARSED[key] = _Parsed()
            while len(_PARSED) > _PARSED_STORES:
                _PARSED.popitem(last=False)
        else:
            _PARSED.move_to_end(key)
        return parsed


def _check_mask_pair(original_mask: Any, corrected_mask: Any) -> tuple[np.ndarray, np.ndarray]:
    original = _check_mask(original_mask, "original_mask")
    corrected = _check_mask(corrected_mask, "corrected_mask")
    if original.shape != corrected.shape:
        raise InvalidInputError(f"original_mask {original.shape} and corrected_mask {corrected.shape} differ in shape")
    return original, corrected


def _mask_crops(correction_type: str, original: np.ndarray, corrected: np.ndarray,
                bbox: tuple[tuple[int, int], ...]) -> dict[str, np.ndarray]:
    """The npz entries of the masks, cropped to ``bbox``, once they fit ``correction_type``."""
    box = tuple(slice(a, b) for a, b in bbox)
    # Outside the box both masks are 0, so the crops decide consistency (and cost little).
    _check_consistency(correction_type, original[box], corrected[box])
    return {"original": np.ascontiguousarray(original[box]), "corrected": np.ascontiguousarray(corrected[box]),
            "offset": np.array([a for a, _ in bbox], np.int64), "shape": np.array(original.shape, np.int64)}


def _image_crops(shape: tuple[int, ...], bbox: tuple[tuple[int, int], ...], image: Any, image_range: Any,
                 context_labels: Any, margin: Any) -> dict[str, np.ndarray]:
    """The npz entries of a record's image crop (see the module docstring)."""
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise InvalidParameterError(f"image_margin must be a whole number >= 0, got {margin!r}")
    img = np.asarray(image)
    if img.shape != shape:
        raise InvalidInputError(f"image {img.shape} and the masks {shape} differ in shape")
    if not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise InvalidInputError(f"image must hold real numbers, got dtype {img.dtype}")
    lo, hi = _image_range(img, image_range)
    window = _image_window(bbox, shape, int(margin))
    crop = ((img[window].astype(np.float32) - lo) / (hi - lo)).astype(np.float32)
    if not np.isfinite(crop).all():
        raise InvalidInputError("image contains NaN or infinite values around the correction")
    out = {"image": crop, "image_offset": np.array([w.start for w in window], np.int64),
           "image_range": np.array([lo, hi], np.float64)}
    if context_labels is not None:
        context = _check_mask(context_labels, "context_labels")
        if context.shape != shape:
            raise InvalidInputError(f"context_labels {context.shape} and the masks {shape} differ in shape")
        out["context"] = np.ascontiguousarray(context[window])
    return out
