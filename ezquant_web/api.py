"""What every API view shares: the one business-rule error, its exception handler, pagination.

Every error response has one shape, ``{"message": "...", "extra": {...}}``:

============================================  ======  ==========================================
raised                                        status  message / extra
============================================  ======  ==========================================
:class:`ApplicationError` (from a service)    its own the error's message; ``extra`` as given
``annotation.storage.StorageError``           400     the storage layer's one-line message
``RecursionError`` (a body nested too deep)   400     "the request body is nested too deeply"
DRF ``ValidationError``                       400     "Validation error"; ``extra.fields``
Django ``ValidationError``                    400     "Validation error"; ``extra.fields``
``ObjectDoesNotExist``, ``Http404``            404     "Not found." (also what non-members get)
authentication missing or wrong               401     DRF's message
other DRF ``APIException``                    its own DRF's message
anything else (a bug)                         500     "Server error." (the traceback goes to the log)
============================================  ======  ==========================================

Outside a view's exception handler (a URL that matches no route, a bug that escapes, a
suspicious request) Django's ``handler404``/``handler500``/... answer instead; under
``/api/`` they answer in the same shape (:func:`error_handler`), elsewhere with Django's pages.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError  # raised by the services, rendered here

__all__ = ["ApplicationError", "AutoSchema", "ErrorSerializer", "Pagination", "error_handler", "exception_handler"]


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: every error in the shape of the module docstring."""
    from annotation.storage import StorageError  # the app's storage layer; imported late, it is not Django

    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=exc.status)
    if isinstance(exc, StorageError):
        return Response({"message": str(exc), "extra": {}}, status=400)
    if isinstance(exc, RecursionError):
        # json.loads of "[[[[..." 5,000 deep: the parser's recursion, not a bug of ours. DRF's
        # JSONParser turns only ValueError into a 400.
        return Response({"message": "the request body is nested too deeply to read", "extra": {}}, status=400)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, (ObjectDoesNotExist, Http404)):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"message": "Validation error", "extra": {"fields": response.data}}
    else:
        response.data = {"message": str(exc.detail), "extra": {}}
    return response


_HANDLER_MESSAGES = {400: "Bad request.", 403: "You do not have permission to perform this action.",
                     404: "Not found.", 500: "Server error."}


def error_handler(status: int):
    """Django's ``handler<status>`` view for ``urls.py``: the error shape under ``/api/``,
    Django's own page elsewhere. With DEBUG off Django would otherwise answer the API's
    clients with HTML."""
    from django.http import JsonResponse
    from django.views import defaults

    page = {400: defaults.bad_request, 403: defaults.permission_denied, 404: defaults.page_not_found,
            500: defaults.server_error}[status]

    def view(request, exception=None):
        if request.path.startswith("/api/"):
            return JsonResponse({"message": _HANDLER_MESSAGES[status], "extra": {}}, status=status)
        return page(request) if status == 500 else page(request, exception)

    view.__name__ = f"handler{status}"
    return view


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M`` (100 by default, at most 1000)."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ErrorSerializer(serializers.Serializer):
    """The one error shape (module docstring)."""

    message = serializers.CharField(help_text="what is wrong, in a sentence meant for people")
    extra = serializers.DictField(help_text="details: fields in error, limits, the current version, ...")


# What each error answers, for the schema; which operations may give it is in _error_codes.
_ERRORS = {
    "400": "input that cannot be used (the reason in message, fields in extra.fields)",
    "401": "not signed in",
    "403": "a member whose role may not do this (message says who may)",
    "404": "not found, or not a member of its project (the same answer)",
    "409": "the state changed meanwhile (a newer label version, a finished job)",
    "413": "an upload over EZQUANT_MAX_UPLOAD_BYTES",
    "429": "too many: jobs waiting, or failed sign-ins",
}


class AutoSchema(SpectacularAutoSchema):
    """Names a view's nested serializer after the view in the OpenAPI schema
    (``ProjectCreateApi.InputSerializer`` -> ``ProjectCreateInput``), so that the many
    ``InputSerializer``/``OutputSerializer`` classes do not collide; and documents the error
    answers of every operation in the one error shape."""

    def _error_codes(self) -> list[str]:
        codes = ["400", "401", "403", "404"]
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes += ["409", "429"]
            if "multipart/form-data" in self.map_parsers():
                codes.append("413")
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=_ERRORS[code]), code, direction=direction)
        return responses

    def get_serializer_name(self, serializer, direction) -> str:
        owner, _, name = type(serializer).__qualname__.rpartition(".")
        if owner:
            return owner.removesuffix("Api") + name.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)
