"""Writes of the annotation app: projects, members, volumes, label versions, exports.

Files and rows
--------------
A volume is an OME-Zarr directory under ``EZQUANT_DATA_DIR/volumes/<uuid>`` plus a
:class:`~annotation.models.Volume` row; a label version is a ``vN`` array group inside that
directory plus a :class:`~annotation.models.LabelVersion` row and its
:class:`~annotation.models.Nucleus` rows. Files cannot join a database transaction, so each
service writes the files first, completely (the storage layer publishes them atomically), and
then the rows in one transaction:

* ``volume_import``: if the rows fail, the new directory is removed, so nothing is left.
* ``label_version_create``: a published label version cannot be removed (versions are
  immutable and the store has no delete), so if measuring or the rows fail, the ``vN``
  directory stays behind as an *orphan*: no row names it, so no API, tile or export can reach
  it (every read starts from a row), and its number is never reused (the store numbers
  versions itself, always upwards; the rows copy its numbers, so they may skip one). It costs
  disk only: ``annotation.selectors.label_version_orphans`` lists them for a later clean-up.

Deleting a Volume row (admin) leaves its directory; deleting directories is a later issue.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from annotation.models import Correction, LabelVersion, Membership, Nucleus, Project, Volume
from annotation.stores import volume_store
from ezquant_web.api import ApplicationError

__all__ = [
    "correction_create", "correction_redo", "correction_undo",
    "label_version_create", "label_version_export_tiff", "label_version_export_zarr", "label_version_upload",
    "membership_add",
    "project_create", "volume_import",
]

VOLUMES_DIR = "volumes"
EXPORTS_DIR = "exports"


def _data_dir() -> Path:
    return Path(settings.EZQUANT_DATA_DIR)


def project_create(*, name: str, user: AbstractBaseUser, description: str = "") -> Project:
    """A new project, with ``user`` as its first member (role admin)."""
    name = name.strip()
    slug = slugify(name)
    if not name or not slug:
        raise ApplicationError("a project needs a name with at least one letter or digit")
    if Project.objects.filter(name=name).exists() or Project.objects.filter(slug=slug).exists():
        raise ApplicationError(f"a project named {name!r} already exists")
    with transaction.atomic():
        project = Project.objects.create(name=name, slug=slug, description=description, created_by=user)
        Membership.objects.create(project=project, user=user, role=Membership.Role.ADMIN)
    return project


def membership_add(*, project: Project, user: AbstractBaseUser,
                   role: str = Membership.Role.STUDENT) -> Membership:
    """Make ``user`` a member of ``project``; refused if they already are."""
    if role not in Membership.Role.values:
        raise ApplicationError(f"role must be one of {', '.join(Membership.Role.values)}, got {role!r}")
    if Membership.objects.filter(project=project, user=user).exists():
        raise ApplicationError(f"{user.get_username()} is already a member of {project.name}")
    return Membership.objects.create(project=project, user=user, role=role)


def volume_import(*, project: Project, src_path: str | os.PathLike, name: str, user: AbstractBaseUser | None,
                  channel: int | None = None, voxel_size: tuple[float, ...] | None = None) -> Volume:
    """Import a TIFF / OME-TIFF file or OME-Zarr directory into ``project`` as a new volume.

    The image is streamed plane by plane into ``EZQUANT_DATA_DIR/volumes/<uuid>``; images with
    more than ``EZQUANT_MAX_VOXELS`` voxels are refused before anything is written. ``name``
    defaults to the source's file name. Storage errors (unreadable file, wrong axes, missing
    channel, too large) propagate as :class:`~annotation.storage.StorageError`.
    """
    from annotation.storage import import_image

    relative = f"{VOLUMES_DIR}/{uuid.uuid4().hex}"
    dest = _data_dir() / relative
    store = import_image(src_path, dest, channel=channel, voxel_size=voxel_size,
                         max_voxels=settings.EZQUANT_MAX_VOXELS)
    meta = store.meta
    try:
        with transaction.atomic():
            return Volume.objects.create(
                project=project, name=(name or "").strip() or Path(src_path).name, path=relative,
                shape_z=meta.shape[0], shape_y=meta.shape[1], shape_x=meta.shape[2], dtype=meta.dtype,
                voxel_size_z=meta.voxel_size[0], voxel_size_y=meta.voxel_size[1], voxel_size_x=meta.voxel_size[2],
                contrast_lo=meta.contrast_limits[0], contrast_hi=meta.contrast_limits[1],
                n_levels=meta.n_levels, created_by=user)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # no row will ever name it
        raise


def label_version_create(*, volume: Volume, labels: np.ndarray, user: AbstractBaseUser | None, source: str,
                         parent: LabelVersion | None = None, model_version: str = "",
                         uncertainty: dict[int, float] | None = None) -> LabelVersion:
    """Store ``labels`` as the volume's next label version and measure its nuclei.

    Parameters
    ----------
    labels : (Z, Y, X) integer array of the volume's shape ((Y, X) for a 2D volume), 0 =
        background. Not modified.
    source : one of ``LabelVersion.Source``.
    parent : the version these labels derive from (an edit, a re-segmentation): unchanged chunk
        files are shared with it on disk.
    model_version : the model that produced the labels, for a segmentation.
    uncertainty : per-nucleus scores by label id, stored with each nucleus.

    A shape or dtype that does not fit raises :class:`~annotation.storage.LabelShapeError` /
    ``InvalidLabelsError`` before anything is written. See the module docstring for what is
    left on disk if a later step fails.
    """
    from segmentation.core.measurements import nucleus_table

    if source not in LabelVersion.Source.values:
        raise ApplicationError(f"source must be one of {', '.join(LabelVersion.Source.values)}, got {source!r}")
    if parent is not None and parent.volume_id != volume.id:
        raise ApplicationError(f"the parent version {parent.name} belongs to another volume")
    store = volume_store(volume)
    meta = store.write_labels(labels, parent=parent.name if parent is not None else None)
    rows = nucleus_table(labels, store.read_volume(0), store.meta.voxel_size, uncertainty=uncertainty)
    with transaction.atomic():
        version = LabelVersion.objects.create(
            volume=volume, number=meta.number, name=meta.name, parent=parent, source=source,
            created_by=user, n_labels=meta.n_labels, model_version=model_version)
        Nucleus.objects.bulk_create((Nucleus(label_version=version, **row) for row in rows), batch_size=2000)
    return version


def label_version_upload(*, volume: Volume, src_path: str | os.PathLike, user: AbstractBaseUser | None,
                         parent: LabelVersion | None = None) -> LabelVersion:
    """A new label version (source ``upload``) from a label TIFF of the volume's shape.

    The TIFF holds (Z, Y, X) integer ids, or (Y, X) for a 2D volume; extra axes of length 1
    (ImageJ's T and C) are dropped. A file that is no TIFF raises :class:`ApplicationError`; a
    shape or type that does not fit, ``LabelShapeError`` / ``InvalidLabelsError`` (storage).
    """
    import tifffile  # only uploads need it

    try:
        labels = tifffile.imread(src_path)
    except Exception as exc:  # tifffile raises many types for a bad file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ApplicationError(f"the labels are not a readable TIFF file: {reason}") from None
    if labels.size == 0:
        raise ApplicationError("the labels TIFF holds no image")
    while labels.ndim > 3 and 1 in labels.shape:
        labels = labels.squeeze(axis=labels.shape.index(1))
    return label_version_create(volume=volume, labels=labels, user=user, source=LabelVersion.Source.UPLOAD,
                                parent=parent)


def _export_path(suffix: str) -> Path:
    folder = _data_dir() / EXPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=folder)) / f"labels{suffix}"


def label_version_export_tiff(*, label_version: LabelVersion) -> Path:
    """Write the version's full-resolution labels to a new uint32 OME-TIFF and return its path.

    The file lies alone in a new folder under ``EZQUANT_DATA_DIR/exports``; the caller removes
    that folder (``path.parent``) when it has sent the file.
    """
    out = _export_path(".ome.tif")
    try:
        return volume_store(label_version.volume).export_labels_tiff(label_version.name, out)
    except BaseException:
        shutil.rmtree(out.parent, ignore_errors=True)
        raise


def label_version_export_zarr(*, label_version: LabelVersion) -> Path:
    """Write the version as a standalone OME-Zarr directory (all levels) and return its path.

    Like :func:`label_version_export_tiff`, the caller removes ``path.parent`` when done.
    """
    out = _export_path(".ome.zarr")
    try:
        return volume_store(label_version.volume).export_labels_zarr(label_version.name, out)
    except BaseException:
        shutil.rmtree(out.parent, ignore_errors=True)
        raise


# -- corrections: edits of the latest label version --------------------------------------------
#
# An edit reads only the region it touches (the named nuclei's bounding boxes and the drawing),
# changes it with ``segmentation.core.editing``, and becomes a new label version that shares
# every other chunk with its parent (``VolumeStore.write_label_edit``). The nucleus rows of the
# unchanged nuclei are copied in the database, the changed ones measured on the region. The
# volume's row is locked for the whole edit, so two edits of one volume never both pass the
# "is this still the latest version?" check: the second gets 409.

CORRECTIONS_DIR = "corrections"
_STALE_STATUS = 409


def _correction_tracker(volume: Volume):
    from segmentation.core.corrections import CorrectionTracker

    return CorrectionTracker(_data_dir() / CORRECTIONS_DIR / Path(volume.path).name)


def _head_for_edit(volume: Volume, expected: str) -> LabelVersion:
    """The volume's latest version, which must be ``expected``; call inside ``atomic``: it locks
    the volume's row until the transaction ends."""
    Volume.objects.select_for_update().filter(id=volume.id).exists()
    head = LabelVersion.objects.filter(volume=volume).order_by("-number").first()
    if head is None:
        raise ApplicationError("this volume has no labels to edit yet: segment it or upload labels first")
    if head.name != expected:
        raise ApplicationError(
            f"label version {expected} is no longer the latest: {head.name} is (the volume was edited or segmented "
            f"since); reload to edit {head.name}", status=_STALE_STATUS,
            extra={"label_version": expected, "current_label_version": head.name})
    return head


def _clip_region(volume: Volume, z: tuple[int, int], y: tuple[int, int], x: tuple[int, int]):
    limits = volume.shape
    bounds = [(max(lo, 0), min(hi, size)) for (lo, hi), size in zip((z, y, x), limits)]
    if any(hi <= lo for lo, hi in bounds):
        raise ApplicationError("the edit lies outside the volume")
    return tuple(slice(lo, hi) for lo, hi in bounds)


def _edit_region(volume: Volume, head: LabelVersion, edit) -> tuple[slice, slice, slice]:
    """Level-0 (z, y, x) slices holding every voxel the edit may change: the named nuclei whole,
    and the drawing on its planes, with one pixel to spare."""
    Z, Y, X = volume.shape
    z0, z1 = edit.planes
    if z1 >= Z:
        raise ApplicationError(f"plane {z1} lies outside the volume's planes 0..{Z - 1}")
    nuclei = {n.label_id: n for n in Nucleus.objects.filter(label_version=head, label_id__in=edit.nucleus_ids)}
    missing = [i for i in edit.nucleus_ids if i not in nuclei]
    if missing:
        raise ApplicationError(f"{head.name} has no nucleus {', '.join(map(str, missing))}",
                               extra={"missing": missing})
    zs, ys, xs = [z0, z1 + 1], [], []
    drawing = edit.drawing_bounds()
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
    zs, ys, xs = region
    if version is None:
        planes = [store.read_region(0, z, ys.start, ys.stop, xs.start, xs.stop) for z in range(zs.start, zs.stop)]
    else:
        planes = [store.read_label_region(version, 0, z, ys.start, ys.stop, xs.start, xs.stop)
                  for z in range(zs.start, zs.stop)]
    return np.stack(planes)


def _copy_nuclei(*, source: LabelVersion, target: LabelVersion, except_ids: set[int]) -> None:
    """Copy the nucleus rows of ``source`` to ``target`` but those of ``except_ids``, inside the
    database (a volume may have 100,000s of nuclei: no row passes through Python)."""
    from django.db import connection

    columns = [f.column for f in Nucleus._meta.concrete_fields if f.column not in ("id", "label_version_id")]
    table = connection.ops.quote_name(Nucleus._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    sql = (f"INSERT INTO {table} ({connection.ops.quote_name('label_version_id')}, {names}) "
           f"SELECT %s, {names} FROM {table} WHERE {connection.ops.quote_name('label_version_id')} = %s")
    params: list = [target.id, source.id]
    excluded = sorted(except_ids)
    if excluded:
        sql += f" AND {connection.ops.quote_name('label_id')} NOT IN ({', '.join(['%s'] * len(excluded))})"
        params += excluded
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _commit_edit(*, volume: Volume, head: LabelVersion, region, before: np.ndarray, after: np.ndarray,
                 user: AbstractBaseUser | None) -> tuple[LabelVersion, set[int], set[int]]:
    """Write ``after`` (the whole region) as the version after ``head`` and its nucleus rows.

    Returns the version and the ids, before and after, of the nuclei that changed. Runs
    inside the caller's transaction (with the volume locked).
    """
    from segmentation.core.measurements import nucleus_table

    changed = before != after
    if not changed.any():
        raise ApplicationError("the edit changes nothing")
    # The edited nuclei: every id on a changed voxel, before or after (a brush stroke changes
    # background voxels only, yet edits the nucleus it paints).
    edited = (set(np.unique(before[changed]).tolist()) | set(np.unique(after[changed]).tolist())) - {0}
    store = volume_store(volume)
    meta = store.write_label_edit(head.name, region, after)
    # A person drew these nuclei: they carry no model score (uncertainty None, ranked last).
    rows = nucleus_table(_only(after, edited), _read_region(store, None, region), store.meta.voxel_size,
                         offset=tuple(s.start for s in region))
    version = LabelVersion.objects.create(
        volume=volume, number=meta.number, name=meta.name, parent=head, source=LabelVersion.Source.EDIT,
        created_by=user, n_labels=meta.n_labels, model_version=head.model_version)
    _copy_nuclei(source=head, target=version, except_ids=edited)
    Nucleus.objects.bulk_create((Nucleus(label_version=version, **row) for row in rows), batch_size=2000)
    ids_before = edited & set(np.unique(before).tolist())
    ids_after = edited & set(np.unique(after).tolist())
    return version, ids_before, ids_after


def _only(labels: np.ndarray, ids: set[int]) -> np.ndarray:
    return np.where(np.isin(labels, sorted(ids)), labels, 0) if ids else np.zeros_like(labels)


def correction_create(*, volume: Volume, user: AbstractBaseUser | None, label_version: str,
                      edit: dict) -> Correction:
    """Carry out one edit on the volume's latest label version and record it.

    Parameters
    ----------
    label_version : the name of the version the user edited; if it is no longer the latest,
        :class:`ApplicationError` with status 409 (nothing is written).
    edit : ``segmentation.core.editing.Edit`` fields (type, nucleus ids, plane, drawing), in
        level-0 pixels.

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
    with transaction.atomic():
        head = _head_for_edit(volume, label_version)
        region = _edit_region(volume, head, parsed)
        store = volume_store(volume)
        before = _read_region(store, head.name, region)
        try:
            after = apply_edit(before, parsed.shifted(*(s.start for s in region)), new_id=head.n_labels + 1)
        except InvalidInputError as exc:
            raise ApplicationError(str(exc)) from None
        version, ids_before, ids_after = _commit_edit(volume=volume, head=head, region=region, before=before,
                                                      after=after, user=user)
        record = _correction_tracker(volume).record(
            f"volume-{volume.id}", parsed.nucleus_ids[0] if parsed.nucleus_ids else min(ids_after),
            _only(before, ids_before | ids_after), _only(after, ids_before | ids_after), parsed.correction_type,
            {"volume": volume.id, "offset": [s.start for s in region], "label_version": head.name,
             "result_version": version.name, "model_version": head.model_version,
             "user": user.get_username() if user is not None else None})
        return Correction.objects.create(
            volume=volume, correction_type=parsed.correction_type, label_version=head, result_version=version,
            model_version=head.model_version, nucleus_ids=sorted(ids_before), new_ids=sorted(ids_after),
            bbox=[v for s in region for v in (s.start, s.stop)], geometry=parsed.to_dict(), record_id=record.id,
            created_by=user)


def _swap_back(*, volume: Volume, head: LabelVersion, correction, remove: np.ndarray, restore: np.ndarray,
               user: AbstractBaseUser | None) -> LabelVersion:
    """A version after ``head`` in which the nuclei of ``remove`` (as they are in ``head``) are
    replaced by those of ``restore``: undo swaps after for before, redo before for after."""
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
    if reused and Nucleus.objects.filter(label_version=head, label_id__in=reused).exists():
        raise ApplicationError(later, status=_STALE_STATUS, extra={"current_label_version": head.name})
    after = current.copy()
    after[np.isin(current, sorted(removed))] = 0
    after[target] = restore[target]
    version, _, _ = _commit_edit(volume=volume, head=head, region=region, before=current, after=after, user=user)
    return version


def _correction_masks(correction) -> tuple[np.ndarray, np.ndarray]:
    """The record's (before, after) masks over the correction's region."""
    return _correction_tracker(correction.volume).load(correction.record_id)


def correction_undo(*, correction: Correction, user: AbstractBaseUser | None, label_version: str) -> Correction:
    """Undo an edit: a new latest version with the edited nuclei as they were before it.

    ``label_version`` is the latest version as the user sees it (409 when it is not). Refused
    with 409 when the edit was undone already or later edits changed the same nuclei. The
    record stays, marked undone (``undone_version``); nothing is deleted.
    """

    volume = correction.volume
    with transaction.atomic():
        head = _head_for_edit(volume, label_version)
        correction = Correction.objects.select_for_update().get(id=correction.id)
        if correction.undone:
            raise ApplicationError("this edit was undone already", status=_STALE_STATUS,
                                   extra={"current_label_version": head.name})
        before, after = _correction_masks(correction)
        version = _swap_back(volume=volume, head=head, correction=correction, remove=after, restore=before, user=user)
        correction.undone_version, correction.undone_at, correction.undone_by = version, timezone.now(), user
        correction.save(update_fields=["undone_version", "undone_at", "undone_by"])
        return correction


def correction_redo(*, correction: Correction, user: AbstractBaseUser | None, label_version: str) -> Correction:
    """Redo an undone edit on the latest version: a new version and a new record (``redo_of``)
    with the same masks. Refused (409) when it is not undone, was redone already, or later
    edits touched its nuclei."""

    volume = correction.volume
    with transaction.atomic():
        head = _head_for_edit(volume, label_version)
        correction = Correction.objects.select_for_update().get(id=correction.id)
        if not correction.undone or correction.redos.exists():
            raise ApplicationError("only an undone edit can be redone, once", status=_STALE_STATUS,
                                   extra={"current_label_version": head.name})
        before, after = _correction_masks(correction)
        version = _swap_back(volume=volume, head=head, correction=correction, remove=before, restore=after, user=user)
        return Correction.objects.create(
            volume=volume, correction_type=correction.correction_type, label_version=head, result_version=version,
            model_version=head.model_version, nucleus_ids=correction.nucleus_ids, new_ids=correction.new_ids,
            bbox=correction.bbox, geometry=correction.geometry, record_id=correction.record_id, created_by=user,
            redo_of=correction)
