"""The REST API of projects, volumes, label versions, nuclei and exports (``/api/v1/``).

One view per operation; each validates its input, calls one service or selector and
serialises the result. Authentication: API token (``Authorization: Token <key>``) or the
session. A project and everything in it exists, for the API, only for its members: everyone
else gets 404, as for something that does not exist (see ``annotation.selectors``).
Image and label tiles are plain Django views in ``annotation.tile_views``.
"""

from __future__ import annotations

import json
import re
import shutil

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import roles, selectors, services
from annotation.exports import csv_stream, zip_directory_stream
from annotation.models import Assignment, Membership, Nucleus
from ezquant_web.api import ApplicationError, Pagination

# -- shared pieces ----------------------------------------------------------------------------


class _AnyRenderer(BaseRenderer):
    """Lets a download view accept any ``Accept`` header (``text/csv``, ``image/tiff``): the
    file response bypasses renderers; an error is still rendered as JSON."""

    media_type = "*/*"
    format = "download"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if isinstance(data, (dict, list)) else data


class _DownloadApi(APIView):
    renderer_classes = [JSONRenderer, _AnyRenderer]


class _LimitedUploadHandler(TemporaryFileUploadHandler):
    """Streams an upload to a temporary file and stops it once past ``EZQUANT_MAX_UPLOAD_BYTES``
    (uploads without a Content-Length would otherwise fill the disk before being refused)."""

    def new_file(self, *args, **kwargs):
        self._received = 0
        return super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self._received += len(raw_data)
        if self._received > settings.EZQUANT_MAX_UPLOAD_BYTES:
            raise _too_large()
        return super().receive_data_chunk(raw_data, start)


def _too_large() -> ApplicationError:
    limit = settings.EZQUANT_MAX_UPLOAD_BYTES
    return ApplicationError(f"the upload is larger than the limit of {limit:,} bytes (EZQUANT_MAX_UPLOAD_BYTES)",
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, extra={"limit_bytes": limit})


