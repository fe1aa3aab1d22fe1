"""Reads of the annotation app.

Access rule: a user sees a project, and its volumes, label versions, nuclei, tiles and exports,
only while they are a member of it. Every selector that takes a ``user`` applies that rule in
its query, and one that fetches a single object raises ``DoesNotExist`` for an object the user
may not see exactly as for one that does not exist, so the API answers 404 to both and never
tells an outsider what exists.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When

from annotation import roles
from annotation.models import (
    Assignment,
    AuditEvent,
    Correction,
    LabelVersion,
    Membership,
    Nucleus,
    Project,
    Volume,
    VolumeImportJob,
    rows_of,
)

__all__ = [
    "NUCLEUS_ORDERINGS", "agreement", "assignment_get", "assignment_list", "audit_list", "correction_get",
    "correction_list", "correction_list_by", "correction_planes", "membership_list", "review_queue",
    "nucleus_review_queue", "training_corrections", "label_version_get", "label_version_list", "label_version_orphans",
    "label_version_path_for_tile", "nucleus_list", "nucleus_mesh_get", "uncertainty_scores", "nucleus_rows",
    "project_get", "project_list",
    "user_addable", "volume_get", "volume_import_job_get", "volume_import_job_list", "volume_list",
    "volume_path_for_tile",
]

#: Fields the nucleus list may be ordered by (``-field`` for descending).
NUCLEUS_ORDERINGS = (
    "label_id", "z_min", "z_max", "centroid_z", "volume_voxels", "volume_um3", "mean_intensity",
    "integrated_intensity", "solidity", "uncertainty",
)


def project_list(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """The user's projects, each with ``role``: the user's role in it."""
    return (Project.objects.filter(memberships__user=user).select_related("created_by")
            .annotate(role=F("memberships__role")))


def project_get(*, user: AbstractBaseUser, project_id: int) -> Project:
    return project_list(user=user).get(id=project_id)


def project_find(*, name: str) -> Project | None:
    """The project named ``name`` (names are unique), or None: for commands, which act as no user."""
    return Project.objects.filter(name=name).first()


def project_all() -> QuerySet[Project]:
    """Every project, by name: for the worker's periodic duties, which act as no user."""
    return Project.objects.all()


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


def volume_import_job_get(*, user: AbstractBaseUser, job_id: int) -> VolumeImportJob:
    """An import job of one of the user's projects (``DoesNotExist`` otherwise: 404)."""
    return (VolumeImportJob.objects.filter(project__memberships__user=user)
            .select_related("volume", "created_by", "project").get(id=job_id))


