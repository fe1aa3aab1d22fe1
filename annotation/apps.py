from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    """Volumes, nuclei, corrections and reviews: what people do with a segmentation."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "annotation"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from annotation import events
        from annotation.models import LabelVersion, VolumeImportJob
        from ezquant_web.jobs.kinds import register_job_kind

        # Every new label version is told to the volume's open viewers (annotation.events).
        post_save.connect(events.label_version_saved, sender=LabelVersion, dispatch_uid="label_version_live")
        # A volume import is a kind of job (ezquant_web.jobs runs it): what its state carries, who hears it.
        register_job_kind(VolumeImportJob, related=("volume",), fields=events.import_job_fields,
                          groups=events.import_job_groups)
