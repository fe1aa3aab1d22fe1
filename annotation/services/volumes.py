"""Writes of projects, members, volumes, label versions and exports.

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

import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from annotation.models import LabelVersion, Membership, Project, Volume
from annotation.services.audit import audit_record
from annotation.services.nuclei import nuclei_create
from annotation.stores import volume_store
from ezquant_web.errors import ApplicationError

__all__ = [
    "label_version_create", "label_version_export_tiff", "label_version_export_zarr", "label_version_upload",
    "membership_add",
    "project_create", "volume_import", "volume_row_create",
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
        audit_record(user=user, project_id=project.id, action="project.create", obj=project, name=name)
    return project


def membership_add(*, project: Project, user: AbstractBaseUser,
                   role: str = Membership.Role.STUDENT, added_by: AbstractBaseUser | None = None) -> Membership:
    """Make ``user`` a member of ``project``; refused if they already are."""
    if role not in Membership.Role.values:
        raise ApplicationError(f"role must be one of {', '.join(Membership.Role.values)}, got {role!r}")
    if Membership.objects.filter(project=project, user=user).exists():
        raise ApplicationError(f"{user.get_username()} is already a member of {project.name}")
    with transaction.atomic():
        membership = Membership.objects.create(project=project, user=user, role=role)
        audit_record(user=added_by, project_id=project.id, action="membership.add", obj=membership,
                     member=user.get_username(), role=role)
    return membership


def volume_import(*, project: Project, src_path: str | os.PathLike, name: str, user: AbstractBaseUser | None,
                  channel: int | None = None, voxel_size: tuple[float, ...] | None = None) -> Volume:
    """Import a TIFF / OME-TIFF file or OME-Zarr directory into ``project`` as a new volume.

    The image is streamed plane by plane into ``EZQUANT_DATA_DIR/volumes/<uuid>``; images with
    more than ``EZQUANT_MAX_VOXELS`` voxels or that decode to more than
    ``EZQUANT_MAX_IMAGE_BYTES`` are refused from the file's header, before anything is decoded
    or written. ``name``
    defaults to the source's file name. Storage errors (unreadable file, wrong axes, missing
    channel, too large) propagate as :class:`~annotation.storage.StorageError`.
    """
    from annotation.storage import import_image

    relative = f"{VOLUMES_DIR}/{uuid.uuid4().hex}"
    dest = _data_dir() / relative
    store = import_image(src_path, dest, channel=channel, voxel_size=voxel_size,
                         max_voxels=settings.EZQUANT_MAX_VOXELS, max_bytes=settings.EZQUANT_MAX_IMAGE_BYTES,
                         streamed_above=settings.EZQUANT_BLOCK_VOXELS)
    try:
        with transaction.atomic():
            return volume_row_create(project=project, path=relative, meta=store.meta, user=user,
                                     name=(name or "").strip() or Path(src_path).name)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # no row will ever name it
        raise


def volume_row_create(*, project: Project, path: str, meta, name: str, user: AbstractBaseUser | None) -> Volume:
    """The row (and audit record) of a volume whose directory ``path`` (relative to
    ``EZQUANT_DATA_DIR``) is written and described by ``meta``; inside the caller's
    transaction (``volume_import``, an import job's commit)."""
    volume = Volume.objects.create(
        project=project, name=name[:200], path=path,
        shape_z=meta.shape[0], shape_y=meta.shape[1], shape_x=meta.shape[2], dtype=meta.dtype,
        voxel_size_z=meta.voxel_size[0], voxel_size_y=meta.voxel_size[1], voxel_size_x=meta.voxel_size[2],
        contrast_lo=meta.contrast_limits[0], contrast_hi=meta.contrast_limits[1],
        n_levels=meta.n_levels, created_by=user)
    audit_record(user=user, project_id=project.id, action="volume.import", obj=volume, name=volume.name,
                 shape=list(meta.shape))
    return volume


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
    from annotation.storage.labels import as_labels

    store = volume_store(volume)
    # Validate and measure before any file is written: labels refused here leave no version
    # directory behind (an orphan would make the version numbers jump).
    labels = as_labels(labels, store.meta.shape)
    rows = nucleus_table(labels, store.read_volume(0), store.meta.voxel_size, uncertainty=uncertainty)
    meta = store.write_labels(labels, parent=parent.name if parent is not None else None)
    with transaction.atomic():
        version = LabelVersion.objects.create(
            volume=volume, number=meta.number, name=meta.name, parent=parent, source=source,
            created_by=user, n_labels=meta.n_labels, model_version=model_version)
        nuclei_create(version=version, rows=rows)
        audit_record(user=user, project_id=volume.project_id, action=f"label_version.{source}", obj=version,
                     label_version=version.name, parent=parent.name if parent is not None else None,
                     model_version=model_version, nuclei=len(rows))
    return version


def label_version_create_planes(*, volume: Volume, plane_of, n_labels: int, rows: Iterable[dict[str, Any]],
                                user: AbstractBaseUser | None, source: str, model_version: str = "",
                                parent: LabelVersion | None = None) -> LabelVersion:
    """Store a segmentation too large to hold whole as the volume's next label version, a plane
    at a time, with its nuclei measured already.

    Parameters
    ----------
    plane_of : ``plane_of(z)`` returns level-0 plane ``z`` as a (Y, X) integer array; called
        once per plane, in order (e.g. ``BlockwiseResult.plane``).
    n_labels : the largest id.
    rows : one dict per nucleus with the fields of ``measurements.NUCLEUS_FIELDS`` (e.g.
        ``BlockwiseResult.rows``), read once and stored in batches as they come: a generator
        keeps the table out of memory.
    parent : the version these labels derive from (a re-segmentation keeping people's nuclei).

    The version directory is published only when every plane is written, and its rows are
    created in one transaction after that, as in :func:`label_version_create`.
    """
    if source not in LabelVersion.Source.values:
        raise ApplicationError(f"source must be one of {', '.join(LabelVersion.Source.values)}, got {source!r}")
    if parent is not None and parent.volume_id != volume.id:
        raise ApplicationError(f"the parent version {parent.name} belongs to another volume")
    meta = volume_store(volume).write_label_planes(plane_of, n_labels=n_labels,
                                                   parent=parent.name if parent is not None else None)
    with transaction.atomic():
        version = LabelVersion.objects.create(
            volume=volume, number=meta.number, name=meta.name, parent=parent, source=source,
            created_by=user, n_labels=meta.n_labels, model_version=model_version)
        stored = nuclei_create(version=version, rows=rows)
        audit_record(user=user, project_id=volume.project_id, action=f"label_version.{source}", obj=version,
                     label_version=version.name, parent=parent.name if parent is not None else None,
                     model_version=model_version, nuclei=stored)
    return version


def label_version_upload(*, volume: Volume, src_path: str | os.PathLike, user: AbstractBaseUser | None,
                         parent: LabelVersion | None = None) -> LabelVersion:
    """A new label version (source ``upload``) from a label TIFF of the volume's shape.

    The TIFF holds (Z, Y, X) integer ids, or (Y, X) for a 2D volume; extra axes of length 1
    (ImageJ's T and C) are dropped. Shape and type are checked from the file's header before
    any pixel is decoded, so a small file that would decode to gigabytes costs nothing. Ids
    must stay below ``LABEL_ID_LIMIT - 1`` (2**24 - 1: what a label tile carries, with room
    for one more nucleus). A file that is no TIFF, of the wrong shape or type (bool masks
    included) or with ids out of range raises :class:`ApplicationError` (400), and nothing is
    written; so does a volume whose image is larger than ``EZQUANT_MAX_IMAGE_BYTES`` (imported
    a plane at a time; an upload reads it whole).
    """
    import tifffile  # only uploads need it

    from annotation.storage.tiles import LABEL_ID_LIMIT

    shape = volume.shape
    image_bytes = math.prod(shape) * np.dtype(volume.dtype).itemsize
    if image_bytes > settings.EZQUANT_MAX_IMAGE_BYTES:
        # Imported a plane at a time and segmented block by block; an upload is read whole
        # (the labels and, to measure the nuclei, the image).
        raise ApplicationError(
            f"labels cannot be uploaded for volume {volume.name!r}: its image ({image_bytes:,} bytes) is larger than "
            f"EZQUANT_MAX_IMAGE_BYTES ({settings.EZQUANT_MAX_IMAGE_BYTES:,}) and an upload reads the labels and the "
            "image whole", extra={"image_bytes": image_bytes, "limit": settings.EZQUANT_MAX_IMAGE_BYTES})
    try:
        with tifffile.TiffFile(src_path) as tif:
            series = tif.series[0] if tif.series else None
            if series is None or 0 in series.shape:
                raise ApplicationError("the labels TIFF holds no image")
            found, dtype = tuple(int(s) for s in series.shape), np.dtype(series.dtype)
            if tuple(s for s in found if s != 1) != tuple(s for s in shape if s != 1):
                raise ApplicationError(f"labels have shape {found}, the volume is {shape} (z, y, x)",
                                       extra={"shape": list(found), "volume_shape": list(shape)})
            if dtype.kind == "b":
                raise ApplicationError("the labels are a true/false mask; labels hold an integer id per nucleus "
                                       "(0 = background): label the mask's objects first",
                                       extra={"dtype": str(dtype)})
            if dtype.kind not in "ui":
                raise ApplicationError(f"labels must be integers (0 = background), got {dtype}",
                                       extra={"dtype": str(dtype)})
            labels = series.asarray().reshape(shape)
    except ApplicationError:
        raise
    except Exception as exc:  # tifffile raises many types for a bad file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ApplicationError(f"the labels are not a readable TIFF file: {reason}") from None
    if labels.dtype.kind == "i" and labels.min() < 0:
        raise ApplicationError("the labels contain negative ids; ids are 0 (background) or positive")
    largest = int(labels.max())
    if largest >= LABEL_ID_LIMIT - 1:
        raise ApplicationError(
            f"the labels' largest id is {largest:,}; ids must be below {LABEL_ID_LIMIT - 1:,} (what a label tile "
            "carries, with room for a nucleus added later): renumber them 1..N",
            extra={"largest_id": largest, "limit": LABEL_ID_LIMIT - 1})
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
