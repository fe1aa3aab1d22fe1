"""What the annotation API's views share: download and upload views, bounds of numbers, the
user and version-name fields, a paged list and the label version named in a path."""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.views import APIView

from annotation import selectors
from ezquant_web.api import ApplicationError, Pagination


class _AnyRenderer(BaseRenderer):
    """Lets a download view accept any ``Accept`` header (``text/csv``, ``image/tiff``): the
    file response bypasses renderers; an error is still rendered as JSON."""

    media_type = "*/*"
    format = "download"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if isinstance(data, (dict, list)) else data


class DownloadApi(APIView):
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


class UploadApi(APIView):
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
LABEL_ID_MAX = 2 ** 32 - 1
PLANE_MAX = 2 ** 31 - 1
COUNT_MAX = 2 ** 63 - 1


def safe_filename(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("_") or "download"


class UserField(serializers.CharField):
    """A user shown by username (``null`` once the account is gone)."""

    def __init__(self, **kwargs):
        super().__init__(source=kwargs.pop("source", "created_by.username"), allow_null=True, read_only=True,
                         **kwargs)


class VersionNameField(serializers.RegexField):
    """A label version's name as the API spells it: ``v1``, ``v2``, ..."""

    def __init__(self, **kwargs):
        super().__init__(r"^v[1-9][0-9]*$", **kwargs)


class StrategySerializer(serializers.Serializer):
    """``?strategy=`` (a review strategy of ``segmentation.core.corrections.SELECTION_STRATEGIES``,
    or one of ``extra``) and ``?seed=``; a subclass sets ``default_strategy`` and ``extra``."""

    default_strategy = "top"
    extra: tuple[tuple[str, str], ...] = ()  # (name, what it does) the queue offers besides the core's

    strategy = serializers.ChoiceField(choices=[], required=False)
    seed = serializers.IntegerField(
        min_value=0, max_value=2 ** 31 - 1, required=False, default=None,
        help_text="the seed of the random picks (random, mixed): the same seed, the same queue")

    @classmethod
    def offered(cls) -> list[tuple[str, str]]:
        """(name, what it does) of every order offered: ``extra``, then the core's registry."""
        # Read at each call: a strategy registered in the core is offered (and in the schema)
        # as it is. The core loads numpy: imported when first used.
        from segmentation.core.corrections import SELECTION_STRATEGIES

        return [*cls.extra, *((s.name, s.summary) for s in SELECTION_STRATEGIES.values())]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["strategy"]
        offered = self.offered()
        field.choices = [name for name, _ in offered]
        field.default = self.default_strategy
        field.help_text = f"the order of the queue (default {self.default_strategy}): " + "; ".join(
            f"{name}: {summary}" for name, summary in offered)


class PagedListApi(APIView):
    """A list answered a page at a time (``?page=``, ``?page_size=``; ``ezquant_web.api.Pagination``)."""

    pagination_class = Pagination  # read by the schema: the answer is a page, not an array

    def paged(self, request, items, serializer_class):
        paginator = Pagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


def label_version_of(request, volume_id: int, version: str):
    """The label version a path names (``volumes/<id>/label-versions/<version>/``); 404 for non-members."""
    return selectors.label_version_get(user=request.user, volume_id=volume_id, name=version)