def volume_import_job_list(*, project: Project) -> QuerySet[VolumeImportJob]:
    """A project's imports, newest first."""
    return project.import_jobs.select_related("volume", "created_by").order_by("-id")


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
    nuclei = label_version.nuclei
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
    return (label_version.nuclei.order_by("label_id")
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
    """(label id, score) of every scored nucleus of a version; the caller checked access. Empty
    for a version that does not exist."""
    version = LabelVersion.objects.filter(volume_id=volume_id, name=name).only("volume_id", "number", "lineage").first()
    if version is None:
        return []
    return list(version.nuclei.filter(uncertainty__isnull=False).values_list("label_id", "uncertainty"))


_CORRECTION_RELATED = ("volume", "label_version", "result_version", "undone_version", "created_by", "reviewed_by")


def correction_list(*, volume: Volume, user: AbstractBaseUser | None = None) -> QuerySet[Correction]:
    """A volume's corrections, newest first (the caller has checked access to the volume): a
    student's own only when ``user`` is a student; everyone's for instructors and admins."""
    corrections = volume.corrections.select_related(*_CORRECTION_RELATED).order_by("-id")
    if user is not None:
        if roles.role_of(user=user, project_id=volume.project_id) == roles.STUDENT:
            corrections = corrections.filter(created_by=user)
    return corrections


def correction_list_by(*, project: Project, user: AbstractBaseUser) -> QuerySet[Correction]:
    """The corrections ``user`` made in the project, newest first, with their verdicts (what a
    student sees of their own work)."""
    return (Correction.objects.filter(volume__project=project, created_by=user)
            .select_related(*_CORRECTION_RELATED).order_by("-id"))


def correction_planes(*, corrections: list[Correction]) -> dict[int, int]:
    """Per correction id, the plane that shows its edit best: the plane drawn on for a split,
    an addition or a change of outline; for a merge or a deletion the middle of the nuclei
    edited (mean centroid before and after). Their box may span more planes than the nuclei."""
    wanted = {(c.label_version_id, i) for c in corrections for i in c.nucleus_ids} | {
        (c.result_version_id, i) for c in corrections for i in c.new_ids}
    centroid = {}
    versions = {v.id: v for c in corrections for v in (c.label_version, c.result_version) if v is not None}
    made = {v for v, _ in wanted} & versions.keys()  # a check made no version: its result is None
    if made:  # one query: each version's rows of the ids wanted, sorted out here
        match = Q()
        for version_id in made:
            match |= rows_of(versions[version_id]) & Q(label_id__in={i for v, i in wanted if v == version_id})
        rows = Nucleus.objects.filter(match).values_list("volume_id", "lineage", "since", "until", "label_id",
                                                         "centroid_z")
        for volume_id, lineage, since, until, label_id, z in rows:
            for version_id, version in versions.items():
                if ((version_id, label_id) in wanted and version.volume_id == volume_id
                        and version.lineage == lineage and since <= version.number < until):
                    centroid[(version_id, label_id)] = z
    planes = {}
    for c in corrections:
        z0, z1 = c.bbox[0], c.bbox[1]
        zs = [centroid[(c.label_version_id, i)] for i in c.nucleus_ids if (c.label_version_id, i) in centroid] + [
            centroid[(c.result_version_id, i)] for i in c.new_ids if (c.result_version_id, i) in centroid]
        plane = (c.geometry or {}).get("z") if c.kind.drawings else None  # a kind that takes a drawing
        if not isinstance(plane, int):
            plane = round(sum(zs) / len(zs)) if zs else (z0 + z1 - 1) // 2
        planes[c.id] = min(max(plane, z0), z1 - 1)
    return planes


#: The review queue's own order besides the core's strategies (``SELECTION_STRATEGIES``), and its default.
OLDEST = "oldest"


def review_queue(*, project: Project, strategy: str = OLDEST, seed: int | None = None) -> QuerySet | list:
    """Corrections of the project awaiting a verdict (and still in effect): oldest first, or as
    a strategy of ``segmentation.core.corrections.SELECTION_STRATEGIES`` picks them, each
    ranked by the model's uncertainty of the nuclei it edited (0 when none was scored: an
    addition; ties oldest first), the volumes as the images ``round_robin`` takes in turn."""
    queue = (Correction.objects.filter(volume__project=project, review_status=Correction.Review.PENDING,
                                       undone_at__isnull=True)
             .select_related(*_CORRECTION_RELATED).order_by("id"))
    if strategy == OLDEST:
        return queue
    from segmentation.core.corrections import select_for_review

    corrections = list(queue)
    scores = {}  # (volume, version) -> {label id: score}
    rankings: dict[int, list[tuple[int, float]]] = {}
    for c in corrections:
        key = (c.volume_id, c.label_version.name)
        if key not in scores:
            scores[key] = dict(uncertainty_scores(volume_id=key[0], name=key[1]))
        edited = [scores[key][i] for i in c.nucleus_ids if i in scores[key]]
        rankings.setdefault(c.volume_id, []).append((c.id, max(edited, default=0.0)))
    by_id = {c.id: c for c in corrections}
    return [by_id[i] for _, i, _ in select_for_review(rankings, len(corrections), strategy=strategy, seed=seed)]


def nucleus_review_queue(*, label_version: LabelVersion, strategy: str = "top", size: int = 200,
                         seed: int | None = None) -> tuple[int, list[Nucleus]]:
    """The nuclei of a version to review next, as ``strategy`` (a name of
    ``segmentation.core.corrections.SELECTION_STRATEGIES``) picks ``size`` of them from the
    model's uncertainty scores, each plane (the nucleus' centroid's) an image ``round_robin``
    takes in turn; nuclei without a score follow the picks by label id. Returns the number of
    nuclei in the version and the queue."""
    from segmentation.core.corrections import select_for_review

    rows = list(nucleus_list(label_version=label_version).values_list("label_id", "uncertainty", "centroid_z"))
    rankings: dict[int, list[tuple[int, float]]] = {}
    for label_id, score, z in rows:
        if score is not None:
            rankings.setdefault(round(z), []).append((label_id, score))
    picked = [i for _, i, _ in select_for_review(dict(sorted(rankings.items())), size, strategy=strategy, seed=seed)]
    picked += [label_id for label_id, score, _ in rows if score is None][:size - len(picked)]
    nuclei = {n.label_id: n for n in nucleus_list(label_version=label_version).filter(label_id__in=picked)}
    return len(rows), [nuclei[i] for i in picked]


def training_corrections(*, project: Project) -> QuerySet[Correction]:
    """What a model may learn from: the project's approved corrections still in effect."""
    return (Correction.objects.filter(volume__project=project, review_status=Correction.Review.APPROVED,
                                      undone_at__isnull=True)
            .select_related(*_CORRECTION_RELATED).order_by("id"))


def user_addable(*, by: AbstractBaseUser, username: str):
    """The account ``by`` may add to a project by its exact ``username``, or ``None``.

    Site staff may add any account. Anyone else only accounts they already share a project
    with: any signed-in user may create a project and become its admin, so if a stranger's
    username could be tried there, the answers would tell which accounts exist. ``None`` is
    the one answer for "no such account" and "not one you may add", so the views give a
    single message for both.
    """
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(username=username, is_active=True)
    if not by.is_staff:
        users = users.filter(memberships__project__memberships__user=by)
    return users.distinct().first()


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("role", "user__username")


def assignment_list(*, project: Project | None = None, student: AbstractBaseUser | None = None
                    ) -> QuerySet[Assignment]:
    """Assignments of a project and/or a student, open ones first, then by due date."""
    assignments = Assignment.objects.select_related("project", "volume", "student", "assigned_by")
    if project is not None:
        assignments = assignments.filter(project=project)
    if student is not None:
        assignments = assignments.filter(student=student, project__memberships__user=student)
    order = ["-is_open_rank", F("due").asc(nulls_last=True), "id"]
    return assignments.annotate(is_open_rank=Case(
        When(state__in=Assignment.OPEN_STATES, then=Value(1)),
        default=Value(0), output_field=IntegerField())).order_by(*order)


def assignment_get(*, user: AbstractBaseUser, assignment_id: int) -> Assignment:
    return (Assignment.objects.filter(project__memberships__user=user)
            .select_related("volume", "student", "assigned_by").get(id=assignment_id))


def audit_list(*, project: Project) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(project=project).select_related("user").order_by("-id")


def _pair_scores(a: Correction, b: Correction) -> dict[str, float] | None:
    """F1 at IoU 0.5 and mean IoU of the matched nuclei of two corrections' results, where
    their regions overlap; ``None`` when neither has a nucleus there."""
    from annotation.stores import correction_store
    from segmentation.core.metrics import match_instances

    lo = [max(a.bbox[i], b.bbox[i]) for i in (0, 2, 4)]
    hi = [min(a.bbox[i], b.bbox[i]) for i in (1, 3, 5)]
    if any(h <= low for low, h in zip(lo, hi, strict=True)):
        return None
    crops = []
    for c in (a, b):
        _, after = correction_store(c.volume).load(c.record_id)
        crops.append(after[tuple(slice(low - c.bbox[2 * i], h - c.bbox[2 * i])
                                 for i, (low, h) in enumerate(zip(lo, hi, strict=True)))])
    n_a, n_b = (len(set(np.unique(c).tolist()) - {0}) for c in crops)
    if n_a == 0 and n_b == 0:
        return None
    matches = match_instances(crops[0], crops[1], 0.5)
    tp = len(matches.ious)
    return {"f1": 2 * tp / (n_a + n_b), "iou": float(matches.ious.mean()) if tp else 0.0}


def agreement(*, project: Project) -> dict[str, Any]:
    """Where two people corrected the same nuclei (overlapping edits of one volume, both still
    in effect), how well their results agree.

    Returns ``{"students": [{"student", "compared", "f1", "iou"}], "pairs": [...]}``: per
    student the mean F1 (at IoU 0.5) and mean IoU of matched nuclei of their corrections
    against those of instructors and admins; ``pairs`` lists every compared pair, student
    against student included, with both users, both correction ids and the scores.
    """
    staff = set(project.memberships.filter(role__in=roles.STAFF)
                .values_list("user_id", flat=True))
    corrections = list(Correction.objects.filter(volume__project=project, undone_at__isnull=True,
                                                 created_by__isnull=False)
                       .exclude(review_status=Correction.Review.REJECTED)
                       .select_related("volume", "created_by").order_by("id"))
    pairs, per_student = [], {}
    for i, a in enumerate(corrections):
        for b in corrections[i + 1:]:
            if a.volume_id != b.volume_id or a.created_by_id == b.created_by_id:
                continue
            if a.created_by_id in staff and b.created_by_id in staff:
                continue
            scores = _pair_scores(a, b)
            if scores is None:
                continue
            pairs.append({"volume": a.volume_id, "corrections": [a.id, b.id],
                          "users": [a.created_by.username, b.created_by.username], **scores})
            for student, other in ((a, b), (b, a)):
                if student.created_by_id not in staff and other.created_by_id in staff:
                    per_student.setdefault(student.created_by.username, []).append(scores)
    students = [{"student": name, "compared": len(rows), "f1": sum(r["f1"] for r in rows) / len(rows),
                 "iou": sum(r["iou"] for r in rows) / len(rows)} for name, rows in sorted(per_student.items())]
    students.sort(key=lambda row: row["f1"])  # who needs help first
    return {"students": students, "pairs": pairs}


def correction_get(*, user: AbstractBaseUser, correction_id: int) -> Correction:
    return (Correction.objects.filter(volume__project__memberships__user=user)
            .select_related("volume", "label_version", "result_version", "undone_version", "created_by")
            .get(id=correction_id))


def _mesh_region(volume: Volume, boxes: list[tuple[int, int, int, int, int, int]], pad: int = 1):
    """Level-0 slices around the union of inclusive boxes (z0, z1, y0, y1, x0, x1), ``pad``
    voxels wider, clipped to the volume."""
    lo = np.min([b[0::2] for b in boxes], axis=0) - pad
    hi = np.max([b[1::2] for b in boxes], axis=0) + 1 + pad
    return tuple(slice(max(int(a), 0), min(int(b), n)) for a, b, n in zip(lo, hi, volume.shape, strict=True))


def _nucleus_box(volume: Volume, nucleus: Nucleus) -> tuple[int, int, int, int, int, int]:
    _, Y, X = volume.shape
    if None in (nucleus.y_min, nucleus.y_max, nucleus.x_min, nucleus.x_max):  # measured before boxes were kept
        return nucleus.z_min, nucleus.z_max, 0, Y - 1, 0, X - 1
    return nucleus.z_min, nucleus.z_max, nucleus.y_min, nucleus.y_max, nucleus.x_min, nucleus.x_max


def nucleus_mesh_get(*, label_version: LabelVersion, label_id: int, neighbours: bool = True,
                     max_triangles: int = 5000) -> dict[str, Any]:
    """A 3D look at one nucleus: its surface mesh (and those of the nuclei touching it) in
    micrometres, its z extent, volume, uncertainty and area per plane, and what suggests a
    z-merge (``segmentation.core.meshes``).

    Reads the nucleus' bounding box (one voxel wider, to find who touches it), then the union
    of its box and its neighbours' boxes; past ``EZQUANT_EDIT_MAX_VOXELS`` the neighbours are
    cut at the nucleus' box widened by half its size, and a nucleus whose own box is larger is
    refused (400). ``DoesNotExist`` for a nucleus the version does not have.
    """
    from django.conf import settings

    from annotation.stores import volume_store
    from ezquant_web.errors import ApplicationError
    from segmentation.core.meshes import nucleus_mesh, touching_labels, z_merge_signs, z_profile, z_waist

    volume = label_version.volume
    nucleus = label_version.nuclei.get(label_id=label_id)
    limit = settings.EZQUANT_EDIT_MAX_VOXELS
    store = volume_store(volume)

    def read(region) -> np.ndarray:
        size = int(np.prod([s.stop - s.start for s in region]))
        if size > limit:
            raise ApplicationError(f"nucleus {label_id} spans {size:,} voxels with its surroundings; a 3D view reads "
                                   f"at most {limit:,} (EZQUANT_EDIT_MAX_VOXELS)",
                                   extra={"voxels": size, "limit": limit, "setting": "EZQUANT_EDIT_MAX_VOXELS"})
        zs, ys, xs = region
        return np.stack([store.read_label_region(label_version.name, 0, z, ys.start, ys.stop, xs.start, xs.stop)
                         for z in range(zs.start, zs.stop)])

    box = _nucleus_box(volume, nucleus)
    around = _mesh_region(volume, [box])
    touching = touching_labels(read(around), label_id) if neighbours else []
    others = {n.label_id: n for n in label_version.nuclei.filter(label_id__in=touching)}
    region = _mesh_region(volume, [box, *(_nucleus_box(volume, n) for n in others.values())])
    if int(np.prod([s.stop - s.start for s in region])) > limit:
        half = [max(2, (b - a) // 2) for a, b in zip(box[0::2], box[1::2], strict=True)]
        region = tuple(slice(max(s.start, a - h), min(s.stop, b + 1 + h))
                       for s, a, b, h in zip(region, box[0::2], box[1::2], half, strict=True))
    labels = read(region)
    offset = tuple(s.start for s in region)
    present = set(np.unique(labels).tolist())
    # The neighbours share the triangle budget with the nucleus: a quarter for them all.
    shown = [i for i in touching if i in present]
    share = max(12, max_triangles // 4 // max(1, len(shown)))
    meshes = []
    for i, role, budget in [(label_id, "nucleus", max_triangles), *((i, "neighbour", share) for i in shown)]:
        mesh = nucleus_mesh(labels, i, voxel_size=volume.voxel_size, offset=offset, max_triangles=budget)
        meshes.append({"label_id": i, "role": role, "n_triangles": mesh.n_triangles,
                       "vertices": np.round(mesh.vertices.ravel(), 3).tolist(), "faces": mesh.faces.ravel().tolist()})
    vz = volume.voxel_size[0]
    profile = [(z + offset[0], area) for z, area in z_profile(labels, label_id, voxel_size=volume.voxel_size)]
    return {
        "label_version": label_version.name, "label_id": int(label_id), "voxel_size": list(volume.voxel_size),
        "z_min": nucleus.z_min, "z_max": nucleus.z_max,
        "z_extent_um": (nucleus.z_max - nucleus.z_min + 1) * vz, "volume_um3": nucleus.volume_um3,
        "volume_voxels": nucleus.volume_voxels, "uncertainty": nucleus.uncertainty,
        "neighbours": shown, "profile": [{"z": z, "area_um2": a} for z, a in profile],
        "z_merge_signs": z_merge_signs(profile, z_step=vz) if volume.shape[0] > 1 else [],
        "waist_z": z_waist(profile) if volume.shape[0] > 1 else None,
        "meshes": meshes,
    }


#: A nucleus whose model score is at least this counts as uncertain in a student's progress
#: ("12 of 40 uncertain nuclei checked").
UNCERTAIN_SCORE = 0.5


def volume_curation(*, volume: Volume) -> dict[str, Any]:
    """What people did to the volume that a new segmentation keeps (``segmentation.services``):
    in its latest version the nuclei made or changed by a person (``edited``) and those checked
    (``checked``), the deletions in effect (``deleted``: their places stay empty); and its open
    assignments and corrections awaiting review. What the viewer says before a job starts, and
    what a job started from scratch records that it drops."""
    from django.db.models import Count, Q

    head = LabelVersion.objects.filter(volume=volume).order_by("-number").first()
    counts = {"edited": 0, "checked": 0}
    if head is not None:
        counts = head.nuclei.aggregate(
            edited=Count("id", filter=Q(curation=Nucleus.Curation.EDITED)),
            checked=Count("id", filter=Q(curation=Nucleus.Curation.CHECKED)))
    return {"label_version": head.name if head is not None else None, **counts,
            "open_assignments": volume.assignments.filter(
                state__in=Assignment.OPEN_STATES).count(),
            "pending_corrections": volume.corrections.filter(review_status=Correction.Review.PENDING,
                                                             undone_at__isnull=True).count(),
            "deleted": volume.corrections.filter(correction_type="delete", undone_at__isnull=True,
                                                 reverted_version__isnull=True)
            .exclude(review_status=Correction.Review.REJECTED).count()}


def assignment_progress(*, assignments) -> dict[int, dict[str, int]]:
    """Per assignment id, in the latest labels of its volume and inside its region (by the
    nuclei's centroids): ``uncertain`` (scored at least :data:`UNCERTAIN_SCORE`), how many of
    those are ``checked``, and how many nuclei a person made or changed (``edited``)."""
    from django.db.models import Count, Q

    progress = {}
    heads: dict[int, LabelVersion | None] = {}
    for a in assignments:
        if a.volume_id not in heads:
            heads[a.volume_id] = LabelVersion.objects.filter(volume_id=a.volume_id).order_by("-number").first()
        head = heads[a.volume_id]
        nuclei = head.nuclei if head is not None else Nucleus.objects.none()
        if a.region:
            z0, z1, y0, y1, x0, x1 = a.region
            nuclei = nuclei.filter(centroid_z__gte=z0, centroid_z__lt=z1, centroid_y__gte=y0, centroid_y__lt=y1,
                                   centroid_x__gte=x0, centroid_x__lt=x1)
        uncertain = Q(uncertainty__gte=UNCERTAIN_SCORE)
        progress[a.id] = nuclei.aggregate(
            uncertain=Count("id", filter=uncertain),
            checked=Count("id", filter=uncertain & Q(curation=Nucleus.Curation.CHECKED)),
            edited=Count("id", filter=Q(curation=Nucleus.Curation.EDITED)))
    return progress


def recent_verdicts(*, project: Project, limit: int = 10) -> QuerySet[Correction]:
    """The project's latest verdicts, newest first: what the review page says happened to each
    (approved; rejected with its edit taken out of the labels, ``reverted_version``, or kept)."""
    return (Correction.objects.filter(volume__project=project, reviewed_at__isnull=False)
            .exclude(review_status=Correction.Review.PENDING).exclude(reviewed_by=F("created_by"))  # own edits
            .select_related(*_CORRECTION_RELATED, "reverted_version").order_by("-reviewed_at", "-id")[:limit])


def corrections_after(*, corrections: list[Correction]) -> dict[int, list[Correction]]:
    """Per correction id, the later corrections of its volume whose region meets its own and
    that are still in the labels: where rejecting it may meet later work on the same nuclei
    (``correction_revert`` decides from the voxels; this is what the review page warns of)."""
    volumes = {c.volume_id for c in corrections}
    first = min((c.id for c in corrections), default=0)
    later = list(Correction.objects.filter(volume_id__in=volumes, id__gt=first, undone_at__isnull=True,
                                           reverted_version__isnull=True)
                 .exclude(review_status=Correction.Review.REJECTED).select_related("created_by").order_by("id"))
    found = {}
    for c in corrections:
        box = c.bbox
        found[c.id] = [o for o in later if o.volume_id == c.volume_id and o.id > c.id and all(
            o.bbox[2 * i] < box[2 * i + 1] and box[2 * i] < o.bbox[2 * i + 1] for i in range(3))]
    return found
