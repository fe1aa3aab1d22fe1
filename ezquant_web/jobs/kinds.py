"""The kinds of job, registered by their apps: what each one's state carries and who hears it.

An app registers each of its concrete job models (deriving :class:`~ezquant_web.jobs.models.Job`)
in its ``AppConfig.ready()``, so every process (web, worker, tests) knows them before a job is
run, reaped or published::

    register_job_kind(SegmentationJob, related=("label_version",), fields=events.segmentation_job_fields,
                      groups=events.segmentation_job_groups)

The reaper and the stuck-queue check go through :func:`job_models`; :mod:`ezquant_web.jobs.events`
builds a state from the row and the kind's ``fields`` and sends it to the kind's ``groups``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ezquant_web.jobs.models import Job

__all__ = ["JOB_KINDS", "JobKind", "job_kind", "job_models", "register_job_kind"]


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    model : the concrete model (its ``kind`` names it in states: ``"segmentation"``).
    related : the foreign keys its state reads (``select_related`` when the row is read).
    fields : ``fields(job) -> dict``, what its state carries beside the common fields.
    groups : ``groups(state) -> [group, ...]``, the channel groups that hear it.
    """

    model: type[Job]
    related: tuple[str, ...]
    fields: Callable[[Job], dict[str, Any]]
    groups: Callable[[dict[str, Any]], list[str]]


#: Registered kinds by their ``kind`` name, in the order of registration.
JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(model: type[Job], *, related: tuple[str, ...] = (),
                      fields: Callable[[Job], dict[str, Any]], groups: Callable[[dict[str, Any]], list[str]]) -> None:
    """Register ``model`` as a kind of job (again: replaced, so a repeated ``ready()`` is harmless);
    a ``kind`` name another model holds is refused."""
    name = model.kind
    if not name or name == "job":
        raise ValueError(f"{model.__name__} needs its own kind name (the class attribute kind)")
    taken = JOB_KINDS.get(name)
    if taken is not None and taken.model is not model:
        raise ValueError(f"job kind {name!r} is taken by {taken.model.__name__}")
    JOB_KINDS[name] = JobKind(model=model, related=tuple(related), fields=fields, groups=groups)


def job_kind(kind: str | type[Job] | Job) -> JobKind:
    """The registered kind of a job, its model or its ``kind`` name."""
    name = kind if isinstance(kind, str) else kind.kind
    try:
        return JOB_KINDS[name]
    except KeyError:
        raise LookupError(f"{name!r} is not a registered job kind: register_job_kind() it in its app's "
                          "AppConfig.ready()") from None


def job_models() -> tuple[type[Job], ...]:
    """Every registered job model (the reaper's and the stuck-queue check's list)."""
    return tuple(kind.model for kind in JOB_KINDS.values())
