"""Nuclei of a label version: the list (a page at a time), the CSV export and one nucleus' 3D view."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import selectors
from annotation.exports import csv_stream
from annotation.models import Nucleus
from ezquant_web.api import ApplicationError

from ._base import (
    COUNT_MAX,
    LABEL_ID_MAX,
    PLANE_MAX,
    DownloadApi,
    PagedListApi,
    StrategySerializer,
    label_version_of,
    safe_filename,
)


class NucleusListApi(PagedListApi):
    """The nuclei of a label version, a page at a time (``?page=``, ``?page_size=`` up to 1000)."""

    class FilterSerializer(serializers.Serializer):
        label_id_min = serializers.IntegerField(min_value=0, max_value=LABEL_ID_MAX, required=False)
        label_id_max = serializers.IntegerField(min_value=0, max_value=LABEL_ID_MAX, required=False)
        z = serializers.IntegerField(min_value=0, max_value=PLANE_MAX, required=False,
                                     help_text="nuclei present in this plane")
        min_volume_voxels = serializers.IntegerField(min_value=0, max_value=COUNT_MAX, required=False)
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
                                                   "the model or upload made it); a new segmentation keeps the "
                                                   "first two")

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request, volume_id: int, version: str):
        label_version = label_version_of(request, volume_id, version)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        nuclei = selectors.nucleus_list(label_version=label_version, filters=filters.validated_data)
        return self.paged(request, nuclei, self.OutputSerializer)


# The CSV's columns are the list's, in its order, less the curation mark (the columns are written once).
_CSV_COLUMNS = tuple(name for name in NucleusListApi.OutputSerializer().fields if name != "curation")


class NucleusReviewQueueApi(APIView):
    """The nuclei of a label version to review next, as a review strategy picks them from the
    model's uncertainty (``selectors.nucleus_review_queue``: the planes taken in turn by
    ``round_robin``; nuclei without a score after the picks): the viewer's queue."""

    class FilterSerializer(StrategySerializer):
        default_strategy = "top"
        size = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=200,
                                        help_text="how many nuclei the queue holds at most")

    class OutputSerializer(serializers.Serializer):
        count = serializers.IntegerField(help_text="the nuclei of the version")
        strategy = serializers.CharField()
        results = NucleusListApi.OutputSerializer(many=True, help_text="the queue, in review order")

    @extend_schema(parameters=[FilterSerializer], responses=OutputSerializer)
    def get(self, request, volume_id: int, version: str):
        label_version = label_version_of(request, volume_id, version)
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        count, queue = selectors.nucleus_review_queue(label_version=label_version, **query.validated_data)
        return Response(self.OutputSerializer({"count": count, "strategy": query.validated_data["strategy"],
                                               "results": queue}).data)


class NucleusCsvExportApi(DownloadApi):
    """Every nucleus of a label version as CSV (by label id), streamed."""

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, volume_id: int, version: str):
        label_version = label_version_of(request, volume_id, version)
        rows = selectors.nucleus_rows(label_version=label_version, fields=_CSV_COLUMNS)
        response = StreamingHttpResponse(csv_stream(_CSV_COLUMNS, rows), content_type="text/csv; charset=utf-8")
        name = safe_filename(label_version.volume.name, label_version.name, "nuclei") + ".csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class NucleusMeshApi(APIView):
    """A 3D look at one nucleus: its surface (marching cubes on its labels, simplified to at most
    ``max_triangles``) and those of the nuclei touching it, in (z, y, x) micrometres, with its z
    extent, volume, uncertainty, area per plane and the signs of a z-merge."""

    class FilterSerializer(serializers.Serializer):
        neighbours = serializers.BooleanField(required=False, default=True,
                                              help_text="also mesh the nuclei that touch it")
        max_triangles = serializers.IntegerField(
            min_value=12, max_value=50_000, required=False, default=6000,
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
        label_version = label_version_of(request, volume_id, version)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        try:
            view = selectors.nucleus_mesh_get(label_version=label_version, label_id=label_id,
                                              **filters.validated_data)
        except Nucleus.DoesNotExist:
            raise ApplicationError(f"{label_version.name} has no nucleus {label_id}", status=404) from None
        return Response(self.OutputSerializer(view).data)
