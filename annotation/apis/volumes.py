"""Projects and their members, volumes, label versions and label exports (the reads and writes
of ``annotation.services.volumes``)."""

from __future__ import annotations

import shutil

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import roles, selectors, services
from annotation.exports import zip_directory_stream
from annotation.models import Membership
from ezquant_web.api import ApplicationError

from ._base import DownloadApi, UploadApi, UserField, VersionNameField, label_version_of, safe_filename


class ProjectOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    description = serializers.CharField()
    role = serializers.CharField(allow_null=True, default=None, help_text="your role in it")
    created_by = UserField()
    created_at = serializers.DateTimeField()


class ProjectListApi(APIView):
    OutputSerializer = ProjectOutputSerializer

    @extend_schema(responses=ProjectOutputSerializer(many=True))
    def get(self, request):
        projects = selectors.project_list(user=request.user)
        return Response(self.OutputSerializer(projects, many=True).data)


class ProjectCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")

    OutputSerializer = ProjectOutputSerializer

    @extend_schema(request=InputSerializer, responses={201: ProjectOutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(user=request.user, **serializer.validated_data)
        project.role = Membership.Role.ADMIN
        return Response(self.OutputSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    OutputSerializer = ProjectOutputSerializer

    @extend_schema(responses=ProjectOutputSerializer)
    def get(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        return Response(self.OutputSerializer(project).data)


class _MembershipOutputSerializer(serializers.Serializer):
    project = serializers.IntegerField(source="project_id")
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class ProjectMemberListApi(APIView):
    """The project's members and their roles (instructors and admins)."""

    @extend_schema(responses=_MembershipOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="listing members")
        return Response(_MembershipOutputSerializer(selectors.membership_list(project=project), many=True).data)


def _not_addable(username: str) -> str:
    # One sentence whether the account exists or not (annotation.selectors.user_addable).
    return (f"no account {username!r} that you can add: you can add the people you share a project with; "
            "a site administrator (staff) can add anyone")


class ProjectMemberAddApi(APIView):
    """Add a user to a project by exact username: instructors add students, admins anyone;
    an account the adder shares no project with only when the adder is site staff, the same
    refusal either way, so the answers never tell which accounts exist."""

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.STUDENT)

    OutputSerializer = _MembershipOutputSerializer

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        role = serializer.validated_data["role"]
        roles.require_role(user=request.user, project_id=project.id,
                           roles=roles.STAFF if role == roles.STUDENT else (roles.ADMIN,),
                           action=f"adding {'a student' if role == roles.STUDENT else 'an ' + role}")
        username = serializer.validated_data["username"]
        user = selectors.user_addable(by=request.user, username=username)
        if user is None:
            raise ApplicationError(_not_addable(username), extra={"field": "username"})
        membership = services.membership_add(project=project, user=user, role=role, added_by=request.user)
        return Response(self.OutputSerializer(membership).data, status=status.HTTP_201_CREATED)


# -- volumes ----------------------------------------------------------------------------------


class VolumeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    name = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField(), help_text="(Z, Y, X); Z = 1 for a 2D image")
    dtype = serializers.CharField()
    voxel_size = serializers.ListField(child=serializers.FloatField(), help_text="(z, y, x) micrometres")
    contrast_limits = serializers.ListField(child=serializers.FloatField(), help_text="default display (lo, hi)")
    n_levels = serializers.IntegerField()
    level_shapes = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    latest_label_version = serializers.CharField(allow_null=True, default=None,
                                                 help_text="the newest label version (the one to view and edit)")
    created_by = UserField()
    created_at = serializers.DateTimeField()


class VolumeListApi(APIView):
    OutputSerializer = VolumeOutputSerializer

    @extend_schema(responses=VolumeOutputSerializer(many=True))
    def get(self, request, project_id: int):
        volumes = selectors.volume_list(user=request.user, project_id=project_id)
        return Response(self.OutputSerializer(volumes, many=True).data)


class VolumeUploadApi(UploadApi):
    """Upload a TIFF / OME-TIFF (multipart field ``file``) as a new volume of the project.

    The import runs within the request (streamed plane by plane); 413 past
    ``EZQUANT_MAX_UPLOAD_BYTES``, 400 with the reason for a file that cannot be imported.
    """

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        channel = serializers.IntegerField(min_value=0, required=False, allow_null=True, default=None)
        voxel_size = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=3,
                                           required=False, allow_null=True, default=None,
                                           help_text="(z, y, x) micrometres, (y, x) for a 2D image")

    OutputSerializer = VolumeOutputSerializer

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: VolumeOutputSerializer})
    def post(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="uploading volumes")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        volume = services.volume_import(
            project=project, src_path=self._file_path(upload), name=data["name"] or upload.name,
            user=request.user, channel=data["channel"], voxel_size=data["voxel_size"])
        return Response(self.OutputSerializer(volume).data, status=status.HTTP_201_CREATED)


