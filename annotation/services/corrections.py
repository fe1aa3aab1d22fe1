"""Writes of corrections: edits of a volume's latest label version, their undo and redo, the
check mark (``confirm``: no new version, the nucleus row marked ``checked``), and the revert of
a rejected edit (``correction_revert``, for ``reviews.correction_review``).

Every nucleus an edit measures is ``curation = "edited"``: people's nuclei, which a new
segmentation keeps; the row of an untouched nucleus is shared with its curation, so a mark
lasts exactly as long as the nucleus is unchanged.

An edit reads only the region it touches (the named nuclei's bounding boxes and the drawing),
changes it with ``segmentation.core.editing``, and becomes a new label version that holds only
the chunks it changed (``VolumeStore.write_label_edit``, given the region as it was so that no
other chunk is read). The new version shares
the nucleus rows of the unchanged nuclei with its parent (``annotation.services.nuclei``); only
the changed ones are measured, on the region, and written.

The pixel work (reading the region, the edit itself, measuring the changed nuclei) runs before
any transaction: on SQLite a transaction holds the database's one write lock (IMMEDIATE), and a
slow edit held it for everyone. Only then, in a short transaction, is the volume's row locked
and the version checked again: if another edit or a segmentation made a newer version
meanwhile, the edit is refused with 409 and nothing is written, so two edits of one volume
never both pass the "is this still the latest version?" check. What one edit may cost is
bounded before any pixel is read (``EZQUANT_EDIT_MAX_POINTS``, ``EZQUANT_EDIT_MAX_RADIUS``,
``EZQUANT_EDIT_MAX_VOXELS``: 400 above them).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Correction, LabelVersion, Nucleus, Volume
from annotation.services.audit import audit_record
from annotation.services.nuclei import nuclei_replace, nucleus_curation_set
from annotation.stores import correction_store, volume_store
from ezquant_web.errors import ApplicationError

__all__ = ["correction_create", "correction_redo", "correction_revert", "correction_undo"]

_STALE_STATUS = 409


def _head_for_edit(volume: Volume, expected: str) -> LabelVersion:
    """The volume's latest version, which must be ``expected``; call inside ``atomic``: it locks
    the volume's row until the transaction ends."""
    Volume.objects.select_for_update().filter(id=volume.id).exists()
    return _latest(volume, expected)


def _latest(volume: Volume, expected: str) -> LabelVersion:
    """The volume's latest version, which must be ``expected`` (409 otherwise); no lock."""
    head = LabelVersion.objects.filter(volume=volume).order_by("-number").first()
    if head is None:
        raise ApplicationError("this volume has no labels to edit yet: segment it or upload labels first")
    if head.name != expected:
        raise ApplicationError(
            f"label version {expected} is no longer the latest: {head.name} is (the volume was edited or segmented "
            f"since); reload to edit {head.name}", status=_STALE_STATUS,
            extra={"label_version": expected, "current_label_version": head.name})
    return head


def _check_cost(edit, voxel_size) -> None:
    """Refuse, before any pixel is read, a drawing of more points or a brush wider than the
    settings allow (a 60,000-point stroke of radius 500 took 34 s)."""
    points = sum(len(getattr(edit, name) or ()) for name in ("line", "seeds", "polygon", "stroke")) \
        + sum(len(polygon) for _, polygon in edit.sections or ())
    limit = settings.EZQUANT_EDIT_MAX_POINTS
    if points > limit:
        raise ApplicationError(f"the drawing has {points:,} points; an edit may have at most {limit:,} "
                               "(EZQUANT_EDIT_MAX_POINTS): draw it in several edits",
                               extra={"points": points, "limit": limit, "setting": "EZQUANT_EDIT_MAX_POINTS"})
    radius = settings.EZQUANT_EDIT_MAX_RADIUS
    if edit.radius_um is not None:  # the spherical brush: its radius in pixels across
        from segmentation.core.drawing3d import sphere_reach

        pixels = sphere_reach(edit.radius_um, voxel_size)[1]
        if pixels > radius:
            raise ApplicationError(f"the ball's radius is {edit.radius_um:g} µm = {pixels:.4g} pixels; at most "
                                   f"{radius:,} pixels (EZQUANT_EDIT_MAX_RADIUS)",
                                   extra={"radius": pixels, "limit": radius, "setting": "EZQUANT_EDIT_MAX_RADIUS"})
    if edit.radius is not None and edit.radius > radius:
        raise ApplicationError(f"the brush radius is {edit.radius:g} pixels; at most {radius:,} "
                               "(EZQUANT_EDIT_MAX_RADIUS)",
                               extra={"radius": edit.radius, "limit": radius, "setting": "EZQUANT_EDIT_MAX_RADIUS"})


