"""Writes of nucleus rows, which label versions share (``annotation.models.Nucleus``).

A version measured whole (a segmentation, an upload) starts a lineage and adds a row per
nucleus (:func:`nuclei_create`). A version made by an edit continues its parent's lineage and
costs the nuclei it changed: their rows are closed at its number and their new rows added
(:func:`nuclei_replace`); every other row is the parent's, untouched. A mark that changes no
voxel (a check, its withdrawal) is a change of the latest version only: a row older versions
share is closed and copied with the new mark (:func:`nucleus_curation_set`).

All of them run inside the caller's transaction, with the volume's row locked (only the
volume's latest version, the last of its lineage, is ever changed).
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable

from annotation.models import OPEN, LabelVersion, Nucleus

__all__ = ["nuclei_create", "nuclei_replace", "nucleus_curation_set"]

_BATCH = 2000


def _rows(version: LabelVersion, rows: Iterable[dict[str, Any]]):
    return (Nucleus(volume_id=version.volume_id, lineage=version.lineage, since=version.number, until=OPEN, **row)
            for row in rows)


def _insert(objs: Iterable[Nucleus]) -> int:
    """Insert ``objs`` ``_BATCH`` at a time as they come, and count them: ``bulk_create`` lists
    its argument whole first, so a volume's table made row by row (a blockwise segmentation's)
    would be held whole."""
    objs, count = iter(objs), 0
    while batch := list(itertools.islice(objs, _BATCH)):
        Nucleus.objects.bulk_create(batch)
        count += len(batch)
    return count


def nuclei_create(*, version: LabelVersion, rows: Iterable[dict[str, Any]]) -> int:
    """The rows of a version that starts its lineage (``version.lineage == version.number``):
    one per nucleus, with the fields of ``segmentation.core.measurements.NUCLEUS_FIELDS``.
    ``rows`` may be a generator: it is read and stored in batches. Returns how many."""
    if version.lineage != version.number:
        raise ValueError(f"{version.name} continues lineage {version.lineage}: give it the rows it changes "
                         "(nuclei_replace)")
    return _insert(_rows(version, rows))


def nuclei_replace(*, parent: LabelVersion, version: LabelVersion, changed: Iterable[int],
                   rows: Iterable[dict[str, Any]]) -> None:
    """The rows of ``version``, an edit of ``parent`` (the last version of its lineage): the
    nuclei ``changed`` lose their rows, ``rows`` (each a nucleus that is new or changed) are
    added; every other nucleus keeps its row, shared with the parent."""
    if version.lineage != parent.lineage or version.volume_id != parent.volume_id or version.number <= parent.number:
        raise ValueError(f"{version.name} does not continue the lineage of {parent.name}")
    changed = sorted(set(changed))
    for start in range(0, len(changed), _BATCH):  # SQLite limits the parameters of one query
        Nucleus.objects.filter(volume_id=parent.volume_id, lineage=parent.lineage, until=OPEN,
                               label_id__in=changed[start:start + _BATCH]).update(until=version.number)
    _insert(_rows(version, rows))


def nucleus_curation_set(*, version: LabelVersion, label_id: int, curation: str,
                         only_from: str | None = None) -> bool:
    """Mark nucleus ``label_id`` of ``version`` (the volume's latest) ``curation``, in that version
    and those made from it later, never in older ones. ``only_from``: only when its mark is that
    now. Returns whether a row changed."""
    open_rows = Nucleus.objects.select_for_update().filter(volume_id=version.volume_id, lineage=version.lineage,
                                                           until=OPEN, label_id=label_id)
    if only_from is not None:
        open_rows = open_rows.filter(curation=only_from)
    row = open_rows.first()
    if row is None or row.curation == curation:
        return False
    if row.since == version.number:  # its own row: no other version sees it
        Nucleus.objects.filter(id=row.id).update(curation=curation)
        return True
    Nucleus.objects.filter(id=row.id).update(until=version.number)
    row.pk, row.since, row.until, row.curation = None, version.number, OPEN, curation
    row.save(force_insert=True)
    return True
