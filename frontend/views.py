import asyncio
import functools
import logging
import secrets
from pathlib import Path

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from annotation import roles, selectors
from annotation.models import Membership, Project, Volume
from ezquant_web.errors import ApplicationError
from ezquant_web.jobs.events import job_state
from segmentation import selectors as segmentation_selectors

logger = logging.getLogger(__name__)

# How long /healthz waits for its own message to come back through the channel layer.
_CHANNEL_TIMEOUT_S = 2.0


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/home.html", {"version": settings.VERSION})


@login_required
@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    """The user's projects and their volumes, each linked to its viewer."""
    volumes = Volume.objects.annotate(n_label_versions=Count("label_versions")).order_by("id")
    projects = selectors.project_list(user=request.user).prefetch_related(Prefetch("volumes", queryset=volumes))
    queue = _with_progress([_with_viewer_link(a) for a in selectors.assignment_list(student=request.user)])
    return render(request, "frontend/projects.html", {"version": settings.VERSION, "projects": projects,
                                                      "queue": queue})


@login_required
@require_GET
def volume_viewer(request: HttpRequest, volume_id: int) -> HttpResponse:
    """The viewer of one volume: the page is a shell, the browser does the rest through the
    REST API and the tiles (``frontend/src/viewer``). 404 for a volume the user may not see,
    as in the API."""
    try:
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
    except Volume.DoesNotExist:
        raise Http404("no such volume") from None
    versions = [v.name for v in selectors.label_version_list(volume=volume)]
    # ?version=v3 shows that version first (the review page links an edit's before and after);
    # the viewer marks it as not the latest, and an edit made on it is refused with 409.
    from segmentation.core.corrections import SELECTION_STRATEGIES
    from segmentation.core.editing import EDIT_KINDS

    shown = request.GET.get("version")
    head = shown if shown in versions else (versions[-1] if versions else None)
    # Where this person may edit: the page draws a student's regions and greys the tools out
    # elsewhere (the API refuses such edits anyway).
    try:
        regions, can_edit, edit_note = roles.editable_regions(user=request.user, volume=volume), True, ""
    except ApplicationError as refusal:
        regions, can_edit, edit_note = [], False, f"You may look at this volume but not edit it: {refusal.message}"
    config = {
        "volume": {
            "id": volume.id, "name": volume.name, "project": volume.project.name, "shape": list(volume.shape),
            "dtype": volume.dtype, "voxel_size": list(volume.voxel_size),
            "contrast_limits": list(volume.contrast_limits), "level_shapes": [list(s) for s in volume.level_shapes],
        },
        "label_versions": versions,
        "head": head,
        "api": reverse("volume-detail", kwargs={"volume_id": volume.id}).rsplit("volumes/", 1)[0],
        "websocket": f"/ws/volumes/{volume.id}/jobs/",
        "live_websocket": f"/ws/volumes/{volume.id}/live/",
        "csrf_token": get_token(request),
        "can_edit": can_edit,
        "editable_regions": regions,
        "edit_note": edit_note,
        "user": request.user.get_username(),
        # The kinds of correction (the viewer offers the tools that make them): the core's registry.
        "edit_kinds": [kind.to_dict() for kind in EDIT_KINDS.values()],
        # How the nuclei queue may be ordered (nuclei/queue/?strategy=): the core's registry.
        "selection_strategies": [{"name": s.name, "summary": s.summary} for s in SELECTION_STRATEGIES.values()],
    }
    from segmentation.core.modelzoo import default_model_for
    from segmentation.core.params import backend_catalogue

    backends = backend_catalogue()  # each backend's menu line and options, the default first
    return render(request, "frontend/viewer.html", {"version": settings.VERSION, "volume": volume,
                                                    "viewer_config": config, "backends": backends,
                                                    "default_model": _default_model_label(
                                                        volume, shipped=default_model_for(tuple(volume.shape))),
                                                    "segmentation_defaults": _segmentation_defaults()})


def _segmentation_defaults() -> dict:
    """The mask step's parameters the viewer's form leaves optional: for each, its default (the
    field's placeholder) and the bounds ``SegmentationParams`` checks (the field's min and max)."""
    from segmentation.core.params import MASK_STEP_BOUNDS, SegmentationParams

    defaults = SegmentationParams()
    return {name: {"default": getattr(defaults, name), "min": bounds.get("low", ""), "max": bounds.get("high", "")}
            for name, bounds in MASK_STEP_BOUNDS.items()}


