"""What each role may do in a project; the API views and consumers ask here.

==================================  =======  ==========  =====
may ...                             student  instructor  admin
==================================  =======  ==========  =====
read the project, its volumes,       yes      yes         yes
label versions, nuclei, tiles, jobs
edit labels (corrections)            on its   yes         yes
                                     open
                                     assign-
                                     ments
see and undo others' corrections     no       yes         yes
upload volumes and labels, start     no       yes         yes
and cancel segmentation jobs
assign work, review corrections,     no       yes         yes
read agreement and the audit trail
add students                         no       yes         yes
add instructors and admins           no       no          yes
retrain and promote models           no       no          yes
==================================  =======  ==========  =====

A non-member is refused before any of this, with 404 (``annotation.selectors``); a member
whose role does not allow an action gets 403 and a sentence saying who may.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import Assignment, Membership, Project
from ezquant_web.errors import ApplicationError

__all__ = ["ADMIN", "INSTRUCTOR", "STAFF", "STUDENT", "editable_regions", "is_staff", "require_own_or_staff",
           "require_role", "role_of"]

STUDENT, INSTRUCTOR, ADMIN = Membership.Role.STUDENT, Membership.Role.INSTRUCTOR, Membership.Role.ADMIN
#: Roles that see and manage everyone's work in a project.
STAFF = (INSTRUCTOR, ADMIN)
_PLURAL = {STUDENT: "students", INSTRUCTOR: "instructors", ADMIN: "admins"}


def role_of(*, user: AbstractBaseUser, project_id: int) -> str | None:
    """The user's role in the project, or ``None`` for a non-member (or an anonymous user)."""
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(project_id=project_id, user=user).values_list("role", flat=True).first()


def require_role(*, user: AbstractBaseUser, project_id: int, roles: tuple[str, ...], action: str) -> str:
    """The user's role if it is one of ``roles``; 404 for a non-member, 403 for another role."""
    role = role_of(user=user, project_id=project_id)
    if role is None:
        raise Project.DoesNotExist
    if role not in roles:
        who = " and ".join(_PLURAL[r] for r in roles)
        raise ApplicationError(f"{action} is for the {who} of this project; you are a {role}", status=403)
    return role


def is_staff(*, user: AbstractBaseUser, project_id: int) -> bool:
    """Whether the user is an instructor or admin of the project (sees and manages everyone's work)."""
    return role_of(user=user, project_id=project_id) in STAFF


def require_own_or_staff(*, user: AbstractBaseUser, project_id: int, owner_id: int | None, action: str) -> None:
    """403 unless the user made the thing (``owner_id``) or is staff of the project: a student
    reads, undoes and cancels their own work only. ``action`` names the refused act ("cancelling
    another user's job"); the caller has already refused non-members with 404."""
    if owner_id != user.id and not is_staff(user=user, project_id=project_id):
        raise ApplicationError(f"{action} is for the instructors and admins", status=403)


def editable_regions(*, user: AbstractBaseUser, volume) -> list[list[int]] | None:
    """Where the user may edit the volume's labels: ``None`` for anywhere (staff, or a student
    assigned the whole volume), else the regions of the student's open assignments
    (``[z0, z1, y0, y1, x0, x1]``); 403 for a student with no open assignment on it."""
    role = require_role(user=user, project_id=volume.project_id, roles=(STUDENT, *STAFF), action="editing labels")
    if role in STAFF:
        return None
    regions = list(Assignment.objects.filter(volume=volume, student=user, state__in=Assignment.OPEN_STATES)
                   .values_list("region", flat=True))
    if not regions:
        raise ApplicationError("this volume is not assigned to you (or your assignment is submitted): ask your "
                               "instructor to assign or reopen it", status=403)
    return None if any(r is None for r in regions) else regions
