"""The one business-rule error: services, selectors and roles raise it; the API edge renders it.

This module imports neither Django nor DRF, so a service raising :class:`ApplicationError`
depends on no web framework; :func:`ezquant_web.api.exception_handler` translates it into an
HTTP answer (``status``, ``{"message", "extra"}``), and management commands into a
``CommandError``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApplicationError"]


class ApplicationError(Exception):
    """A business rule refused what was asked: the message is shown to the user as it is.

    ``status`` is the HTTP status a view answers with (400 unless said otherwise, 413 for an
    upload that is too large); ``extra`` is a JSON-serialisable dict of details.
    """

    def __init__(self, message: str, *, status: int = 400, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}