def _default_model_label(volume: Volume, *, shipped: str) -> str:
    """What a job with no model named runs on this volume, for the viewer's Model field: the
    project's promoted model version, else ``shipped`` (the shipped default for its shape)."""
    promotion = segmentation_selectors.model_promotion_list(project=volume.project).first()
    if promotion is not None and promotion.model_version is not None:
        version = promotion.model_version
        return f"model version {version.number} of {volume.project.name}, promoted ({version.name})"
    return shipped


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("SELECT 1 did not return 1")


async def _channel_round_trip() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured (CHANNEL_LAYERS)")
    channel = await layer.new_channel("healthz")
    nonce = secrets.token_hex(8)
    await layer.send(channel, {"type": "healthz.ping", "nonce": nonce})
    message = await asyncio.wait_for(layer.receive(channel), _CHANNEL_TIMEOUT_S)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned another message")


def _check_channel_layer() -> None:
    async_to_sync(_channel_round_trip)()


def _check_job_queue() -> None:
    from ezquant_web.jobs.runner import job_queue_stuck

    stuck = job_queue_stuck()
    if stuck is not None:
        raise RuntimeError(f"{stuck.kind} job {stuck.id} has waited since {stuck.created_at.isoformat()} and no job "
                           "started, gave a heartbeat or finished since (EZQUANT_JOB_QUEUE_STUCK_SECONDS)")


def _check_worker() -> None:
    from segmentation.worker import embedded_worker_alive

    if embedded_worker_alive() is False:  # None: this process runs no worker
        raise RuntimeError("the embedded job worker thread had died (it was started again)")