def _check_region(region) -> None:
    voxels = math.prod(s.stop - s.start for s in region)
    limit = settings.EZQUANT_EDIT_MAX_VOXELS
    if voxels > limit:
        shape = " x ".join(str(s.stop - s.start) for s in region)
        raise ApplicationError(f"the edit reaches a region of {shape} = {voxels:,} voxels; an edit may reach at "
                               f"most {limit:,} (EZQUANT_EDIT_MAX_VOXELS): edit smaller parts",
                               extra={"voxels": voxels, "limit": limit, "setting": "EZQUANT_EDIT_MAX_VOXELS"})


def _check_new_id(head: LabelVersion, edit) -> int:
    """The id a split's second half or an added nucleus gets; 400 when none is left (label
    tiles carry ids below 2**24, and uint32 would overflow at 2**32)."""
    from annotation.storage.tiles import LABEL_ID_LIMIT

    new_id = head.n_labels + 1
    if edit.kind.new_id and new_id >= LABEL_ID_LIMIT:
        raise ApplicationError(f"{head.name}'s largest id is {head.n_labels:,}: no id below {LABEL_ID_LIMIT:,} is "
                               "left for a new nucleus", extra={"largest_id": head.n_labels, "limit": LABEL_ID_LIMIT})
    return new_id


def _clip_region(volume: Volume, z: tuple[int, int], y: tuple[int, int], x: tuple[int, int]):
    limits = volume.shape
    bounds = [(max(lo, 0), min(hi, size)) for (lo, hi), size in zip((z, y, x), limits, strict=True)]
    if any(hi <= lo for lo, hi in bounds):
        raise ApplicationError("the edit lies outside the volume")
    return tuple(slice(lo, hi) for lo, hi in bounds)


def _edit_region(volume: Volume, head: LabelVersion, edit) -> tuple[slice, slice, slice]:
    """Level-0 (z, y, x) slices holding every voxel the edit may change: the named nuclei whole,
    and the drawing on its planes, with one pixel to spare. An edit without a drawing (merge,
    delete, confirm) has no plane: its region is its nuclei's boxes (it reached down from plane 0
    to the nuclei, so its cost grew with their depth in the stack)."""
    Z, Y, X = volume.shape
    zs = []
    if edit.has_plane:
        z0, z1 = edit.planes_for(volume.voxel_size)
        if edit.radius_um is not None:  # a ball near the first or last plane reaches fewer planes
            z0, z1 = max(z0, 0), min(z1, Z - 1)
        if z1 >= Z:
            raise ApplicationError(f"plane {z1} lies outside the volume's planes 0..{Z - 1}")
        zs = [z0, z1 + 1]
    nuclei = {n.label_id: n for n in head.nuclei.filter(label_id__in=edit.nucleus_ids)}
    missing = [i for i in edit.nucleus_ids if i not in nuclei]
    if missing:
        raise ApplicationError(f"{head.name} has no nucleus {', '.join(map(str, missing))}",
                               extra={"missing": missing})
    ys, xs = [], []
    drawing = edit.drawing_bounds(volume.voxel_size)
    if drawing is not None:
        ys += drawing[:2]
        xs += drawing[2:]
    for n in nuclei.values():
        zs += [n.z_min, n.z_max + 1]
        if None in (n.y_min, n.y_max, n.x_min, n.x_max):  # measured before boxes were kept
            ys += [0, Y]
            xs += [0, X]
        else:
            ys += [n.y_min - 1, n.y_max + 2]
            xs += [n.x_min - 1, n.x_max + 2]
    return _clip_region(volume, (min(zs), max(zs)), (min(ys), max(ys)), (min(xs), max(xs)))


def _read_region(store, version: str | None, region) -> np.ndarray:
    """Level-0 labels of ``version`` (intensities when ``None``) in ``region``, (Z, Y, X)."""
    return store.read_box(version, region)


