"""Segmentation jobs: one row per request to segment a volume, the truth about how it went.

A worker claims a queued row (``services.segmentation_job_run``), writes its progress into it
while the engine runs, and ends it ``succeeded`` (with the label version it created),
``failed`` (with the error) or ``cancelled``. Writes go through ``services.py``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SegmentationJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    # The project is kept beside the volume: a job outlives its volume's deletion (it ends
    # failed), and access is decided by the project's membership.
    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="segmentation_jobs")
    volume = models.ForeignKey("annotation.Volume", null=True, on_delete=models.SET_NULL,
                               related_name="segmentation_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    params = models.JSONField(help_text="SegmentationParams.to_dict(), validated at submission")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1")
    message = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    timings = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    label_version = models.ForeignKey("annotation.LabelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    model_version = models.CharField(max_length=200, blank=True, help_text="name, version and sha256 of the model")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of the worker")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="segjob_status_heartbeat_idx")]

    def __str__(self) -> str:
        return f"segmentation job {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
