from django.contrib import admin

from segmentation.models import ModelPromotion, ModelVersion, SegmentationJob, TrainingJob


class _RecordAdmin(admin.ModelAdmin):
    """Jobs and model versions are written by services and workers: shown here, never edited or
    deleted (a model version is referred to by label versions and promotions)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SegmentationJob)
class SegmentationJobAdmin(_RecordAdmin):
    list_display = ["id", "project", "volume", "status", "progress", "label_version", "created_by", "created_at"]
    list_filter = ["status", "project"]


@admin.register(TrainingJob)
class TrainingJobAdmin(_RecordAdmin):
    list_display = ["id", "project", "status", "progress", "model_version", "created_by", "created_at"]
    list_filter = ["status", "project"]


@admin.register(ModelVersion)
class ModelVersionAdmin(_RecordAdmin):
    list_display = ["project", "number", "name", "base_model", "adapter_bytes", "created_by", "created_at"]
    list_filter = ["project"]


@admin.register(ModelPromotion)
class ModelPromotionAdmin(_RecordAdmin):
    list_display = ["project", "model_version", "promoted_by", "note", "created_at"]
    list_filter = ["project"]
