"""Reads of the annotation app.

Access rule: a user sees a project, and its volumes, label versions, nuclei, tiles and exports,
only while they are a member of it. Every selector that takes a ``user`` applies that rule in
its query, and one that fetches a single object raises ``DoesNotExist`` for an object the user
may not see exactly as for one that does not exist, so the API answers 404 to both and never
tells an outsider what exists.
"""

from __future__ import annotations

from typing import Any, Iterator

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, OuterRef, QuerySet, Subquery

from annotation.models import Correction, LabelVersion, Nucleus, Project, Volume

__all__ = [
    "NUCLEUS_ORDERINGS", "correction_get", "correction_list", "label_version_get", "label_version_list", "label_version_orphans",
    "label_version_path_for_tile", "nucleus_list", "uncertainty_scores", "nucleus_rows", "project_get", "project_list",
    "volume_get", "volume_list", "volume_path_for_tile",
]

#: Fields the nucleus list may be ordered by (``-field`` for descending).
NUCLEUS_ORDERINGS = (
    "label_id", "z_min", "z_max", "centroid_z", "volume_voxels", "volume_um3", "mean_intensity",
    "integrated_intensity", "solidity", "uncertainty",
)


def project_list(*, user: AbstractBaseUser) -> QuerySet[Project]:
    return Project.objects.filter(memberships__user=user).select_related("created_by")


def project_get(*, user: AbstractBaseUser, project_id: int) -> Project:
    return project_list(user=user).get(id=project_id)


def _with_latest_version(volumes: QuerySet[Volume]) -> QuerySet[Volume]:
    """Each volume with ``latest_label_version``: the name of its newest label version, or None."""
    newest = LabelVersion.objects.filter(volume=OuterRef("pk")).order_by("-number").values("name")[:1]
    return volumes.annotate(latest_label_version=Subquery(newest))


def volume_list(*, user: AbstractBaseUser, project_id: int) -> QuerySet[Volume]:
    """The volumes of a project the user is a member of; ``Project.DoesNotExist`` otherwise."""
    project = project_get(user=user, project_id=project_id)
    return _with_latest_version(project.volumes.select_related("created_by").order_by("id"))


def volume_get(*, user: AbstractBaseUser, volume_id: int) -> Volume:
    return (_with_latest_version(Volume.objects.filter(project__memberships__user=user))
            .select_related("created_by", "project").get(id=volume_id))


def label_version_list(*, volume: Volume) -> QuerySet[LabelVersion]:
    return volume.label_versions.select_related("parent", "created_by").order_by("number")


def label_version_get(*, user: AbstractBaseUser, volume_id: int, name: str) -> LabelVersion:
    return (LabelVersion.objects.filter(volume__project__memberships__user=user)
            .select_related("volume", "parent", "created_by").get(volume_id=volume_id, name=name))


def nucleus_list(*, label_version: LabelVersion, filters: dict[str, Any] | None = None) -> QuerySet[Nucleus]:
    """The nuclei of a version, filtered and ordered.

    ``filters`` keys (all optional): ``label_id_min``, ``label_id_max`` (inclusive); ``z``: only
    nuclei present in that plane; ``min_volume_voxels``, ``min_volume_um3``; ``ordering``: a
    name of :data:`NUCLEUS_ORDERINGS`, ``-`` in front for descending. Nuclei without an
    uncertainty come last in either direction; ties are broken by label id.
    """
    filters = filters or {}
    nuclei = Nucleus.objects.filter(label_version=label_version)
    if filters.get("label_id_min") is not None:
        nuclei = nuclei.filter(label_id__gte=filters["label_id_min"])
    if filters.get("label_id_max") is not None:
        nuclei = nuclei.filter(label_id__lte=filters["label_id_max"])
    if filters.get("z") is not None:
        nuclei = nuclei.filter(z_min__lte=filters["z"], z_max__gte=filters["z"])
    if filters.get("min_volume_voxels") is not None:
        nuclei = nuclei.filter(volume_voxels__gte=filters["min_volume_voxels"])
    if filters.get("min_volume_um3") is not None:
        nuclei = nuclei.filter(volume_um3__gte=filters["min_volume_um3"])
    ordering = filters.get("ordering") or "label_id"
    field = ordering.lstrip("-")
    if field not in NUCLEUS_ORDERINGS:
        raise ValueError(f"cannot order nuclei by {ordering!r}")
    key = F(field).desc(nulls_last=True) if ordering.startswith("-") else F(field).asc(nulls_last=True)
    return nuclei.order_by(key, "label_id")


def nucleus_rows(*, label_version: LabelVersion, fields: tuple[str, ...]) -> Iterator[tuple]:
    """Every nucleus of a version as a tuple of ``fields``, by label id, read in chunks
    (for a CSV export of any size)."""
    return (Nucleus.objects.filter(label_version=label_version).order_by("label_id")
            .values_list(*fields).iterator(chunk_size=2000))


def label_version_orphans(*, volume: Volume) -> list[str]:
    """Label versions stored in the volume's directory that no row names (see
    ``annotation.services``): what a clean-up may remove."""
    from annotation.stores import volume_store

    known = set(volume.label_versions.values_list("name", flat=True))
    return [name for name in volume_store(volume).label_versions() if name not in known]


# -- tiles: one query each, joining the membership (and the token, when one is given) ---------

def _tile_access(queryset: QuerySet, prefix: str, *, user_id: int | None, token: str | None) -> QuerySet:
    member = f"{prefix}project__memberships__user"
    if token is not None:
        return queryset.filter(**{f"{member}__auth_token__key": token, f"{member}__is_active": True})
    return queryset.filter(**{f"{member}_id": user_id})


def volume_path_for_tile(*, volume_id: int, user_id: int | None = None, token: str | None = None) -> str | None:
    """The stored path of a volume if the user (by id, or by API token) is a member of its
    project, else ``None``: a single query."""
    volumes = _tile_access(Volume.objects.filter(id=volume_id), "", user_id=user_id, token=token)
    return volumes.values_list("path", flat=True).first()


def label_version_path_for_tile(*, volume_id: int, name: str, user_id: int | None = None,
                                token: str | None = None) -> str | None:
    """Like :func:`volume_path_for_tile`, and the version must exist (has a row)."""
    versions = _tile_access(LabelVersion.objects.filter(volume_id=volume_id, name=name), "volume__",
                            user_id=user_id, token=token)
    return versions.values_list("volume__path", flat=True).first()


def uncertainty_scores(*, volume_id: int, name: str) -> list[tuple[int, float]]:
    """(label id, score) of every scored nucleus of a version; the caller checked access."""
    return list(Nucleus.objects.filter(label_version__volume_id=volume_id, label_version__name=name,
                                       uncertainty__isnull=False).values_list("label_id", "uncertainty"))


def correction_list(*, volume: Volume) -> QuerySet[Correction]:
    """A volume's corrections, newest first (the caller has checked access to the volume)."""
    return (volume.corrections.select_related("label_version", "result_version", "undone_version", "created_by")
            .order_by("-id"))


def correction_get(*, user: AbstractBaseUser, correction_id: int) -> Correction:
    return (Correction.objects.filter(volume__project__memberships__user=user)
            .select_related("volume", "label_version", "result_version", "undone_version", "created_by")
            .get(id=correction_id))
