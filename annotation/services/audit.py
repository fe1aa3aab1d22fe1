"""The audit trail: one append-only row per action that changes something."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import AuditEvent

__all__ = ["audit_record"]


def audit_record(*, user: AbstractBaseUser | None, project_id: int | None, action: str, obj: Any = None,
                 label_version: str = "", **details: Any) -> AuditEvent:
    """Record that ``user`` did ``action`` (``<entity>.<verb>``) to ``obj`` in the project.

    Call it inside the transaction of the change it records, so both commit or neither does.
    ``details`` must be JSON-serialisable.
    """
    return AuditEvent.objects.create(
        project_id=project_id, user=user if user is not None and user.is_authenticated else None, action=action,
        object_type=type(obj).__name__.lower() if obj is not None else "", object_id=getattr(obj, "pk", None),
        label_version=label_version, details=details)
