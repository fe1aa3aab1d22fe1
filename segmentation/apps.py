from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    """Segmentation jobs and model versions; the science itself lives in segmentation.core."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "segmentation"