def _measure_edit(*, volume: Volume, region, before: np.ndarray, after: np.ndarray,
                  image: np.ndarray | None = None) -> tuple[set[int], list[dict]]:
    """The ids of the nuclei an edit changes and their nucleus rows, measured on the region:
    pixel work, done before the transaction."""
    changed = before != after
    if not changed.any():
        raise ApplicationError("the edit changes nothing")
    # The edited nuclei: every id on a changed voxel, before or after (a brush stroke changes
    # background voxels only, yet edits the nucleus it paints).
    edited = (set(np.unique(before[changed]).tolist()) | set(np.unique(after[changed]).tolist())) - {0}
    store = volume_store(volume)
    image = _read_region(store, None, region) if image is None else image
    # A person drew these nuclei: they carry no model score (uncertainty None, ranked last), and
    # a new segmentation keeps them (curation "edited").
    rows = _nucleus_rows(after, edited, image, store.meta.voxel_size, offset=tuple(s.start for s in region))
    for row in rows:
        row["curation"] = Nucleus.Curation.EDITED
    return edited, rows


def _nucleus_rows(labels: np.ndarray, ids: set[int], image: np.ndarray, voxel_size, offset) -> list[dict]:
    """``nucleus_table`` of the nuclei ``ids`` of ``labels`` (the region), by increasing id.

    They are measured numbered 1..n and given their ids back: ``nucleus_table`` keeps its sums
    in arrays indexed by id, so an edit of nucleus 400,000 of a large volume paid arrays and a
    loop of 400,000 entries (25-30 ms) for the few nuclei of its region."""
    from segmentation.core.measurements import nucleus_table

    order = np.array(sorted(ids), dtype=np.uint32)
    compact = np.zeros(labels.shape, np.uint32)
    if order.size:
        where = np.isin(labels, order)
        compact[where] = np.searchsorted(order, labels[where]) + 1
    rows = nucleus_table(compact, image, voxel_size, offset=offset)
    for row in rows:
        row["label_id"] = int(order[row["label_id"] - 1])
    return rows


_SHAPE = ("z_min", "z_max", "y_min", "y_max", "x_min", "x_max", "volume_voxels")


def _restore_rows(rows: list[dict], source: LabelVersion | None) -> None:
    """Rows of nuclei brought back as they were in ``source`` (an undo, a redo, a revert) get
    that version's score and curation again, where the nucleus is the same (the same box and
    voxel count): the nucleus the model scored, or the one a person had made."""
    if source is None or not rows:
        return
    old = {n["label_id"]: n for n in source.nuclei.filter(label_id__in=[
        r["label_id"] for r in rows]).values("label_id", "uncertainty", "curation", *_SHAPE)}
    for row in rows:
        was = old.get(row["label_id"])
        if was is not None and all(row.get(k) == was[k] for k in _SHAPE):
            row["uncertainty"], row["curation"] = was["uncertainty"], was["curation"]


def _commit_edit(*, volume: Volume, head: LabelVersion, region, before: np.ndarray, after: np.ndarray,
                 user: AbstractBaseUser | None, measured: tuple[set[int], list[dict]] | None = None,
                 source: str = LabelVersion.Source.EDIT) -> tuple[LabelVersion, set[int], set[int]]:
    """Write ``after`` (the whole region) as the version after ``head`` and its nucleus rows.

    Returns the version and the ids, before and after, of the nuclei that changed. Runs
    inside the caller's transaction (with the volume locked); ``measured`` is what
    :func:`_measure_edit` found, computed before the transaction (else here).
    """
    edited, rows = measured if measured is not None else _measure_edit(volume=volume, region=region, before=before,
                                                                       after=after)
    store = volume_store(volume)
    meta = store.write_label_edit(head.name, region, after, before=before)  # only the changed chunks are read
    version = LabelVersion.objects.create(
        volume=volume, number=meta.number, name=meta.name, parent=head, source=source,
        created_by=user, n_labels=meta.n_labels, model_version=head.model_version, lineage=head.lineage)
    nuclei_replace(parent=head, version=version, changed=edited, rows=rows)
    ids_before = edited & set(np.unique(before).tolist())
    ids_after = edited & set(np.unique(after).tolist())
    return version, ids_before, ids_after


def _only(labels: np.ndarray, ids: set[int]) -> np.ndarray:
    return np.where(np.isin(labels, sorted(ids)), labels, 0) if ids else np.zeros_like(labels)


def _inside(region, allowed: list[list[int]]) -> bool:
    box = [v for s in region for v in (s.start, s.stop)]
    return any(all(a[2 * i] <= box[2 * i] and box[2 * i + 1] <= a[2 * i + 1] for i in range(3)) for a in allowed)