class VolumeCurationApi(APIView):
    """What people did to the volume that a new segmentation keeps: the nuclei made, changed or
    checked in its latest labels, its open assignments and corrections awaiting review (what
    the viewer says before a job starts)."""

    class OutputSerializer(serializers.Serializer):
        label_version = serializers.CharField(allow_null=True)
        edited = serializers.IntegerField(help_text="nuclei a person made or changed")
        checked = serializers.IntegerField(help_text="nuclei a person checked")
        open_assignments = serializers.IntegerField()
        pending_corrections = serializers.IntegerField()
        deleted = serializers.IntegerField(help_text="deletions in effect: their places stay empty")

    @extend_schema(responses=OutputSerializer)
    def get(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        return Response(self.OutputSerializer(selectors.volume_curation(volume=volume)).data)


class VolumeDetailApi(APIView):
    OutputSerializer = VolumeOutputSerializer

    @extend_schema(responses=VolumeOutputSerializer)
    def get(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        return Response(self.OutputSerializer(volume).data)


# -- label versions ---------------------------------------------------------------------------


class LabelVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    volume = serializers.IntegerField(source="volume_id")
    name = serializers.CharField()
    number = serializers.IntegerField()
    parent = serializers.CharField(source="parent.name", allow_null=True)
    source = serializers.CharField()
    n_labels = serializers.IntegerField(help_text="the largest label id")
    model_version = serializers.CharField()
    created_by = UserField()
    created_at = serializers.DateTimeField()


class LabelVersionListApi(APIView):
    OutputSerializer = LabelVersionOutputSerializer

    @extend_schema(responses=LabelVersionOutputSerializer(many=True))
    def get(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        return Response(self.OutputSerializer(selectors.label_version_list(volume=volume), many=True).data)


class LabelVersionUploadApi(UploadApi):
    """Upload a label TIFF (multipart field ``file``, integer ids, the volume's shape) as a new
    version; ``parent`` names the version it derives from. 400 when the shape differs."""

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        parent = VersionNameField(required=False, allow_null=True, default=None)

    OutputSerializer = LabelVersionOutputSerializer

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: LabelVersionOutputSerializer})
    def post(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        roles.require_role(user=request.user, project_id=volume.project_id, roles=roles.STAFF,
                           action="uploading labels")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        parent = None
        if serializer.validated_data["parent"]:
            parent = volume.label_versions.filter(name=serializer.validated_data["parent"]).first()
            if parent is None:
                raise ApplicationError(f"this volume has no label version {serializer.validated_data['parent']}")
        version = services.label_version_upload(
            volume=volume, src_path=self._file_path(serializer.validated_data["file"]), user=request.user,
            parent=parent)
        return Response(self.OutputSerializer(version).data, status=status.HTTP_201_CREATED)


class LabelVersionDetailApi(APIView):
    OutputSerializer = LabelVersionOutputSerializer

    @extend_schema(responses=LabelVersionOutputSerializer)
    def get(self, request, volume_id: int, version: str):
        label_version = label_version_of(request, volume_id, version)
        return Response(self.OutputSerializer(label_version).data)


# -- label exports ----------------------------------------------------------------------------


class LabelVersionTiffExportApi(DownloadApi):
    """The version's full-resolution labels as a uint32 OME-TIFF (ZYX, voxel size in µm)."""

    @extend_schema(responses={(200, "image/tiff"): OpenApiTypes.BINARY})
    def get(self, request, volume_id: int, version: str):
        label_version = label_version_of(request, volume_id, version)
        path = services.label_version_export_tiff(label_version=label_version)
        handle = open(path, "rb")
        shutil.rmtree(path.parent)  # the open handle keeps the file readable until the response closes it
        name = safe_filename(label_version.volume.name, label_version.name, "labels") + ".ome.tif"
        return FileResponse(handle, as_attachment=True, filename=name, content_type="image/tiff")


class LabelVersionZarrExportApi(DownloadApi):
    """The version (all pyramid levels) as a standalone OME-Zarr directory in a ZIP archive,
    streamed; unzip and open with any NGFF reader."""

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request, volume_id: int, version: str):
        label_version = label_version_of(request, volume_id, version)
        path = services.label_version_export_zarr(label_version=label_version)
        root = safe_filename(label_version.volume.name, label_version.name, "labels") + ".ome.zarr"
        response = StreamingHttpResponse(zip_directory_stream(path, root_name=root, remove=path.parent),
                                         content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{root}.zip"'
        return response
