"""The abstract job row every kind of background job derives (no table of its own).

A kind of job is a concrete model deriving :class:`Job` in its app, registered with
:func:`ezquant_web.jobs.kinds.register_job_kind` in that app's ``AppConfig.ready()``; the
machinery in :mod:`ezquant_web.jobs.runner` runs it. Deriving an abstract model adds its
fields to the app's own table: moving this class here moved no table and no data.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Job(models.Model):
    """What every kind of job has: its parameters, state, progress and timings."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    params = models.JSONField(help_text="the parameter object's to_dict(), validated at submission")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1")
    message = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    timings = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the worker")

    kind = "job"

    class Meta:
        abstract = True
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
