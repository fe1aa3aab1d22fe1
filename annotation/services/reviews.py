"""Writes of the review workflow: verdicts on students' corrections, amendments, assignments.

Only approved corrections become training data (``annotation.selectors.training_corrections``).
A verdict is given once, on a pending correction that is still in effect (not undone); an
amendment is the instructor's own edit of the same nuclei, approved as it is made, and marks the
student's correction ``amended``. Nothing is deleted: every step is a row of the audit trail.

A rejection means what it says: the edit is taken back out of the latest labels, as a new
version made by the reviewer (``corrections.correction_revert``), unless the reviewer keeps the
labels (``labels="keep"``). Where later edits changed the same nuclei the rejection is refused
with 409 naming them, and the reviewer chooses: ``labels="revert_anyway"`` or ``"keep"``.
"""

from __future__ import annotations

import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Assignment, Correction, Membership, Project, Volume
from annotation.services.audit import audit_record
from annotation.services.corrections import correction_create, correction_revert
from ezquant_web.errors import ApplicationError

__all__ = ["assignment_create", "assignment_set_state", "correction_amend", "correction_review"]

VERDICTS = {"approve": Correction.Review.APPROVED, "reject": Correction.Review.REJECTED}
#: What a rejection does to the latest labels.
REJECT_LABELS = ("revert", "revert_anyway", "keep")


def _pending(correction: Correction, *, lock: bool = True) -> Correction:
    """The correction, locked (inside ``atomic``; ``lock=False``: read only), if it still awaits
    a verdict; 409 otherwise."""
    rows = Correction.objects.select_for_update() if lock else Correction.objects
    correction = rows.get(id=correction.id)
    if correction.undone:
        raise ApplicationError("this correction was undone: there is nothing to review", status=409)
    if correction.review_status != Correction.Review.PENDING:
        raise ApplicationError(f"this correction was {correction.review_status} already", status=409,
                               extra={"review_status": correction.review_status})
    return correction


def _verdict(correction: Correction, reviewer: AbstractBaseUser, verdict: str, comment: str, *,
             labels: str = "", reverted=None, **details) -> Correction:
    """Inside ``atomic``: the pending correction, locked, given its verdict and recorded."""
    correction = _pending(correction)
    correction.review_status = VERDICTS[verdict]
    correction.reviewed_by, correction.reviewed_at, correction.review_comment = reviewer, timezone.now(), comment
    correction.review_labels, correction.reverted_version = labels, reverted
    correction.save(update_fields=["review_status", "reviewed_by", "reviewed_at", "review_comment", "review_labels",
                                   "reverted_version"])
    made = correction.result_version or correction.label_version
    audit_record(user=reviewer, project_id=correction.volume.project_id, action=f"correction.{verdict}",
                 obj=correction, label_version=made.name, comment=comment, **(
                     {"labels": labels, "reverted_version": reverted.name if reverted else None, **details}
                     if verdict == "reject" else {}))
    return correction


def correction_review(*, correction: Correction, reviewer: AbstractBaseUser, verdict: str, comment: str = "",
                      labels: str = "revert", label_version: str | None = None) -> Correction:
    """Approve or reject a pending correction; a rejection needs a comment for the student.

    A rejection takes the edit back out of the latest labels (module docstring): ``labels`` is
    ``"revert"`` (409 with ``extra.later_corrections`` when later edits changed the same nuclei),
    ``"revert_anyway"`` (over them) or ``"keep"``; ``label_version`` is the latest version as the
    reviewer sees it (409 when it is not; ``None``: the latest now). The correction records which
    happened (``review_labels``, ``reverted_version``).
    """
    if verdict not in VERDICTS:
        raise ApplicationError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    if labels not in REJECT_LABELS:
        raise ApplicationError(f"labels must be one of {', '.join(REJECT_LABELS)}, got {labels!r}",
                               extra={"field": "labels"})
    comment = (comment or "").strip()
    if verdict == "reject" and not comment:
        raise ApplicationError("say why it is rejected: the student sees the comment")
    if verdict == "approve":
        with transaction.atomic():
            return _verdict(correction, reviewer, verdict, comment)
    if labels == "keep":
        with transaction.atomic():
            return _verdict(correction, reviewer, verdict, comment, labels=Correction.Labels.KEPT)
    original = _pending(correction, lock=False)  # 409 before any pixel is read
    marked = []

    def mark(version, clean: bool) -> None:
        marked.append(_verdict(original, reviewer, verdict, comment, labels=Correction.Labels.REVERTED,
                               reverted=version, clean=clean))

    correction_revert(correction=original, user=reviewer, label_version=label_version,
                      overwrite_later=labels == "revert_anyway", inside=mark)
    return marked[0]


