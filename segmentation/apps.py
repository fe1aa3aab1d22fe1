from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    """Segmentation jobs and model versions; the science itself lives in segmentation.core."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "segmentation"

    def ready(self) -> None:
        from ezquant_web.jobs.kinds import register_job_kind
        from segmentation import events
        from segmentation.models import SegmentationJob, TrainingJob

        # This app's kinds of job (ezquant_web.jobs runs them): what their states carry, who hears them.
        register_job_kind(SegmentationJob, related=("label_version",), fields=events.segmentation_job_fields,
                          groups=events.segmentation_job_groups)
        register_job_kind(TrainingJob, related=("model_version",), fields=events.training_job_fields,
                          groups=events.training_job_groups)
