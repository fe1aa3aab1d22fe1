"""Review (``annotation.services.reviews``): the queue, verdicts, amendments, agreement and
assignments."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import roles, selectors, services
from annotation.models import Assignment
from ezquant_web.api import ApplicationError

from ._base import PagedListApi, StrategySerializer, UserField, VersionNameField
from .corrections import CorrectionListCreateApi, CorrectionOutputSerializer, edit_of


class ReviewQueueApi(PagedListApi):
    """The project's corrections awaiting review (instructors and admins): oldest first, or in
    the order of a review strategy, each ranked by the model's uncertainty of the nuclei it
    edited, the volumes taken in turn by ``round_robin`` (``selectors.review_queue``)."""

    class FilterSerializer(StrategySerializer):
        default_strategy = selectors.OLDEST
        extra = ((selectors.OLDEST, "first come, first served"),)

    @extend_schema(parameters=[FilterSerializer], responses=CorrectionOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="reviewing")
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return self.paged(request, selectors.review_queue(project=project, **query.validated_data),
                          CorrectionOutputSerializer)


class _VerdictApi(APIView):
    verdict = "approve"

    class InputSerializer(serializers.Serializer):
        comment = serializers.CharField(required=False, allow_blank=True, default="",
                                        help_text="shown to the student; required to reject")

    @extend_schema(request=InputSerializer, responses=CorrectionOutputSerializer)
    def post(self, request, correction_id: int):
        correction = selectors.correction_get(user=request.user, correction_id=correction_id)
        roles.require_role(user=request.user, project_id=correction.volume.project_id, roles=roles.STAFF,
                           action="reviewing")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        correction = services.correction_review(correction=correction, reviewer=request.user, verdict=self.verdict,
                                                **serializer.validated_data)
        return Response(CorrectionOutputSerializer(correction).data)


class CorrectionApproveApi(_VerdictApi):
    """Approve a pending correction: it becomes training data."""

    verdict = "approve"


class CorrectionRejectApi(_VerdictApi):
    """Reject a pending correction with a comment for the student. Its edit is taken back out
    of the latest labels (a new version by you), unless ``labels`` is ``keep``; when later edits
    changed the same nuclei, 409 with ``extra.later_corrections``: send ``revert_anyway`` or
    ``keep``."""

    verdict = "reject"

    class InputSerializer(_VerdictApi.InputSerializer):
        labels = serializers.ChoiceField(choices=["revert", "revert_anyway", "keep"], required=False,
                                         default="revert",
                                         help_text="revert: take the edit back out (409 over later edits); "
                                                   "revert_anyway: over them too; keep: leave the labels")
        label_version = VersionNameField(required=False, allow_null=True, default=None,
                                               help_text="the latest version as you see it (409 when it is not)")

    @extend_schema(request=InputSerializer, responses=CorrectionOutputSerializer)
    def post(self, request, correction_id: int):
        return super().post(request, correction_id)


class CorrectionAmendApi(APIView):
    """The reviewer's own edit in place of a pending correction (same body as an edit, plus
    ``comment``): 201 with the reviewer's new, approved correction; the student's is ``amended``."""

    class InputSerializer(CorrectionListCreateApi.InputSerializer):
        comment = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses={201: CorrectionOutputSerializer})
    def post(self, request, correction_id: int):
        correction = selectors.correction_get(user=request.user, correction_id=correction_id)
        roles.require_role(user=request.user, project_id=correction.volume.project_id, roles=roles.STAFF,
                           action="amending corrections")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        amendment = services.correction_amend(correction=correction, reviewer=request.user,
                                              label_version=data["label_version"], edit=edit_of(data),
                                              comment=data["comment"])
        return Response(CorrectionOutputSerializer(amendment).data, status=status.HTTP_201_CREATED)


class AgreementApi(APIView):
    """Per student, how their corrections agree with an instructor's (or another student's) on the
    same nuclei: F1 at IoU 0.5 and mean IoU of matched nuclei (instructors and admins)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="reading agreement")
        return Response(selectors.agreement(project=project))


# -- assignments ------------------------------------------------------------------------------


