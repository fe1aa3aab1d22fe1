"""The REST API of segmentation jobs (``/api/v1/``): submit, read, list per volume, cancel.

One view per operation. A job exists only for members of its project: anyone else gets 404,
as everywhere in the API (``segmentation.selectors``).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import roles
from annotation import selectors as annotation_selectors
from ezquant_web.api import ApplicationError
from segmentation import selectors, services


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    volume = serializers.IntegerField(source="volume_id", allow_null=True)
    status = serializers.CharField()
    progress = serializers.FloatField()
    message = serializers.CharField()
    error = serializers.CharField()
    params = serializers.JSONField()
    timings = serializers.JSONField()
    cancel_requested = serializers.BooleanField()
    attempts = serializers.IntegerField()
    worker_id = serializers.CharField()
    label_version = serializers.CharField(source="label_version.name", allow_null=True, default=None)
    model_version = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class SegmentationJobListCreateApi(APIView):
    """``GET``: the volume's jobs, newest first. ``POST``: submit one (the issue's URL, so the list
    and the create share a path here, unlike the annotation routes)."""

    class InputSerializer(serializers.Serializer):
        params = serializers.JSONField(required=False, default=dict,
                                       help_text="SegmentationParams fields; omitted ones take their defaults")

    @extend_schema(request=InputSerializer, responses={201: JobOutputSerializer})
    def post(self, request, volume_id: int):
        volume = annotation_selectors.volume_get(user=request.user, volume_id=volume_id)
        roles.require_role(user=request.user, project_id=volume.project_id, roles=roles.STAFF,
                           action="starting segmentation")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.segmentation_job_create(volume=volume, user=request.user,
                                               params=serializer.validated_data["params"])
        return Response(JobOutputSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=JobOutputSerializer(many=True))
    def get(self, request, volume_id: int):
        annotation_selectors.volume_get(user=request.user, volume_id=volume_id)  # 404 for non-members
        jobs = selectors.segmentation_job_list(user=request.user, volume_id=volume_id).select_related("created_by")
        return Response(JobOutputSerializer(jobs, many=True).data)


class SegmentationJobDetailApi(APIView):
    @extend_schema(responses=JobOutputSerializer)
    def get(self, request, job_id: int):
        job = selectors.segmentation_job_get(user=request.user, job_id=job_id)
        return Response(JobOutputSerializer(job).data)


class SegmentationJobCancelApi(APIView):
    @extend_schema(request=None, responses=JobOutputSerializer)
    def post(self, request, job_id: int):
        job = selectors.segmentation_job_get(user=request.user, job_id=job_id)
        if job.created_by_id != request.user.id and \
                roles.role_of(user=request.user, project_id=job.project_id) not in roles.STAFF:
            raise ApplicationError("cancelling another user's job is for the instructors and admins", status=403)
        job = services.segmentation_job_cancel(job=job, user=request.user)
        return Response(JobOutputSerializer(job).data)