def correction_create(*, volume: Volume, user: AbstractBaseUser | None, label_version: str, edit: dict,
                      within: list[list[int]] | None = None, approved: bool = False,
                      amends: Correction | None = None,
                      inside: Callable[[Correction], None] | None = None) -> Correction:
    """Carry out one edit on the volume's latest label version and record it.

    Parameters
    ----------
    label_version : the name of the version the user edited; if it is no longer the latest,
        :class:`ApplicationError` with status 409 (nothing is written).
    edit : ``segmentation.core.editing.Edit`` fields (type, nucleus ids, plane, drawing), in
        level-0 pixels.
    within : regions (``[z0, z1, y0, y1, x0, x1]``) the edit must lie in, e.g. a student's
        assignments (``annotation.roles.editable_regions``); ``None``: anywhere. 403 otherwise.
    approved : record it as approved (an instructor's own edit) instead of pending review.
    amends : the correction this one replaces (an instructor amending a student's): marked
        ``amended`` by the caller, in ``inside``.
    inside : called with the new correction inside the edit's short transaction (with the
        volume locked), for writes that must commit with it.

    Returns the :class:`~annotation.models.Correction`, whose ``result_version`` is the new
    latest version. Its masks go to the volume's correction store (the guide's
    ``corrections.json`` and ``corr_*.npz``). Files are written before rows: if the rows fail,
    the new version directory is an orphan (module docstring) and the store keeps a record no
    row names; neither is ever shown.
    """
    from segmentation.core.editing import Edit, apply_edit
    from segmentation.core.errors import InvalidInputError

    try:
        parsed = Edit.from_dict(edit)
    except (InvalidInputError, TypeError) as exc:
        raise ApplicationError(str(exc), extra={"field": "edit"}) from None
    _check_cost(parsed, volume.voxel_size)
    # The pixel work, outside any transaction (module docstring): the version it starts from
    # is checked again under the lock below.
    head = _latest(volume, label_version)
    region = _edit_region(volume, head, parsed)
    if within is not None and not _inside(region, within):
        raise ApplicationError("this edit reaches outside the region assigned to you: keep to "
                               + "; ".join(f"planes {a[0]}-{a[1] - 1}, y {a[2]}-{a[3] - 1}, x {a[4]}-{a[5] - 1}"
                                           for a in within), status=403)
    _check_region(region)
    if not parsed.kind.changes_voxels:
        return _confirm(volume=volume, user=user, head=head, region=region, edit=parsed, approved=approved,
                        amends=amends, inside=inside)
    new_id = _check_new_id(head, parsed)
    store = volume_store(volume)
    before = _read_region(store, head.name, region)
    try:
        after = apply_edit(before, parsed.shifted(*(s.start for s in region)), new_id=new_id,
                           voxel_size=volume.voxel_size)
    except InvalidInputError as exc:
        raise ApplicationError(str(exc)) from None
    image = _read_region(store, None, region)
    measured = _measure_edit(volume=volume, region=region, before=before, after=after, image=image)
    with transaction.atomic():
        locked = _head_for_edit(volume, label_version)
        if locked.id != head.id:  # the same name, another row: cannot happen with immutable versions
            raise ApplicationError(f"label version {label_version} changed while the edit was computed; reload",
                                   status=_STALE_STATUS, extra={"current_label_version": locked.name})
        version, ids_before, ids_after = _commit_edit(volume=volume, head=head, region=region, before=before,
                                                      after=after, user=user, measured=measured)
        # The record keeps what an adapter trains on: the masks, the image under them (scaled by
        # the volume's stored percentiles, as the engine scales the whole volume) and the labels
        # around them after the edit.
        record = correction_store(volume).record(
            f"volume-{volume.id}", parsed.nucleus_ids[0] if parsed.nucleus_ids else min(ids_after),
            _only(before, ids_before | ids_after), _only(after, ids_before | ids_after), parsed.correction_type,
            _record_metadata(volume, head, region, version.name, user),
            image=image, image_range=volume.contrast_limits, context_labels=after)
        now = timezone.now()
        correction = Correction.objects.create(
            volume=volume, correction_type=parsed.correction_type, label_version=head, result_version=version,
            model_version=head.model_version, nucleus_ids=sorted(ids_before), new_ids=sorted(ids_after),
            bbox=[v for s in region for v in (s.start, s.stop)], geometry=parsed.to_dict(), record_id=record.id,
            created_by=user, amends=amends,
            review_status=Correction.Review.APPROVED if approved else Correction.Review.PENDING,
            reviewed_by=user if approved else None, reviewed_at=now if approved else None)
        audit_record(user=user, project_id=volume.project_id, action="correction.create", obj=correction,
                     label_version=head.name, type=parsed.correction_type, result_version=version.name,
                     nucleus_ids=correction.nucleus_ids, new_ids=correction.new_ids,
                     amends=amends.id if amends is not None else None)
        if inside is not None:
            inside(correction)
        return correction


