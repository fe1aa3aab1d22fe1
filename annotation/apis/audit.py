"""The audit trail of a project (``annotation.services.audit`` writes it)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from annotation import roles, selectors

from ._base import PagedListApi, UserField


class AuditEventListApi(PagedListApi):
    """The project's audit trail, newest first (instructors and admins)."""

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        user = UserField(source="user.username")
        action = serializers.CharField()
        object_type = serializers.CharField()
        object_id = serializers.IntegerField(allow_null=True)
        label_version = serializers.CharField()
        details = serializers.JSONField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF,
                           action="reading the audit trail")
        return self.paged(request, selectors.audit_list(project=project), self.OutputSerializer)