_CHECKS = {"database": _check_database, "channel_layer": _check_channel_layer, "job_queue": _check_job_queue}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness in one: 200 when every dependency answers, 503 otherwise.

    Checks: the database, the channel layer, the job queue (503 when a job has waited
    ``EZQUANT_JOB_QUEUE_STUCK_SECONDS`` while no job started, gave a heartbeat or finished) and,
    in a process running the embedded worker, that its thread is alive (a dead one is started
    again, and this answer is still 503).

    The body says which check failed but not why: the reason (host names, credentials in an
    error message) goes to the log, not to whoever asks.
    """
    body: dict[str, str] = {"status": "ok", "version": settings.VERSION}
    checks = dict(_CHECKS)
    if settings.EZQUANT_EMBEDDED_WORKER:
        checks["worker"] = _check_worker
    for name, check in checks.items():
        try:
            check()
        except Exception:
            logger.exception("health check %s failed", name)
            body[name] = "error"
            body["status"] = "error"
        else:
            body[name] = "ok"
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


# -- the pages of a project: its work, assignments, review, agreement, audit, training -------
#
# Reads go through the selectors, as in the API; every write is a POST to the REST API from
# the page (frontend/src/pages/actions.js), so a rule is checked in one place only.

_PAGE_SIZE = 50
# Below this mean F1 against the instructors the agreement page marks a student "needs help".
_NEEDS_HELP_F1 = 0.7
# The before/after thumbnails of an edit on the review page: at most this many pixels a side
# (the pyramid level is chosen for it), read from the viewer's tiles of this size.
_THUMB_PX = 160
_TILE_PX = 256


def _page(request: HttpRequest, template: str, context: dict, *, status: int = 200) -> HttpResponse:
    return render(request, template, {"version": settings.VERSION, **context}, status=status)


def _project_page(*, allowed: tuple[str, ...], action: str):
    """A page of one project for the roles in ``allowed``: sign-in first, then 404 for a
    non-member (the API's answer: an outsider learns nothing) and a 403 page with the API's
    sentence for a member whose role may not. The view is called with the project, whose
    ``role`` is the user's."""

    def decorate(view):
        @functools.wraps(view)
        def page(request: HttpRequest, project_id: int) -> HttpResponse:
            try:
                project = selectors.project_get(user=request.user, project_id=project_id)
                roles.require_role(user=request.user, project_id=project.id, roles=allowed, action=action)
            except Project.DoesNotExist:
                raise Http404("no such project") from None
            except ApplicationError as exc:
                return _page(request, "frontend/forbidden.html", {"project": project, "message": exc.message},
                             status=403)
            return view(request, project)

        return login_required(require_GET(page))

    return decorate


def _viewer_place(volume: Volume, box: list[int] | None, z: int | None = None) -> str:
    """The viewer's address fragment (``#z=&y=&x=&r=``) that centres ``box`` ([z0, z1, y0, y1,
    x0, x1), level-0 voxels) with room around it, on plane ``z`` (the box's middle plane when
    not given); empty for the whole volume."""
    if not box:
        return ""
    z0, z1, y0, y1, x0, x1 = box
    extent = max(y1 - y0, x1 - x0, 1)
    resolution = min(max(extent * 4 / 600, 0.25), 2 ** (volume.n_levels - 1))  # ~600 px of map
    plane = (z0 + z1 - 1) // 2 if z is None else z
    return f"#z={plane}&y={(y0 + y1) // 2}&x={(x0 + x1) // 2}&r={resolution:.3g}"


def _viewer_url(volume: Volume, *, version: str | None = None, box: list[int] | None = None,
                z: int | None = None) -> str:
    url = reverse("volume-viewer", kwargs={"volume_id": volume.id})
    return url + (f"?version={version}" if version else "") + _viewer_place(volume, box, z)


def _with_viewer_link(assignment):
    """The assignment with ``viewer_url`` (its region on screen) and ``region_text``."""
    assignment.viewer_url = _viewer_url(assignment.volume, box=assignment.region)
    if assignment.region:
        z0, z1, y0, y1, x0, x1 = assignment.region
        assignment.region_text = f"planes {z0}–{z1 - 1}, y {y0}–{y1 - 1}, x {x0}–{x1 - 1}"
    else:
        assignment.region_text = "whole volume"
    return assignment


def _with_progress(assignments: list) -> list:
    """The assignments, each with ``progress`` (uncertain nuclei checked, nuclei edited)."""
    progress = selectors.assignment_progress(assignments=assignments)
    for a in assignments:
        a.progress = progress[a.id]
    return assignments


def _thumbnail(volume: Volume, box: list[int], z: int) -> dict:
    """Where a thumbnail of an edit on plane ``z`` reads its tiles: the pyramid level at which
    the box with a margin fits in about ``_THUMB_PX`` pixels, that crop (``[y0, y1, x0, x1)``
    in the level's pixels) and the box inside the crop."""
    z0, z1, y0, y1, x0, x1 = box
    margin = max(y1 - y0, x1 - x0) // 2 + 8
    extent = max(y1 - y0, x1 - x0) + 2 * margin
    level = 0
    while level < volume.n_levels - 1 and extent / 2 ** level > _THUMB_PX:
        level += 1
    f = 2 ** level
    _, height, width = volume.level_shapes[level]
    crop = [max(0, (y0 - margin) // f), min(height, -(-(y1 + margin) // f)),
            max(0, (x0 - margin) // f), min(width, -(-(x1 + margin) // f))]
    inner = [y0 / f - crop[0], y1 / f - crop[0], x0 / f - crop[2], x1 / f - crop[2]]
    return {"z": z, "level": level, "crop": ",".join(map(str, crop)),
            "box": ",".join(f"{v:.1f}" for v in inner), "tile": _TILE_PX}


@_project_page(allowed=(roles.STUDENT, *roles.STAFF), action="opening the project")
def project_detail(request: HttpRequest, project: Project) -> HttpResponse:
    """A project's volumes and work: for staff the members, the assignments and the way to the
    review queue, agreement, audit trail and training; for a student their queue and their
    corrections with the verdicts."""
    staff = project.role in roles.STAFF
    volumes = selectors.volume_list(user=request.user, project_id=project.id).annotate(
        n_label_versions=Count("label_versions"))
    context = {"project": project, "role": project.role, "staff": staff, "volumes": volumes,
               "is_admin": project.role == roles.ADMIN}
    if staff:
        members = list(selectors.membership_list(project=project))
        context.update(
            members=members,
            students=[m.user.get_username() for m in members if m.role == roles.STUDENT],
            # Instructors add students; admins anyone (annotation.roles).
            member_roles=[c for c in Membership.Role.choices if project.role == roles.ADMIN or c[0] == roles.STUDENT],
            assignments=_with_progress([_with_viewer_link(a) for a in selectors.assignment_list(project=project)]),
            pending=selectors.review_queue(project=project).count(),
            # The latest imports: one still running after a reload is followed again (uploads.js).
            imports=list(selectors.volume_import_job_list(project=project)[:5]),
        )
    else:
        corrections = list(selectors.correction_list_by(project=project, user=request.user)[:_PAGE_SIZE])
        planes = selectors.correction_planes(corrections=corrections)
        for c in corrections:
            c.viewer_url = _viewer_url(c.volume, version=(c.result_version or c.label_version).name, box=c.bbox,
                                       z=planes[c.id])
        context.update(
            assignments=_with_progress([_with_viewer_link(a) for a in selectors.assignment_list(
                project=project, student=request.user)]),
            corrections=corrections)
    return _page(request, "frontend/project.html", context)


@_project_page(allowed=roles.STAFF, action="reviewing")
def project_review(request: HttpRequest, project: Project) -> HttpResponse:
    """The corrections awaiting a verdict, oldest first or in the order of a review strategy
    (``?strategy=``, the review-queue API's choices; a random one gets a ``seed`` the pages keep):
    each before and after (viewer links at its place, thumbnails from the tiles), to approve,
    reject with a comment or amend."""
    from annotation.apis.reviews import ReviewQueueApi  # the API's one list of the queue's orders

    query = ReviewQueueApi.FilterSerializer(data=request.GET)
    if not query.is_valid():
        return HttpResponse("; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in query.errors.items()),
                            status=400, content_type="text/plain")
    order = dict(query.validated_data)
    if order["seed"] is None:
        order["seed"] = secrets.randbelow(2 ** 31)  # kept in the pager's links: the same queue page after page
    queue = selectors.review_queue(project=project, **order)
    page = Paginator(queue, _PAGE_SIZE).get_page(request.GET.get("page"))
    strategies = [{"name": name, "summary": summary, "chosen": name == order["strategy"]}
                  for name, summary in ReviewQueueApi.FilterSerializer.offered()]
    pager_query = f"&strategy={order['strategy']}&seed={order['seed']}"
    latest = {v.id: v.latest_label_version for v in selectors.volume_list(user=request.user, project_id=project.id)}
    planes = selectors.correction_planes(corrections=list(page))
    after_them = selectors.corrections_after(corrections=list(page))
    items = []
    for c in page:
        tiles = reverse("volume-detail", kwargs={"volume_id": c.volume_id})
        z = planes[c.id]
        after = c.result_version or c.label_version  # a check makes no new version
        items.append({
            "correction": c,
            "before_url": _viewer_url(c.volume, version=c.label_version.name, box=c.bbox, z=z),
            "after_url": _viewer_url(c.volume, version=after.name, box=c.bbox, z=z),
            "latest": latest.get(c.volume_id),
            "edit_url": _viewer_url(c.volume, box=c.bbox, z=z),
            "thumb": _thumbnail(c.volume, c.bbox, z),
            "image_tiles": f"{tiles}tiles/",
            "before_tiles": f"{tiles}labels/{c.label_version.name}/tiles/",
            "after_tiles": f"{tiles}labels/{after.name}/tiles/",
            "after_version": after.name,
            "later": after_them[c.id],
            "before_ids": ",".join(map(str, c.nucleus_ids)),
            "after_ids": ",".join(map(str, c.new_ids)),
        })
    return _page(request, "frontend/review.html", {"project": project, "page": page, "items": items,
                                                   "verdicts": selectors.recent_verdicts(project=project),
                                                   "amend_kinds": _amend_kinds(), "strategies": strategies,
                                                   "strategy": order["strategy"], "pager_query": pager_query})


def _amend_kinds() -> list:
    """The kinds an amendment can be made with on the review page: those that change voxels and
    take no drawing (a drawing is made in the viewer), from the core's registry."""
    from segmentation.core.editing import EDIT_KINDS

    return [kind for kind in EDIT_KINDS.values() if kind.changes_voxels and not kind.drawings]


@_project_page(allowed=roles.STAFF, action="reading agreement")
def project_agreement(request: HttpRequest, project: Project) -> HttpResponse:
    """Per student, F1 and IoU of their corrections against the instructors' on the same nuclei,
    the weakest first, and every compared pair."""
    result = selectors.agreement(project=project)
    compared = {row["student"] for row in result["students"]}
    students = [m.user.get_username() for m in selectors.membership_list(project=project) if m.role == roles.STUDENT]
    names = {v.id: v.name for v in selectors.volume_list(user=request.user, project_id=project.id)}
    for pair in result["pairs"]:
        pair["volume_name"] = names.get(pair["volume"], pair["volume"])
    return _page(request, "frontend/agreement.html", {
        "project": project, "students": result["students"], "pairs": result["pairs"],
        "not_compared": [s for s in students if s not in compared], "needs_help_f1": _NEEDS_HELP_F1})


@_project_page(allowed=roles.STAFF, action="reading the audit trail")
def project_audit(request: HttpRequest, project: Project) -> HttpResponse:
    page = Paginator(selectors.audit_list(project=project), _PAGE_SIZE).get_page(request.GET.get("page"))
    return _page(request, "frontend/audit.html", {"project": project, "page": page})


_SCORES = (("ap50", "AP@0.5", 1), ("ap75", "AP@0.75", 1), ("splits", "splits", -1), ("merges", "merges", -1))


def _score_rows(scores: dict) -> list[dict]:
    """Each score of a model version beside the reference's, with the difference judged:
    ``good`` when it is better (AP up, split and merge errors down), ``bad`` when worse."""
    if not scores.get("evaluated"):
        return []
    rows = []
    for key, label, sign in _SCORES:
        delta = (scores.get("delta") or {}).get(key)
        verdict = "" if not delta else ("good" if delta * sign > 0 else "bad")
        rows.append({"label": label, "candidate": (scores.get("candidate") or {}).get(key),
                     "reference": (scores.get("reference") or {}).get(key), "delta": delta, "verdict": verdict})
    return rows


@_project_page(allowed=roles.STAFF, action="reading trainings")
def project_training(request: HttpRequest, project: Project) -> HttpResponse:
    """Retraining: start (admins), live progress and loss curve (WebSocket), the jobs, the model
    versions with their scores against the model they would replace, promote and roll back."""
    jobs = list(segmentation_selectors.training_job_list(user=request.user, project_id=project.id)
                .select_related("created_by")[:20])
    versions = list(segmentation_selectors.model_version_list(project=project))
    promotions = list(segmentation_selectors.model_promotion_list(project=project)[:20])
    current = promotions[0].model_version if promotions else None
    for v in versions:
        v.is_default = current is not None and v.id == current.id
        v.score_rows = _score_rows(v.scores or {})
        # Scored against another model than today's default (a promotion since)?
        reference = (v.scores or {}).get("reference_model")
        today = Path(current.adapter_path).name if current is not None else None
        v.reference_changed = bool(reference) and (reference != today if today else reference.endswith(".pt"))
    from segmentation.core.corrections import RetrainingParams
    from segmentation.services import training_holdout

    defaults = RetrainingParams()
    approved_ids = list(selectors.training_corrections(project=project).values_list("id", flat=True))
    approved = len(approved_ids)
    held_next = training_holdout(approved_ids, params=defaults)
    # The page draws the curves at once; the WebSocket sends each change after.
    live = [{**job_state(job), "loss": (job.metrics or {}).get("loss") or []} for job in jobs]
    return _page(request, "frontend/training.html", {
        "project": project, "is_admin": project.role == roles.ADMIN, "jobs": jobs, "versions": versions,
        "promotions": promotions, "current": current,
        "approved": approved,
        # What the page says of training and scoring comes from the parameters' own defaults.
        "default_steps": defaults.training.steps, "min_scored": defaults.min_holdout_corrections,
        "holdout_percent": round(100 * defaults.holdout_fraction),
        "scoring_missing": max(0, defaults.min_holdout_corrections - approved),
        "held_out_next": len(held_next), "trained_next": approved - len(held_next),
        "training_config": {"project": project.id, "websocket": f"/ws/projects/{project.id}/training/", "jobs": live},
    })
