"""Sign-in throttling (django-axes): after ``EZQUANT_LOGIN_FAILURE_LIMIT`` failed sign-ins for
one account, or from one address, further attempts are refused for
``EZQUANT_LOGIN_COOLOFF_MINUTES``, the right password included, on the login page, the admin's
and ``POST /api/v1/auth/token/`` alike.

Two adjustments to axes: its backend is given the Django request under DRF's wrapper (axes
marks the request it sees, and its middleware reads the mark on Django's), and a sign-in with
no request at all (the shell, ``manage.py``, tests' ``Client.login``) is not an HTTP attempt:
axes would refuse it outright, here it is simply not throttled.
"""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import exceptions
from rest_framework.authtoken.views import ObtainAuthToken

__all__ = ["AuthTokenApi", "LoginThrottleBackend", "lockout_response"]


class LoginThrottleBackend(AxesStandaloneBackend):
    """The first backend: refuses a locked-out account or address before any password check."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        request = getattr(request, "_request", request)  # rest_framework.request.Request -> HttpRequest
        return super().authenticate(request, username=username, password=password, **kwargs)


def _message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return f"too many failed sign-ins for this account or from this address: try again in {minutes} minutes"


def lockout_response(request, *args, **kwargs) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429 in the API's error shape under ``/api/``, the sign-in page
    with the reason elsewhere. (Any arguments after the request are ignored: axes passes
    different ones from its sync and async paths.)"""
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith("/api/"):
        response = JsonResponse({"message": _message(), "extra": {"retry_after_s": int(retry_after)}}, status=429)
    else:
        from django.contrib.auth.forms import AuthenticationForm

        message = _message()
        response = render(request, "frontend/login.html", {
            "form": AuthenticationForm(request), "locked_out": message[0].upper() + message[1:] + "."}, status=429)
    response["Retry-After"] = retry_after
    return response


class AuthTokenApi(ObtainAuthToken):
    """``POST /api/v1/auth/token/`` (DRF's view), answering a locked-out sign-in with 429 (axes
    marks DRF's request object, which its middleware never sees), and telling of a success as
    the sign-in page does (``user_logged_in``: axes clears the account's failures, Django
    records ``last_login``)."""

    def post(self, request, *args, **kwargs):
        from django.contrib.auth.signals import user_logged_in
        from rest_framework.authtoken.models import Token
        from rest_framework.response import Response

        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except exceptions.ValidationError:
            if getattr(request, "axes_locked_out", False) or getattr(request._request, "axes_locked_out", False):
                return lockout_response(request._request)
            raise
        user = serializer.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        return Response({"token": token.key})