class _UploadApi(APIView):
    """A multipart upload whose file goes to disk, refused with 413 when too large."""

    parser_classes = [MultiPartParser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication first: outsiders learn nothing
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.EZQUANT_MAX_UPLOAD_BYTES:
            raise _too_large()
        try:
            request._request.upload_handlers = [_LimitedUploadHandler(request._request)]
        except AttributeError:
            pass  # the body was already parsed (a CSRF check read the form): _file_path checks the size

    @staticmethod
    def _file_path(upload) -> str:
        """Where the uploaded file lies on disk (the only upload handler is the temporary-file one)."""
        if upload.size > settings.EZQUANT_MAX_UPLOAD_BYTES:
            raise _too_large()
        return upload.temporary_file_path()


# Bounds of numbers in bodies and queries: an id past 64 bits reached the database and answered
# 500 ("int too large to convert to SQLite INTEGER"). Label ids are uint32 on disk; planes and
# voxel counts fit comfortably below these.
_LABEL_ID_MAX = 2 ** 32 - 1
_PLANE_MAX = 2 ** 31 - 1
_COUNT_MAX = 2 ** 63 - 1


def _safe_filename(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("_") or "download"


class _UserField(serializers.CharField):
    """A user shown by username (``null`` once the account is gone)."""

    def __init__(self, **kwargs):
        super().__init__(source=kwargs.pop("source", "created_by.username"), allow_null=True, read_only=True,
                         **kwargs)


# -- projects ---------------------------------------------------------------------------------


class ProjectOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    description = serializers.CharField()
    role = serializers.CharField(allow_null=True, default=None, help_text="your role in it")
    created_by = _UserField()
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
    created_by = _UserField()
    created_at = serializers.DateTimeField()


class VolumeListApi(APIView):
    OutputSerializer = VolumeOutputSerializer

    @extend_schema(responses=VolumeOutputSerializer(many=True))
    def get(self, request, project_id: int):
        volumes = selectors.volume_list(user=request.user, project_id=project_id)
        return Response(self.OutputSerializer(volumes, many=True).data)


class VolumeUploadApi(_UploadApi):
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


# -- volume imports (background jobs) ---------------------------------------------------------


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
    created_by = _UserField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class VolumeImportJobCreateApi(_UploadApi):
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
    created_by = _UserField()
    created_at = serializers.DateTimeField()


class LabelVersionListApi(APIView):
    OutputSerializer = LabelVersionOutputSerializer

    @extend_schema(responses=LabelVersionOutputSerializer(many=True))
    def get(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        return Response(self.OutputSerializer(selectors.label_version_list(volume=volume), many=True).data)


class LabelVersionUploadApi(_UploadApi):
    """Upload a label TIFF (multipart field ``file``, integer ids, the volume's shape) as a new
    version; ``parent`` names the version it derives from. 400 when the shape differs."""

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        parent = serializers.RegexField(r"^v[1-9][0-9]*$", required=False, allow_null=True, default=None)

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
        label_version = selectors.label_version_get(user=request.user, volume_id=volume_id, name=version)
        return Response(self.OutputSerializer(label_version).data)


# -- nuclei -----------------------------------------------------------------------------------

_NUCLEUS_FIELDS = (
    "label_id", "z_min", "z_max", "y_min", "y_max", "x_min", "x_max", "centroid_z", "centroid_y", "centroid_x", "volume_voxels", "volume_um3",
    "mean_intensity", "integrated_intensity", "solidity", "uncertainty",
)


class NucleusListApi(APIView):
    """The nuclei of a label version, a page at a time (``?page=``, ``?page_size=`` up to 1000)."""

    pagination_class = Pagination  # read by the schema: the answer is a page, not an array

    class FilterSerializer(serializers.Serializer):
        label_id_min = serializers.IntegerField(min_value=0, max_value=_LABEL_ID_MAX, required=False)
        label_id_max = serializers.IntegerField(min_value=0, max_value=_LABEL_ID_MAX, required=False)
        z = serializers.IntegerField(min_value=0, max_value=_PLANE_MAX, required=False,
                                     help_text="nuclei present in this plane")
        min_volume_voxels = serializers.IntegerField(min_value=0, max_value=_COUNT_MAX, required=False)
        min_volume_um3 = serializers.FloatField(min_value=0, required=False)
        ordering = serializers.ChoiceField(
            choices=[f"{sign}{f}" for f in selectors.NUCLEUS_ORDERINGS for sign in ("", "-")], required=False,
            help_text="e.g. -uncertainty: the least certain first (nuclei without a score last)")

    class OutputSerializer(serializers.Serializer):
        label_id = serializers.IntegerField()
        z_min = serializers.IntegerField()
        z_max = serializers.IntegerField()
        y_min = serializers.IntegerField(allow_null=True)
        y_max = serializers.IntegerField(allow_null=True)
        x_min = serializers.IntegerField(allow_null=True)
        x_max = serializers.IntegerField(allow_null=True)
        centroid_z = serializers.FloatField()
        centroid_y = serializers.FloatField()
        centroid_x = serializers.FloatField()
        volume_voxels = serializers.IntegerField()
        volume_um3 = serializers.FloatField()
        mean_intensity = serializers.FloatField()
        integrated_intensity = serializers.FloatField()
        solidity = serializers.FloatField()
        uncertainty = serializers.FloatField(allow_null=True)
        curation = serializers.CharField(help_text='"edited" (made or changed by a person), "checked" or "" (as '
                                                   "the model or upload made it); a new segmentation keeps the first two")

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request, volume_id: int, version: str):
        label_version = selectors.label_version_get(user=request.user, volume_id=volume_id, name=version)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        nuclei = selectors.nucleus_list(label_version=label_version, filters=filters.validated_data)
        paginator = Pagination()
        page = paginator.paginate_queryset(nuclei, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class NucleusCsvExportApi(_DownloadApi):
    """Every nucleus of a label version as CSV (by label id), streamed."""

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, volume_id: int, version: str):
        label_version = selectors.label_version_get(user=request.user, volume_id=volume_id, name=version)
        rows = selectors.nucleus_rows(label_version=label_version, fields=_NUCLEUS_FIELDS)
        response = StreamingHttpResponse(csv_stream(_NUCLEUS_FIELDS, rows), content_type="text/csv; charset=utf-8")
        name = _safe_filename(label_version.volume.name, label_version.name, "nuclei") + ".csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class NucleusMeshApi(APIView):
    """A 3D look at one nucleus: its surface (marching cubes on its labels, simplified to at most
    ``max_triangles``) and those of the nuclei touching it, in (z, y, x) micrometres, with its z
    extent, volume, uncertainty, area per plane and the signs of a z-merge."""

    class FilterSerializer(serializers.Serializer):
        neighbours = serializers.BooleanField(required=False, default=True,
                                              help_text="also mesh the nuclei that touch it")
        max_triangles = serializers.IntegerField(min_value=12, max_value=50_000, required=False, default=6000,
                                                 help_text="the nucleus' triangles at most (neighbours share a quarter)")

    class _MeshSerializer(serializers.Serializer):
        label_id = serializers.IntegerField()
        role = serializers.ChoiceField(choices=["nucleus", "neighbour"])
        n_triangles = serializers.IntegerField()
        vertices = serializers.ListField(child=serializers.FloatField(), help_text="z, y, x µm, flat")
        faces = serializers.ListField(child=serializers.IntegerField(), help_text="vertex indices, three a triangle")

    class _PlaneSerializer(serializers.Serializer):
        z = serializers.IntegerField()
        area_um2 = serializers.FloatField()

    class OutputSerializer(serializers.Serializer):
        label_version = serializers.CharField()
        label_id = serializers.IntegerField()
        voxel_size = serializers.ListField(child=serializers.FloatField())
        z_min = serializers.IntegerField()
        z_max = serializers.IntegerField()
        z_extent_um = serializers.FloatField()
        volume_um3 = serializers.FloatField()
        volume_voxels = serializers.IntegerField()
        uncertainty = serializers.FloatField(allow_null=True)
        neighbours = serializers.ListField(child=serializers.IntegerField())
        profile = serializers.ListField(child=serializers.DictField(), help_text="[{z, area_um2}] per plane")
        z_merge_signs = serializers.ListField(child=serializers.CharField(),
                                              help_text="why it may be two nuclei joined in z; empty: none")
        waist_z = serializers.IntegerField(allow_null=True, help_text="the plane of its narrowest waist, if any")
        meshes = serializers.ListField(child=serializers.DictField(),
                                       help_text="[{label_id, role, n_triangles, vertices, faces}]")

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request, volume_id: int, version: str, label_id: int):
        label_version = selectors.label_version_get(user=request.user, volume_id=volume_id, name=version)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        try:
            view = selectors.nucleus_mesh_get(label_version=label_version, label_id=label_id,
                                              **filters.validated_data)
        except Nucleus.DoesNotExist:
            raise ApplicationError(f"{label_version.name} has no nucleus {label_id}", status=404) from None
        return Response(self.OutputSerializer(view).data)


# -- label exports ----------------------------------------------------------------------------


class LabelVersionTiffExportApi(_DownloadApi):
    """The version's full-resolution labels as a uint32 OME-TIFF (ZYX, voxel size in µm)."""

    @extend_schema(responses={(200, "image/tiff"): OpenApiTypes.BINARY})
    def get(self, request, volume_id: int, version: str):
        label_version = selectors.label_version_get(user=request.user, volume_id=volume_id, name=version)
        path = services.label_version_export_tiff(label_version=label_version)
        handle = open(path, "rb")
        shutil.rmtree(path.parent)  # the open handle keeps the file readable until the response closes it
        name = _safe_filename(label_version.volume.name, label_version.name, "labels") + ".ome.tif"
        return FileResponse(handle, as_attachment=True, filename=name, content_type="image/tiff")


class LabelVersionZarrExportApi(_DownloadApi):
    """The version (all pyramid levels) as a standalone OME-Zarr directory in a ZIP archive,
    streamed; unzip and open with any NGFF reader."""

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request, volume_id: int, version: str):
        label_version = selectors.label_version_get(user=request.user, volume_id=volume_id, name=version)
        path = services.label_version_export_zarr(label_version=label_version)
        root = _safe_filename(label_version.volume.name, label_version.name, "labels") + ".ome.zarr"
        response = StreamingHttpResponse(zip_directory_stream(path, root_name=root, remove=path.parent),
                                         content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{root}.zip"'
        return response



# -- corrections ------------------------------------------------------------------------------


class CorrectionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    volume = serializers.IntegerField(source="volume_id")
    type = serializers.CharField(source="correction_type")
    label_version = serializers.CharField(source="label_version.name", help_text="the version edited")
    result_version = serializers.CharField(source="result_version.name", allow_null=True, default=None,
                                           help_text="the version it produced (none for a confirm)")
    model_version = serializers.CharField(help_text="the model behind the labels corrected")
    nucleus_ids = serializers.ListField(child=serializers.IntegerField(), help_text="edited nuclei, before")
    new_ids = serializers.ListField(child=serializers.IntegerField(), help_text="edited nuclei, after")
    bbox = serializers.ListField(child=serializers.IntegerField(), help_text="[z0, z1, y0, y1, x0, x1), level 0")
    geometry = serializers.JSONField()
    record_id = serializers.IntegerField(help_text="the record in the volume's corrections.json")
    created_by = _UserField()
    created_at = serializers.DateTimeField()
    undone = serializers.BooleanField()
    undone_version = serializers.CharField(source="undone_version.name", allow_null=True, default=None)
    undone_at = serializers.DateTimeField(allow_null=True)
    redo_of = serializers.IntegerField(source="redo_of_id", allow_null=True)
    review_status = serializers.CharField(help_text="pending, approved, rejected or amended")
    reviewed_by = _UserField(source="reviewed_by.username")
    reviewed_at = serializers.DateTimeField(allow_null=True)
    review_comment = serializers.CharField()
    review_labels = serializers.CharField(help_text='what a rejection did to the latest labels: "reverted", "kept" '
                                                    'or "" (no rejection)')
    reverted_version = serializers.CharField(source="reverted_version.name", allow_null=True, default=None,
                                             help_text="the version that took the rejected edit back out")
    amends = serializers.IntegerField(source="amends_id", allow_null=True)


class _Point(serializers.ListField):
    def __init__(self, **kwargs):
        super().__init__(child=serializers.FloatField(), min_length=2, max_length=2, **kwargs)


class CorrectionListCreateApi(APIView):
    """``POST``: edit the volume's latest label version (one correction, one new version).
    ``GET``: the volume's corrections, newest first, a page at a time."""

    pagination_class = Pagination  # read by the schema: the answer is a page, not an array

    class InputSerializer(serializers.Serializer):
        label_version = serializers.RegexField(r"^v[1-9][0-9]*$", help_text="the version the edit was made on")
        type = serializers.ChoiceField(choices=["split", "merge", "delete", "add", "modify", "confirm"],
                                       help_text="confirm: the one nucleus named is right (a check mark)")
        nucleus_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=_LABEL_ID_MAX),
                                            required=False, default=list)
        z = serializers.IntegerField(min_value=0, max_value=_PLANE_MAX, required=False, default=0,
                                     help_text="the plane drawn on")
        z_range = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=_PLANE_MAX),
                                        min_length=2, max_length=2,
                                        required=False, allow_null=True, default=None,
                                        help_text="[z0, z1] inclusive: planes an add or modify applies to")
        line = serializers.ListField(child=_Point(), required=False, allow_null=True, default=None,
                                     help_text="split: [[y, x], ...] across the nucleus ([[z, x], ...] on an xz "
                                               "plane, [[z, y], ...] on a yz plane)")
        plane = serializers.ChoiceField(choices=["xy", "xz", "yz"], required=False, default="xy",
                                        help_text="the view the edit was made in; a split's line drawn on xz or yz "
                                                  "cuts through the nucleus' y or x range (a z-cut)")
        seeds = serializers.ListField(child=_Point(), required=False, allow_null=True, default=None,
                                      help_text="split: two [y, x] seeds")
        polygon = serializers.ListField(child=_Point(), required=False, allow_null=True, default=None,
                                        help_text="add: the outline")
        stroke = serializers.DictField(required=False, allow_null=True, default=None,
                                       help_text='add or modify: {"points": [[y, x], ...], "radius": r, "erase": bool}; '
                                                 '"radius_um" instead of "radius": the spherical brush (a ball of '
                                                 'that radius in µm, through the planes it reaches)')
        sections = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True, default=None,
                                         help_text='add or modify: [{"z": plane, "polygon": [[y, x], ...]}, ...] on two '
                                                   'or more planes, the planes between interpolated')
        fill = serializers.DictField(required=False, allow_null=True, default=None,
                                     help_text='add or modify: {"point": [y, x], "radius": r}: the background enclosed '
                                               'around the point, within r pixels, on the planes of z_range')

    @extend_schema(request=InputSerializer, responses={201: CorrectionOutputSerializer})
    def post(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        within = roles.editable_regions(user=request.user, volume=volume)  # 403 for a student not assigned it
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        role = roles.role_of(user=request.user, project_id=volume.project_id)
        correction = services.correction_create(volume=volume, user=request.user, label_version=data["label_version"],
                                                edit=_edit_of(data), within=within, approved=role in roles.STAFF)
        return Response(CorrectionOutputSerializer(correction).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=CorrectionOutputSerializer(many=True))
    def get(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.correction_list(volume=volume, user=request.user), request,
                                           view=self)
        return paginator.get_paginated_response(CorrectionOutputSerializer(page, many=True).data)


def _edit_of(data: dict) -> dict:
    """The ``Edit`` fields of a validated correction body (``stroke`` unpacked)."""
    edit = {"correction_type": data["type"],
            **{k: v for k, v in data.items() if k not in ("label_version", "type", "stroke", "fill", "comment")}}
    stroke = data.get("stroke")
    if stroke is not None:
        unknown = sorted(set(stroke) - {"points", "radius", "radius_um", "erase"})
        if unknown:
            raise ApplicationError(f"unknown stroke fields: {', '.join(unknown)}")
        edit.update(stroke=stroke.get("points"), radius=stroke.get("radius"), erase=stroke.get("erase", False))
        if stroke.get("radius_um") is not None:
            edit["radius_um"] = stroke["radius_um"]
    fill = data.get("fill")
    if fill is not None:
        unknown = sorted(set(fill) - {"point", "radius"})
        if unknown or "point" not in fill:
            raise ApplicationError('a fill is {"point": [y, x], "radius": r}', extra={"field": "fill"})
        edit.update(fill=fill["point"], radius=fill.get("radius"))
    return edit


def _own_or_staff(request, correction, action: str) -> None:
    """A student may read and undo their own corrections only."""
    roles.require_own_or_staff(user=request.user, project_id=correction.volume.project_id,
                               owner_id=correction.created_by_id, action=f"{action} another student's correction")


class CorrectionDetailApi(APIView):
    @extend_schema(responses=CorrectionOutputSerializer)
    def get(self, request, correction_id: int):
        correction = selectors.correction_get(user=request.user, correction_id=correction_id)
        _own_or_staff(request, correction, "reading")
        return Response(CorrectionOutputSerializer(correction).data)


class _CorrectionStepApi(APIView):
    """Undo or redo: ``{"label_version": the latest version as the page shows it}``; the
    subclass names the service (``step``)."""

    class InputSerializer(serializers.Serializer):
        label_version = serializers.RegexField(r"^v[1-9][0-9]*$", help_text="the volume's latest version")

    class OutputSerializer(serializers.Serializer):
        correction = CorrectionOutputSerializer()
        result_version = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request, correction_id: int):
        correction = selectors.correction_get(user=request.user, correction_id=correction_id)
        _own_or_staff(request, correction, "undoing or redoing")
        roles.editable_regions(user=request.user, volume=correction.volume)  # a submitted assignment is closed
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        latest = serializer.validated_data["label_version"]
        correction = type(self).step(correction=correction, user=request.user, label_version=latest)
        version = correction.undone_version if correction.undone else correction.result_version
        # A withdrawn check made no version: the latest stays as it was.
        return Response(self.OutputSerializer({"correction": correction,
                                               "result_version": version.name if version else latest}).data,
                        status=status.HTTP_201_CREATED)