def _record_metadata(volume: Volume, head: LabelVersion, region, result: str | None,
                     user: AbstractBaseUser | None, **extra) -> dict:
    vz, vy, vx = volume.voxel_size
    return {"volume": volume.id, "offset": [s.start for s in region], "label_version": head.name,
            "result_version": result, "model_version": head.model_version,
            "user": user.get_username() if user is not None else None,
            "anisotropy": vz / ((vy + vx) / 2) if volume.shape_z > 1 else 1.0, **extra}


def _confirm(*, volume: Volume, user: AbstractBaseUser | None, head: LabelVersion, region, edit,
             approved: bool, amends: Correction | None, inside: Callable[[Correction], None] | None) -> Correction:
    """A person's "this nucleus is right": a record of its own kind (both masks the nucleus as it
    is, with the image: a positive training example), no new version, and the nucleus' row in
    the latest version marked ``checked`` (kept by a new segmentation). 409 when the version
    moved on or the nucleus is checked already."""
    nucleus_id = edit.nucleus_ids[0]
    store = volume_store(volume)
    labels = _read_region(store, head.name, region)
    mask = _only(labels, {nucleus_id})
    image = _read_region(store, None, region)
    with transaction.atomic():
        locked = _head_for_edit(volume, head.name)
        if locked.id != head.id:
            raise ApplicationError(f"label version {head.name} changed while the check was made; reload",
                                   status=_STALE_STATUS, extra={"current_label_version": locked.name})
        row = head.nuclei.get(label_id=nucleus_id)
        if row.curation == Nucleus.Curation.CHECKED:
            raise ApplicationError(f"nucleus {nucleus_id} of {head.name} is checked already", status=_STALE_STATUS,
                                   extra={"current_label_version": head.name, "nucleus": nucleus_id})
        record = correction_store(volume).record(
            f"volume-{volume.id}", nucleus_id, mask, mask, edit.correction_type,
            _record_metadata(volume, head, region, None, user, previous_curation=row.curation),
            image=image, image_range=volume.contrast_limits, context_labels=labels)
        nucleus_curation_set(version=head, label_id=nucleus_id, curation=Nucleus.Curation.CHECKED)
        now = timezone.now()
        correction = Correction.objects.create(
            volume=volume, correction_type=edit.correction_type, label_version=head, result_version=None,
            model_version=head.model_version, nucleus_ids=[nucleus_id], new_ids=[nucleus_id],
            bbox=[v for s in region for v in (s.start, s.stop)], geometry=edit.to_dict(), record_id=record.id,
            created_by=user, amends=amends,
            review_status=Correction.Review.APPROVED if approved else Correction.Review.PENDING,
            reviewed_by=user if approved else None, reviewed_at=now if approved else None)
        audit_record(user=user, project_id=volume.project_id, action="correction.create", obj=correction,
                     label_version=head.name, type=edit.correction_type, result_version=None,
                     nucleus_ids=[nucleus_id], new_ids=[nucleus_id], amends=amends.id if amends is not None else None)
        if inside is not None:
            inside(correction)
        return correction


def _prepare_swap(*, volume: Volume, head: LabelVersion, correction, remove: np.ndarray,
                  restore: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[set[int], list[dict]]]:
    """The pixel work of a version after ``head`` in which the nuclei of ``remove`` (as they are
    in ``head``) are replaced by those of ``restore`` (undo swaps after for before, redo before
    for after): (the region now, the region after, what :func:`_measure_edit` found). Runs
    before the transaction; 409 when later edits changed these nuclei."""
    region = correction.region
    current = _read_region(volume_store(volume), head.name, region)
    removed = set(np.unique(remove).tolist()) - {0}
    restored = set(np.unique(restore).tolist()) - {0}
    later = ("a later edit changed these nuclei: undo it first, or edit them again instead")
    if not np.array_equal(_only(current, removed), remove):
        raise ApplicationError(later, status=_STALE_STATUS, extra={"current_label_version": head.name})
    target = restore != 0
    occupied = current[target]
    if (occupied != 0)[~np.isin(occupied, sorted(removed))].any() if removed else (occupied != 0).any():
        raise ApplicationError(later, status=_STALE_STATUS, extra={"current_label_version": head.name})
    reused = restored - removed
    if reused and head.nuclei.filter(label_id__in=reused).exists():
        raise ApplicationError(later, status=_STALE_STATUS, extra={"current_label_version": head.name})
    after = current.copy()
    after[np.isin(current, sorted(removed))] = 0
    after[target] = restore[target]
    return current, after, _measure_edit(volume=volume, region=region, before=current, after=after)


