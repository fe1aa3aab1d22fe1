"""People's work over the model's: curated nuclei kept through a new segmentation, and a
rejected edit taken back out of labels that may have been edited since.

=================  =========================================================================
keep_curated       a new segmentation in which the nuclei people made, changed or checked
                   stay exactly as they are and the model fills in everything else
CuratedPaste       the same, over a volume read a chunk at a time (blockwise segmentation)
revert_edit        the labels with one edit's nuclei as they were before it, whatever was
                   edited since (and whether anything was: ``clean``)
=================  =========================================================================

Conventions as in :mod:`.editing`: label arrays of any dimension (normally (Z, Y, X)),
integer ids, 0 = background; inputs are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputError, InvalidParameterError

__all__ = ["CuratedMerge", "CuratedPaste", "Revert", "keep_curated", "revert_edit"]


def _ids(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    return ids[ids != 0]


def _check_labels(labels, what: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.dtype.kind not in "ui":
        raise InvalidInputError(f"{what} must be integer labels (0 = background), got dtype {arr.dtype}")
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise InvalidInputError(f"{what} contain negative ids")
    return arr


@dataclass(frozen=True, eq=False)
class CuratedMerge:
    """What :func:`keep_curated` made.

    Attributes
    ----------
    labels : uint32 array of the inputs' shape
        The kept nuclei with their own ids, the model's other nuclei numbered after them.
    kept : tuple of int
        Ids of the kept nuclei (as in ``curated`` and in ``labels``).
    model_ids : dict
        Model id -> its id in ``labels``, for every model nucleus that stays (whole or trimmed).
    dropped : tuple of int
        Model ids left out: at least ``min_overlap`` of their voxels lay under kept nuclei or
        where people erased nuclei.
    trimmed : tuple of int
        Model ids that stay but lost the voxels they shared with kept nuclei or erased places.
    """

    labels: np.ndarray
    kept: tuple[int, ...]
    model_ids: dict[int, int]
    dropped: tuple[int, ...]
    trimmed: tuple[int, ...]


def keep_curated(labels, curated, *, erased=None, min_overlap: float = 0.5) -> CuratedMerge:
    """A new segmentation ``labels`` with the nuclei of ``curated`` kept voxel for voxel.

    Parameters
    ----------
    labels : int array, 0 = background
        The model's new labels. Not modified.
    curated : int array of the same shape
        The nuclei people made, changed or checked, with their ids (0 elsewhere). Not modified.
    erased : bool array of the same shape, optional
        Where people deleted nuclei: background a person chose, kept as background.
    min_overlap : float in (0, 1]
        A model nucleus with at least this fraction of its voxels under kept nuclei or erased
        places is the same object a person already decided on: it is dropped. Below it the
        model nucleus stays without those voxels (the person's nucleus wins where they overlap).

    Returns
    -------
    CuratedMerge

    See Also
    --------
    CuratedPaste : the same rule over a volume read a chunk at a time.

    Examples
    --------
    >>> model = np.array([[1, 1, 0, 2, 2]])
    >>> person = np.array([[0, 7, 7, 0, 0]])
    >>> merged = keep_curated(model, person)
    >>> merged.labels.tolist(), merged.dropped, merged.model_ids
    ([[0, 7, 7, 8, 8]], (1,), {2: 8})
    """
    paste = CuratedPaste(min_overlap=min_overlap)
    paste.count(labels, curated, erased=erased)
    paste.decide()
    out = paste.paste(labels, curated, erased=erased)
    return CuratedMerge(labels=out, kept=paste.kept, model_ids=paste.model_ids, dropped=paste.dropped,
                        trimmed=paste.trimmed)


class CuratedPaste:
    """:func:`keep_curated`'s rule over a volume too large to hold, a chunk at a time.

    Two passes over the same chunks (any partition of the volume: planes, blocks): first
    :meth:`count` each chunk (how many voxels of each model nucleus there are, and how many lie
    under kept nuclei or erased places), then :meth:`decide` once (which model nuclei are
    dropped, and the new ids of those that stay), then :meth:`paste` each chunk. Pasted
    chunks put together are exactly what :func:`keep_curated` gives on the whole arrays; what
    it holds is per-nucleus counts, never a chunk beyond the call.

    Examples
    --------
    >>> model = np.array([[1, 1, 0, 2, 2]])
    >>> person = np.array([[0, 7, 7, 0, 0]])
    >>> paste = CuratedPaste()
    >>> for half in (np.s_[:, :3], np.s_[:, 3:]):
    ...     paste.count(model[half], person[half])
    >>> paste.decide()
    >>> [paste.paste(model[h], person[h]).tolist() for h in (np.s_[:, :3], np.s_[:, 3:])]
    [[[0, 7, 7]], [[8, 8]]]
    """

    def __init__(self, *, min_overlap: float = 0.5) -> None:
        if isinstance(min_overlap, bool) or not isinstance(min_overlap, (int, float)) or not 0 < min_overlap <= 1:
            raise InvalidParameterError(f"min_overlap must lie in (0, 1], got {min_overlap!r}")
        self.min_overlap = float(min_overlap)
        self._sizes = np.zeros(1, np.int64)
        self._under = np.zeros(1, np.int64)
        self._kept_ids: set[int] = set()
        self._lookup: np.ndarray | None = None
        self.kept: tuple[int, ...] = ()
        self.model_ids: dict[int, int] = {}
        self.dropped: tuple[int, ...] = ()
        self.trimmed: tuple[int, ...] = ()

    @staticmethod
    def _chunk(labels, curated, erased) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The checked chunk: model, kept, where kept nuclei are, where the model is blocked."""
        model = _check_labels(labels, "labels")
        kept = _check_labels(curated, "curated")
        if model.shape != kept.shape:
            raise InvalidInputError(f"labels {model.shape} and curated {kept.shape} differ in shape")
        taken = kept != 0
        blocked = taken
        if erased is not None:
            erased = np.asarray(erased)
            if erased.shape != model.shape or erased.dtype != bool:
                raise InvalidInputError(f"erased must be a true/false mask of shape {model.shape}, got "
                                        f"{erased.dtype} {erased.shape}")
            blocked = taken | erased
        return model, kept, taken, blocked

    def count(self, labels, curated, *, erased=None) -> None:
        """Add one chunk (arrays of one shape, as in :func:`keep_curated`) to the counts."""
        if self._lookup is not None:
            raise InvalidInputError("count every chunk before decide(); this paste has decided")
        model, kept, _, blocked = self._chunk(labels, curated, erased)
        flat = model.ravel()
        n = max(int(flat.max()) + 1 if flat.size else 1, self._sizes.size)
        self._sizes = np.pad(self._sizes, (0, n - self._sizes.size))
        self._under = np.pad(self._under, (0, n - self._under.size))
        self._sizes += np.bincount(flat, minlength=n)
        self._under += np.bincount(model[blocked], minlength=n)
        self._kept_ids.update(_ids(kept).tolist())

    def decide(self) -> None:
        """Which model nuclei stay (and their new ids, after the kept ones) and which are dropped."""
        sizes, under = self._sizes, self._under
        present = np.nonzero(sizes)[0]
        present = present[present != 0]
        fraction = under[present] / sizes[present]
        stay = present[fraction < self.min_overlap]
        start = max(self._kept_ids) + 1 if self._kept_ids else 1
        if start + len(stay) > 2 ** 32:
            raise InvalidInputError("the kept and the new nuclei need ids above 2**32 - 1")
        lookup = np.zeros(sizes.size, np.uint32)
        lookup[stay] = np.arange(start, start + len(stay), dtype=np.uint32)
        self._lookup = lookup
        self.kept = tuple(sorted(self._kept_ids))
        self.model_ids = dict(zip(stay.tolist(), lookup[stay].tolist(), strict=True))
        self.dropped = tuple(present[fraction >= self.min_overlap].tolist())
        self.trimmed = tuple(stay[under[stay] > 0].tolist())

    def paste(self, labels, curated, *, erased=None) -> np.ndarray:
        """One chunk of the result (uint32): kept nuclei voxel for voxel, erased places empty,
        the staying model nuclei renumbered elsewhere. Chunks must be ones :meth:`count` saw."""
        if self._lookup is None:
            raise InvalidInputError("decide() before pasting: the counts of every chunk are needed first")
        model, kept, taken, blocked = self._chunk(labels, curated, erased)
        if model.size and int(model.max()) >= self._lookup.size:
            raise InvalidInputError(f"labels hold id {int(model.max())}, which no counted chunk held")
        out = self._lookup[model]
        out[blocked] = 0
        out[taken] = kept[taken]
        return out


@dataclass(frozen=True, eq=False)
class Revert:
    """What :func:`revert_edit` made.

    Attributes
    ----------
    labels : array of the inputs' shape and dtype
    clean : bool
        Nothing touched the edit's nuclei since it was made: the result is exactly the labels
        before it (as an undo would give). False: later edits changed those nuclei, or took
        the place or the ids the edit freed; the result restores the edit's original nuclei
        over them anyway.
    renamed : dict
        Original id -> the new id it was restored under, for ids another nucleus holds now.
    """

    labels: np.ndarray
    clean: bool
    renamed: dict[int, int]


def revert_edit(labels, before, after, *, next_id: int) -> Revert:
    """``labels`` with the nuclei of one edit as they were before it, voxel for voxel.

    Parameters
    ----------
    labels : int array
        The labels now (the region of the edit, or more). Not modified.
    before, after : int arrays of the same shape
        The edit's nuclei before and after it, 0 elsewhere (a correction record's masks).
    next_id : int
        The first id free for an original nucleus whose id another nucleus holds now.

    What the edit left and nobody changed since (voxels still equal to ``after``) goes; every
    voxel of ``before`` gets its nucleus back; what later edits made elsewhere stays. An id
    of ``before`` held now by another nucleus outside ``before``'s voxels (not one of the
    edit's own nuclei) is restored under a new id from ``next_id`` on.

    Examples
    --------
    >>> before = np.array([[5, 5, 5, 5]])
    >>> after = np.array([[5, 5, 9, 9]])               # the edit split nucleus 5
    >>> revert_edit(after, before, after, next_id=10).labels.tolist()
    [[5, 5, 5, 5]]
    """
    current = _check_labels(labels, "labels")
    before = _check_labels(before, "before")
    after = _check_labels(after, "after")
    if not current.shape == before.shape == after.shape:
        raise InvalidInputError(f"labels {current.shape}, before {before.shape} and after {after.shape} must "
                                "share one shape")
    ids_after = _ids(after)
    ids_before = _ids(before)
    footprint = before != 0
    own = np.isin(current, ids_after)
    clean = (np.array_equal(np.where(own, current, 0), after)
             and not ((current[footprint] != 0) & ~own[footprint]).any()
             and not np.isin(current, np.setdiff1d(ids_before, ids_after)).any())
    out = current.copy()
    out[(after != 0) & (current == after)] = 0
    # An id the original nuclei need that another nucleus holds now (outside their voxels).
    outside = out[~footprint]
    held = set(_ids(outside[np.isin(outside, ids_before)]).tolist()) - set(ids_after.tolist())
    renamed, restore = {}, before
    if held:
        new = int(next_id)
        top = max(int(current.max()) if current.size else 0, int(before.max()))
        new = max(new, top + 1)
        restore = before.copy()
        for original in sorted(held):
            renamed[original] = new
            restore[before == original] = new
            new += 1
    out[footprint] = restore[footprint].astype(out.dtype, copy=False)
    return Revert(labels=out, clean=bool(clean), renamed=renamed)
