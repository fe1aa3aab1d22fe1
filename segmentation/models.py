"""Jobs and model versions: one row per request to segment a volume or to retrain a model, the
truth about how it went, and the models a project's retraining produced.

A worker claims a queued job row (``ezquant_web.jobs.runner``), writes its progress into it while the
work runs, and ends it ``succeeded`` (with what it made: a label version, a model version),
``failed`` (with the error) or ``cancelled``. Writes go through ``services.py``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ezquant_web.jobs.models import Job


class SegmentationJob(Job):
    """Segment a volume: ``params`` is ``SegmentationParams.to_dict()``."""

    kind = "segmentation"

    # The project is kept beside the volume: a job outlives its volume's deletion (it ends
    # failed), and access is decided by the project's membership.
    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="segmentation_jobs")
    volume = models.ForeignKey("annotation.Volume", null=True, on_delete=models.SET_NULL,
                               related_name="segmentation_jobs")
    label_version = models.ForeignKey("annotation.LabelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    model_version = models.CharField(max_length=200, blank=True, help_text="name, version and sha256 of the model")
    # People's work outranks the model's: the nuclei people made, changed or checked in the
    # latest labels are kept in the new version unless the job was started from scratch.
    from_scratch = models.BooleanField(default=False, help_text="drop people's corrections from the new labels")
    kept_nuclei = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="person-made or checked nuclei kept from the latest labels")

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="segjob_status_heartbeat_idx")]


class TrainingJob(Job):
    """Fine-tune an adapter on a project's approved corrections: ``params`` is
    ``RetrainingParams.to_dict()``; ``metrics`` holds the loss curve as it grows."""

    kind = "training"

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="training_jobs")
    correction_ids = models.JSONField(default=list, help_text="the approved corrections trained on")
    metrics = models.JSONField(default=dict, blank=True, help_text='{"loss": [[step, loss], ...], ...}')
    resumed_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_version = models.ForeignKey("ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="trainjob_status_heartbeat_idx")]


class ModelVersion(models.Model):
    """An adapter trained for a project: what it was trained from, on what, how, and its scores.
    Immutable once written; which version a project uses is the latest :class:`ModelPromotion`."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200, help_text="the adapter file's name: base model, 'lora', weights hash")
    base_model = models.CharField(max_length=200)
    base_sha256 = models.CharField(max_length=64)
    adapter_path = models.CharField(max_length=500, help_text="relative to EZQUANT_DATA_DIR")
    adapter_sha256 = models.CharField(max_length=64)
    adapter_bytes = models.PositiveBigIntegerField()
    correction_ids = models.JSONField(help_text="corrections trained on")
    held_out_ids = models.JSONField(help_text="corrections it was scored on")
    params = models.JSONField()
    scores = models.JSONField(help_text="compare_models(): candidate, reference, delta, better")
    training_job = models.ForeignKey(TrainingJob, null=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="model_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.project} model v{self.number} ({self.name})"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("model versions are immutable")
        super().save(*args, **kwargs)


class ModelPromotion(models.Model):
    """A project's default model from now on: a model version, or the base model (``None``) for
    a roll-back past every adapter. Only added, never changed: the history of defaults."""

    project = models.ForeignKey("annotation.Project", on_delete=models.CASCADE, related_name="model_promotions")
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="promotions")
    promoted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-id"]

    def __str__(self) -> str:
        return f"{self.project}: {self.model_version or 'base model'}"