class _ProgressSerializer(serializers.Serializer):
    uncertain = serializers.IntegerField(help_text="nuclei in the region scored at least "
                                                   f"{selectors.UNCERTAIN_SCORE} (latest labels)")
    checked = serializers.IntegerField(help_text="how many of those a person checked")
    edited = serializers.IntegerField(help_text="nuclei in the region a person made or changed")


def _with_progress(assignments) -> list:
    """The assignments, each with ``progress`` (``selectors.assignment_progress``)."""
    assignments = list(assignments)
    progress = selectors.assignment_progress(assignments=assignments)
    for a in assignments:
        a.progress = progress[a.id]
    return assignments


class AssignmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    volume = serializers.IntegerField(source="volume_id")
    volume_name = serializers.CharField(source="volume.name")
    student = serializers.CharField(source="student.username")
    region = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    note = serializers.CharField()
    due = serializers.DateField(allow_null=True)
    overdue = serializers.BooleanField()
    state = serializers.CharField()
    assigned_by = UserField(source="assigned_by.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    progress = _ProgressSerializer(allow_null=True, default=None,
                                   help_text="in lists: uncertain nuclei checked, nuclei edited")


class MyAssignmentListApi(APIView):
    """Your queue: what is assigned to you in every project, open ones first, by due date."""

    @extend_schema(responses=AssignmentOutputSerializer(many=True))
    def get(self, request):
        return Response(AssignmentOutputSerializer(_with_progress(selectors.assignment_list(student=request.user)),
                                                   many=True).data)


class ProjectAssignmentListApi(APIView):
    """A project's assignments: all of them for instructors and admins, one's own for a student."""

    @extend_schema(responses=AssignmentOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        role = roles.role_of(user=request.user, project_id=project.id)
        student = None if role in roles.STAFF else request.user
        return Response(AssignmentOutputSerializer(
            _with_progress(selectors.assignment_list(project=project, student=student)), many=True).data)


class AssignmentCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        volume = serializers.IntegerField()
        student = serializers.CharField(help_text="username")
        region = serializers.ListField(child=serializers.IntegerField(min_value=0), min_length=6, max_length=6,
                                       required=False, allow_null=True, default=None,
                                       help_text="[z0, z1, y0, y1, x0, x1], ends exclusive; omit for the volume")
        due = serializers.DateField(required=False, allow_null=True, default=None)
        note = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=InputSerializer, responses={201: AssignmentOutputSerializer})
    def post(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="assigning work")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        volume = project.volumes.filter(id=data["volume"]).first()
        if volume is None:
            raise ApplicationError(f"{project.name} has no volume {data['volume']}")
        student = project.memberships.filter(user__username=data["student"], role=roles.STUDENT).first()
        if student is None:  # the same answer for an account that does not exist: nothing to enumerate
            raise ApplicationError(f"{data['student']!r} is not a student of {project.name}",
                                   extra={"field": "student"})
        student = student.user
        assignment = services.assignment_create(project=project, volume=volume, student=student,
                                                assigned_by=request.user, region=data["region"], due=data["due"],
                                                note=data["note"])
        return Response(AssignmentOutputSerializer(assignment).data, status=status.HTTP_201_CREATED)


class _AssignmentStateApi(APIView):
    state = Assignment.State.SUBMITTED
    staff = False

    @extend_schema(request=None, responses=AssignmentOutputSerializer)
    def post(self, request, assignment_id: int):
        assignment = selectors.assignment_get(user=request.user, assignment_id=assignment_id)
        if self.staff:
            roles.require_role(user=request.user, project_id=assignment.project_id, roles=roles.STAFF,
                               action=f"marking assignments {self.state}")
        assignment = services.assignment_set_state(assignment=assignment, user=request.user, state=self.state,
                                                   staff=self.staff)
        return Response(AssignmentOutputSerializer(assignment).data)


class AssignmentSubmitApi(_AssignmentStateApi):
    """The student hands the work in (it can no longer be edited until reopened)."""

    state, staff = Assignment.State.SUBMITTED, False


class AssignmentCompleteApi(_AssignmentStateApi):
    state, staff = Assignment.State.COMPLETED, True


class AssignmentReopenApi(_AssignmentStateApi):
    state, staff = Assignment.State.REOPENED, True