def _locked_step(volume: Volume, head: LabelVersion, label_version: str, correction: Correction) -> Correction:
    """Inside ``atomic``: lock the volume, check ``head`` is still its latest version (409),
    and return the correction's row, locked."""
    locked = _head_for_edit(volume, label_version)
    if locked.id != head.id:
        raise ApplicationError(f"label version {label_version} changed while the step was computed; reload",
                               status=_STALE_STATUS, extra={"current_label_version": locked.name})
    return Correction.objects.select_for_update().get(id=correction.id)


def _correction_masks(correction) -> tuple[np.ndarray, np.ndarray]:
    """The record's (before, after) masks over the correction's region."""
    return correction_store(correction.volume).load(correction.record_id)


def _refuse_no_edit(correction: Correction, head: LabelVersion) -> None:
    """409 for what undo and redo cannot take back: an edit a reviewer rejected and reverted
    already; and a redo of a check (check the nucleus again instead)."""
    if not correction.changes_voxels:
        raise ApplicationError("a withdrawn check is not redone: check the nucleus again", status=_STALE_STATUS,
                               extra={"current_label_version": head.name})
    if correction.reverted_version_id is not None:
        raise ApplicationError(f"this edit was rejected and taken out of the labels already (in "
                               f"{correction.reverted_version.name})", status=_STALE_STATUS,
                               extra={"current_label_version": head.name})


def _uncheck(correction: Correction, head: LabelVersion) -> None:
    """Inside ``atomic``: the check's mark taken off its nucleus in ``head`` (if it still carries
    it), back to what the nucleus was before it was checked."""
    previous = correction_store(correction.volume).get(correction.record_id).metadata.get("previous_curation", "")
    nucleus_curation_set(version=head, label_id=correction.nucleus_ids[0], curation=previous,
                         only_from=Nucleus.Curation.CHECKED)


def _withdraw_check(*, correction: Correction, user: AbstractBaseUser | None, head: LabelVersion,
                    refuse_undone) -> Correction:
    """The undo of a check: no new version; the mark is taken off the nucleus in the latest
    version and the record marked undone (``undone_at``, no ``undone_version``)."""
    with transaction.atomic():
        locked = _head_for_edit(correction.volume, head.name)
        if locked.id != head.id:
            raise ApplicationError(f"label version {head.name} changed meanwhile; reload", status=_STALE_STATUS,
                                   extra={"current_label_version": locked.name})
        correction = Correction.objects.select_for_update().get(id=correction.id)
        refuse_undone(correction, head)
        _uncheck(correction, head)
        correction.undone_at, correction.undone_by = timezone.now(), user
        correction.save(update_fields=["undone_at", "undone_by"])
        audit_record(user=user, project_id=correction.volume.project_id, action="correction.undo", obj=correction,
                     label_version=head.name, result_version=None)
        return correction


def correction_undo(*, correction: Correction, user: AbstractBaseUser | None, label_version: str) -> Correction:
    """Undo an edit: a new latest version with the edited nuclei as they were before it.

    ``label_version`` is the latest version as the user sees it (409 when it is not). Refused
    with 409 when the edit was undone already or later edits changed the same nuclei. The
    record stays, marked undone (``undone_version``); nothing is deleted. The undo of a check
    withdraws it: the mark comes off, no version is made (``undone_at`` only).
    """

    volume = correction.volume

    def refuse_undone(correction: Correction, head: LabelVersion) -> None:
        if correction.changes_voxels:
            _refuse_no_edit(correction, head)
        if correction.undone:
            raise ApplicationError("this edit was undone already", status=_STALE_STATUS,
                                   extra={"current_label_version": head.name})

    # The pixel work before the transaction, as for an edit (module docstring).
    head = _latest(volume, label_version)
    correction = Correction.objects.get(id=correction.id)
    refuse_undone(correction, head)
    if not correction.changes_voxels:
        return _withdraw_check(correction=correction, user=user, head=head, refuse_undone=refuse_undone)
    before, after = _correction_masks(correction)
    current, result, measured = _prepare_swap(volume=volume, head=head, correction=correction, remove=after,
                                              restore=before)
    _restore_rows(measured[1], correction.label_version)
    with transaction.atomic():
        correction = _locked_step(volume, head, label_version, correction)
        refuse_undone(correction, head)
        version, _, _ = _commit_edit(volume=volume, head=head, region=correction.region, before=current,
                                     after=result, user=user, measured=measured)
        correction.undone_version, correction.undone_at, correction.undone_by = version, timezone.now(), user
        correction.save(update_fields=["undone_version", "undone_at", "undone_by"])
        audit_record(user=user, project_id=volume.project_id, action="correction.undo", obj=correction,
                     label_version=head.name, result_version=version.name)
        return correction