class CorrectionUndoApi(_CorrectionStepApi):
    """A new latest version with the edit reverted; the record is marked undone."""

    step = staticmethod(services.correction_undo)


class CorrectionRedoApi(_CorrectionStepApi):
    """An undone edit made again on the latest version: a new version and a new record."""

    step = staticmethod(services.correction_redo)


# -- review -----------------------------------------------------------------------------------


class ReviewQueueApi(APIView):
    """The project's corrections awaiting review, oldest first (instructors and admins)."""

    pagination_class = Pagination  # read by the schema: the answer is a page, not an array

    @extend_schema(responses=CorrectionOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="reviewing")
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.review_queue(project=project), request, view=self)
        return paginator.get_paginated_response(CorrectionOutputSerializer(page, many=True).data)


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
        label_version = serializers.RegexField(r"^v[1-9][0-9]*$", required=False, allow_null=True, default=None,
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
                                              label_version=data["label_version"], edit=_edit_of(data),
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


class AuditEventListApi(APIView):
    """The project's audit trail, newest first (instructors and admins)."""

    pagination_class = Pagination  # read by the schema: the answer is a page, not an array

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        user = _UserField(source="user.username")
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
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.audit_list(project=project), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


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
    assigned_by = _UserField(source="assigned_by.username")
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
