from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    """Volumes, nuclei, corrections and reviews: what people do with a segmentation."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"