def correction_redo(*, correction: Correction, user: AbstractBaseUser | None, label_version: str) -> Correction:
    """Redo an undone edit on the latest version: a new version and a new record (``redo_of``)
    with the same masks. Refused (409) when it is not undone, was redone already, or later
    edits touched its nuclei."""

    volume = correction.volume

    def refuse_not_undone(correction: Correction, head: LabelVersion) -> None:
        _refuse_no_edit(correction, head)
        if not correction.undone or correction.redos.exists():
            raise ApplicationError("only an undone edit can be redone, once", status=_STALE_STATUS,
                                   extra={"current_label_version": head.name})

    head = _latest(volume, label_version)
    correction = Correction.objects.get(id=correction.id)
    refuse_not_undone(correction, head)
    before, after = _correction_masks(correction)
    current, result, measured = _prepare_swap(volume=volume, head=head, correction=correction, remove=before,
                                              restore=after)
    _restore_rows(measured[1], correction.result_version)
    with transaction.atomic():
        correction = _locked_step(volume, head, label_version, correction)
        refuse_not_undone(correction, head)
        version, _, _ = _commit_edit(volume=volume, head=head, region=correction.region, before=current,
                                     after=result, user=user, measured=measured)
        redo = Correction.objects.create(
            volume=volume, correction_type=correction.correction_type, label_version=head, result_version=version,
            model_version=head.model_version, nucleus_ids=correction.nucleus_ids, new_ids=correction.new_ids,
            bbox=correction.bbox, geometry=correction.geometry, record_id=correction.record_id, created_by=user,
            redo_of=correction, amends=correction.amends, review_status=correction.review_status,
            reviewed_by=correction.reviewed_by, reviewed_at=correction.reviewed_at,
            review_comment=correction.review_comment)
        audit_record(user=user, project_id=volume.project_id, action="correction.redo", obj=redo,
                     label_version=head.name, result_version=version.name, redo_of=correction.id)
        return redo


def _later_corrections(correction: Correction) -> list[Correction]:
    """Corrections of the same volume made after ``correction`` whose region meets its own and
    that are still in the labels (not undone, not reverted): what a revert may undo."""
    box = correction.bbox
    later = (Correction.objects.filter(volume_id=correction.volume_id, id__gt=correction.id,
                                       undone_at__isnull=True, reverted_version__isnull=True)
             .exclude(review_status=Correction.Review.REJECTED).select_related("created_by", "result_version")
             .order_by("id"))
    return [c for c in later
            if all(c.bbox[2 * i] < box[2 * i + 1] and box[2 * i] < c.bbox[2 * i + 1] for i in range(3))]


def _grown_region(volume: Volume, head: LabelVersion, region, ids: set[int]):
    """``region`` grown to hold every voxel of the nuclei ``ids`` of ``head`` (from their rows'
    boxes; whole planes for rows measured before boxes were kept)."""
    Z, Y, X = volume.shape
    bounds = [[s.start, s.stop] for s in region]
    for n in head.nuclei.filter(label_id__in=sorted(ids)):
        box = [(n.z_min, n.z_max + 1)]
        box += [(0, Y), (0, X)] if None in (n.y_min, n.y_max, n.x_min, n.x_max) else \
            [(n.y_min, n.y_max + 1), (n.x_min, n.x_max + 1)]
        for axis, (lo, hi) in enumerate(box):
            bounds[axis] = [min(bounds[axis][0], lo), max(bounds[axis][1], hi)]
    return _clip_region(volume, *(tuple(b) for b in bounds))


def _in_region(mask: np.ndarray, inner, outer) -> np.ndarray:
    """``mask`` (over ``inner``) placed in an array over ``outer``, which holds ``inner``."""
    out = np.zeros(tuple(s.stop - s.start for s in outer), mask.dtype)
    out[tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True))] = mask
    return out