def correction_amend(*, correction: Correction, reviewer: AbstractBaseUser, label_version: str, edit: dict,
                     comment: str = "") -> Correction:
    """The reviewer's own edit in place of a pending correction: a new, approved correction on
    the latest version (``label_version``, 409 when stale) that ``amends`` the student's, which
    is marked ``amended`` with the comment. Returns the reviewer's correction.

    The edit's pixel work runs before any transaction (``correction_create``); the original is
    checked before it and again, locked, in the edit's own transaction, where it is marked."""
    original = _pending(correction, lock=False)  # 409 before any pixel is read

    def mark(amendment: Correction) -> None:
        locked = _pending(original)
        locked.review_status = Correction.Review.AMENDED
        locked.reviewed_by, locked.reviewed_at = reviewer, timezone.now()
        locked.review_comment = (comment or "").strip()
        locked.save(update_fields=["review_status", "reviewed_by", "reviewed_at", "review_comment"])
        audit_record(user=reviewer, project_id=original.volume.project_id, action="correction.amend", obj=locked,
                     label_version=(amendment.result_version or amendment.label_version).name,  # a check: none
                     amendment=amendment.id, comment=comment)

    return correction_create(volume=original.volume, user=reviewer, label_version=label_version, edit=edit,
                             approved=True, amends=original, inside=mark)


def _check_region(volume: Volume, region) -> list[int] | None:
    if region is None:
        return None
    if not isinstance(region, (list, tuple)) or len(region) != 6 or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in region):
        raise ApplicationError("region must be [z0, z1, y0, y1, x0, x1] (whole numbers, ends exclusive)")
    for axis, size in enumerate(volume.shape):
        lo, hi = region[2 * axis], region[2 * axis + 1]
        if not 0 <= lo < hi <= size:
            raise ApplicationError(f"the region's {'zyx'[axis]} range {lo}..{hi} must lie within 0..{size} and "
                                   "not be empty")
    return list(region)


def assignment_create(*, project: Project, volume: Volume, student: AbstractBaseUser, assigned_by: AbstractBaseUser,
                      region: list[int] | None = None, due: datetime.date | None = None,
                      note: str = "") -> Assignment:
    """Give a student a volume (or a region of it) to annotate, by ``due``."""
    if volume.project_id != project.id:
        raise ApplicationError("the volume belongs to another project")
    if not Membership.objects.filter(project=project, user=student, role=Membership.Role.STUDENT).exists():
        raise ApplicationError(f"{student.get_username()} is not a student of {project.name}")
    checked = _check_region(volume, region)
    with transaction.atomic():
        assignment = Assignment.objects.create(project=project, volume=volume, student=student, region=checked,
                                               due=due, note=note, assigned_by=assigned_by)
        audit_record(user=assigned_by, project_id=project.id, action="assignment.create", obj=assignment,
                     volume=volume.id, student=student.get_username(), region=checked,
                     due=due.isoformat() if due else None)
        return assignment


# Who may move an assignment from which state to which.
_STUDENT_MOVES = {(Assignment.State.ASSIGNED, Assignment.State.SUBMITTED),
                  (Assignment.State.REOPENED, Assignment.State.SUBMITTED)}
_STAFF_MOVES = {(Assignment.State.SUBMITTED, Assignment.State.COMPLETED),
                (Assignment.State.SUBMITTED, Assignment.State.REOPENED),
                (Assignment.State.COMPLETED, Assignment.State.REOPENED)}


def assignment_set_state(*, assignment: Assignment, user: AbstractBaseUser, state: str, staff: bool) -> Assignment:
    """Submit (the student), complete or reopen (``staff``: an instructor or admin) an assignment."""
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().get(id=assignment.id)
        move = (assignment.state, state)
        if staff:
            allowed = move in _STAFF_MOVES
        else:
            if assignment.student_id != user.id:
                raise ApplicationError("only the student it is assigned to can submit it", status=403)
            allowed = move in _STUDENT_MOVES
        if not allowed:
            raise ApplicationError(f"an assignment that is {assignment.state} cannot become {state}", status=409)
        assignment.state = state
        assignment.save(update_fields=["state", "updated_at"])
        audit_record(user=user, project_id=assignment.project_id, action=f"assignment.{state}", obj=assignment)
        return assignment
