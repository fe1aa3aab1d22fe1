"""Corrections (``annotation.services.corrections``): an edit of the latest labels, the list, undo
and redo."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import roles, selectors, services
from ezquant_web.api import ApplicationError

from ._base import LABEL_ID_MAX, PLANE_MAX, PagedListApi, UserField, VersionNameField


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
    created_by = UserField()
    created_at = serializers.DateTimeField()
    undone = serializers.BooleanField()
    undone_version = serializers.CharField(source="undone_version.name", allow_null=True, default=None)
    undone_at = serializers.DateTimeField(allow_null=True)
    redo_of = serializers.IntegerField(source="redo_of_id", allow_null=True)
    review_status = serializers.CharField(help_text="pending, approved, rejected or amended")
    reviewed_by = UserField(source="reviewed_by.username")
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


class CorrectionListCreateApi(PagedListApi):
    """``POST``: edit the volume's latest label version (one correction, one new version).
    ``GET``: the volume's corrections, newest first, a page at a time."""

    class InputSerializer(serializers.Serializer):
        label_version = VersionNameField(help_text="the version the edit was made on")
        # The choices of type and plane and the help of type are the core's (__init__).
        type = serializers.ChoiceField(choices=[])
        nucleus_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=LABEL_ID_MAX),
                                            required=False, default=list)
        z = serializers.IntegerField(min_value=0, max_value=PLANE_MAX, required=False, default=0,
                                     help_text="the plane drawn on")
        z_range = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=PLANE_MAX),
                                        min_length=2, max_length=2,
                                        required=False, allow_null=True, default=None,
                                        help_text="[z0, z1] inclusive: planes an add or modify applies to")
        line = serializers.ListField(child=_Point(), required=False, allow_null=True, default=None,
                                     help_text="split: [[y, x], ...] across the nucleus ([[z, x], ...] on an xz "
                                               "plane, [[z, y], ...] on a yz plane)")
        plane = serializers.ChoiceField(choices=[], required=False, default="xy",
                                        help_text="the view the edit was made in; a split's line drawn on xz or yz "
                                                  "cuts through the nucleus' y or x range (a z-cut)")
        seeds = serializers.ListField(child=_Point(), required=False, allow_null=True, default=None,
                                      help_text="split: two [y, x] seeds")
        polygon = serializers.ListField(child=_Point(), required=False, allow_null=True, default=None,
                                        help_text="add: the outline")
        stroke = serializers.DictField(required=False, allow_null=True, default=None,
                                       help_text='add or modify: {"points": [[y, x], ...], "radius": r, '
                                                 '"erase": bool}; "radius_um" instead of "radius": the spherical '
                                                 'brush (a ball of that radius in µm, through the planes it reaches)')
        sections = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True, default=None,
                                         help_text='add or modify: [{"z": plane, "polygon": [[y, x], ...]}, ...] on '
                                                   'two or more planes, the planes between interpolated')
        fill = serializers.DictField(required=False, allow_null=True, default=None,
                                     help_text='add or modify: {"point": [y, x], "radius": r}: the background enclosed '
                                               'around the point, within r pixels, on the planes of z_range')

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Read as each serializer is made: a kind registered in segmentation.core.editing is
            # accepted, and in the schema, as it is. The core loads numpy: imported when first used.
            from segmentation.core.editing import EDIT_KINDS, SPLIT_PLANES

            self.fields["plane"].choices = list(SPLIT_PLANES)
            kind = self.fields["type"]
            kind.choices = list(EDIT_KINDS)
            kind.help_text = "; ".join(f"{k.name}: {k.summary}" for k in EDIT_KINDS.values())

    @extend_schema(request=InputSerializer, responses={201: CorrectionOutputSerializer})
    def post(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        within = roles.editable_regions(user=request.user, volume=volume)  # 403 for a student not assigned it
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        role = roles.role_of(user=request.user, project_id=volume.project_id)
        correction = services.correction_create(volume=volume, user=request.user, label_version=data["label_version"],
                                                edit=edit_of(data), within=within, approved=role in roles.STAFF)
        return Response(CorrectionOutputSerializer(correction).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=CorrectionOutputSerializer(many=True))
    def get(self, request, volume_id: int):
        volume = selectors.volume_get(user=request.user, volume_id=volume_id)
        return self.paged(request, selectors.correction_list(volume=volume, user=request.user),
                          CorrectionOutputSerializer)


def edit_of(data: dict) -> dict:
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
        label_version = VersionNameField(help_text="the volume's latest version")

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
