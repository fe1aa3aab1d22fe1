"""Volumes imported by a background job (``annotation.services.imports``): submit, read, cancel."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import roles, selectors, services

from ._base import UploadApi, UserField
from .volumes import VolumeUploadApi


class VolumeImportJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    project = serializers.IntegerField(source="project_id")
    status = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled")
    progress = serializers.FloatField(help_text="0..1, from the worker")
    message = serializers.CharField(help_text="what it is doing (plane 3 of 40)")
    error = serializers.CharField(help_text="why it failed, naming your file")
    file_name = serializers.CharField(help_text="the file's name as uploaded")
    file_bytes = serializers.IntegerField()
    params = serializers.JSONField(help_text="name, channel, voxel_size as asked")
    volume = serializers.IntegerField(source="volume_id", allow_null=True, help_text="the volume made, once succeeded")
    volume_name = serializers.CharField(source="volume.name", allow_null=True, default=None)
    created_by = UserField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class VolumeImportJobCreateApi(UploadApi):
    """Upload a TIFF / OME-TIFF, or an OME-Zarr folder zipped (multipart field ``file``), to be
    imported as a new volume by a worker: 202 at once with the import job, whose progress
    ``GET import-jobs/<id>/`` reads (and ``ws/import-jobs/<id>/`` pushes). 413 past
    ``EZQUANT_MAX_UPLOAD_BYTES``; a file that cannot be imported ends the job ``failed`` with
    the reason, naming the file."""

    InputSerializer = VolumeUploadApi.InputSerializer
    OutputSerializer = VolumeImportJobOutputSerializer

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={202: VolumeImportJobOutputSerializer})
    def post(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="uploading volumes")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        job = services.volume_import_job_create(
            project=project, user=request.user, upload_path=self._file_path(upload), file_name=upload.name,
            name=data["name"], channel=data["channel"], voxel_size=data["voxel_size"])
        return Response(self.OutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class VolumeImportJobDetailApi(APIView):
    """An import's state (instructors and admins of its project)."""

    @extend_schema(responses=VolumeImportJobOutputSerializer)
    def get(self, request, job_id: int):
        job = selectors.volume_import_job_get(user=request.user, job_id=job_id)
        roles.require_role(user=request.user, project_id=job.project_id, roles=roles.STAFF, action="reading imports")
        return Response(VolumeImportJobOutputSerializer(job).data)


class VolumeImportJobCancelApi(APIView):
    """Cancel an import: queued at once, running at its next plane; 409 once it has ended."""

    @extend_schema(request=None, responses=VolumeImportJobOutputSerializer)
    def post(self, request, job_id: int):
        job = selectors.volume_import_job_get(user=request.user, job_id=job_id)
        roles.require_role(user=request.user, project_id=job.project_id, roles=roles.STAFF,
                           action="cancelling imports")
        return Response(VolumeImportJobOutputSerializer(services.volume_import_job_cancel(job=job)).data)