def correction_revert(*, correction: Correction, user: AbstractBaseUser | None, label_version: str | None,
                      overwrite_later: bool,
                      inside: Callable[[LabelVersion | None, bool], None]) -> LabelVersion | None:
    """Take a (rejected) edit back out of the latest labels: a new version (source ``revert``,
    made by ``user``) in which the nuclei the edit changed are exactly as they were before it,
    voxel for voxel; a check (``confirm``) has its mark taken off the nucleus instead.

    ``label_version``: the latest version as the reviewer sees it (409 when it is not; ``None``:
    whatever is latest now). When later edits changed the same nuclei (or checked one the edit
    made), 409 lists them (``extra.later_corrections``) unless ``overwrite_later``: then the
    edit's original nuclei are restored over them, and the later checks of nuclei the edit made
    are withdrawn (undone by ``user``: their nuclei are gone). ``inside(version, clean)`` is called in the
    short transaction that writes the version (the volume locked), to mark the verdict with it.
    Returns the new version, or ``None`` when no voxel had to change.
    """
    from segmentation.core.curation import revert_edit

    volume = correction.volume
    head = _latest(volume, label_version) if label_version else \
        LabelVersion.objects.filter(volume=volume).order_by("-number").first()
    if not correction.changes_voxels:
        with transaction.atomic():
            _head_for_edit(volume, head.name)
            _uncheck(correction, head)
            inside(None, True)
        return None
    # The pixel work before the transaction, as for an edit (module docstring).
    before, after = _correction_masks(correction)
    store = volume_store(volume)
    inner = correction.region
    current = _read_region(store, head.name, inner)
    ids = (set(np.unique(before).tolist()) | set(np.unique(after).tolist())
           | set(np.unique(current[before != 0]).tolist())) - {0}
    region = _grown_region(volume, head, inner, ids)
    if region != inner:
        current = _read_region(store, head.name, region)
        before, after = _in_region(before, inner, region), _in_region(after, inner, region)
    reverted = revert_edit(current, before, after, next_id=head.n_labels + 1)
    later = _later_corrections(correction)
    made = set(correction.new_ids)
    checked = [c for c in later if not c.changes_voxels and made & set(c.nucleus_ids)]
    clean = reverted.clean and not checked
    if not clean and not overwrite_later:
        touching = [c for c in later if c.changes_voxels] + checked
        raise ApplicationError(
            "later edits changed the nuclei of this correction"
            + (f" ({', '.join(f'#{c.id} {c.correction_type}' for c in touching)})" if touching else "")
            + ": revert anyway (their changes to these nuclei are lost"
            + (", the checks withdrawn" if checked else "") + ") or keep the labels as they are",
            status=_STALE_STATUS, extra={
                "conflict": "later_edits", "current_label_version": head.name,
                "later_corrections": [{"id": c.id, "type": c.correction_type,
                                       "by": c.created_by.get_username() if c.created_by else None,
                                       "result_version": c.result_version.name if c.result_version else None}
                                      for c in touching]})
    changes = not np.array_equal(reverted.labels, current)
    measured = None
    if changes:
        measured = _measure_edit(volume=volume, region=region, before=current, after=reverted.labels)
        _restore_rows(measured[1], correction.label_version)
    with transaction.atomic():
        locked = _head_for_edit(volume, head.name)
        if locked.id != head.id:
            raise ApplicationError(f"label version {head.name} changed while the revert was computed; reload",
                                   status=_STALE_STATUS, extra={"current_label_version": locked.name})
        version = None
        if changes:
            version, _, _ = _commit_edit(volume=volume, head=head, region=region, before=current,
                                         after=reverted.labels, user=user, measured=measured,
                                         source=LabelVersion.Source.REVERT)
            audit_record(user=user, project_id=volume.project_id, action="label_version.revert", obj=version,
                         label_version=head.name, result_version=version.name, correction=correction.id,
                         clean=clean, renamed={str(k): v for k, v in reverted.renamed.items()})
        _withdraw_overwritten_checks(checked, user=user, head=head, version=version, reverted=correction)
        inside(version, clean)
        return version


def _withdraw_overwritten_checks(checks: list[Correction], *, user: AbstractBaseUser | None, head: LabelVersion,
                                 version: LabelVersion | None, reverted: Correction) -> None:
    """Inside ``atomic``: the later checks of nuclei a revert took out, withdrawn with them.

    Their nuclei are gone from the labels (the revert put back what was there before), so a
    check left in effect would still wait for review and, approved, teach the model the very
    nucleus the reviewer refused. Each is marked undone by the reviewer and audited."""
    for check in checks:
        locked = Correction.objects.select_for_update().get(id=check.id)
        if locked.undone:
            continue
        locked.undone_at, locked.undone_by = timezone.now(), user
        locked.save(update_fields=["undone_at", "undone_by"])
        audit_record(user=user, project_id=locked.volume.project_id, action="correction.undo", obj=locked,
                     label_version=head.name, result_version=version.name if version else None,
                     withdrawn_by_revert_of=reverted.id)
