from django.contrib import admin

from annotation.models import (
    Assignment,
    AuditEvent,
    Correction,
    LabelVersion,
    Membership,
    Nucleus,
    Project,
    Volume,
    VolumeImportJob,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_by", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user", "project"]


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that mirror files on disk (volumes, label versions, their measurements): the admin
    shows them; services create them. Deleting a row leaves its files (see annotation.services)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class _NoDeleteAdmin(_ReadOnlyAdmin):
    """Records that are only ever superseded, never removed: no delete either."""

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Volume)
class VolumeAdmin(_ReadOnlyAdmin):
    list_display = ["name", "project", "shape_z", "shape_y", "shape_x", "dtype", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "path"]


@admin.register(LabelVersion)
class LabelVersionAdmin(_NoDeleteAdmin):
    list_display = ["volume", "name", "parent", "source", "n_labels", "model_version", "created_by", "created_at"]
    list_filter = ["source"]
    search_fields = ["volume__name"]


@admin.register(Nucleus)
class NucleusAdmin(_ReadOnlyAdmin):
    list_display = ["volume", "lineage", "since", "until", "label_id", "z_min", "z_max", "volume_um3", "solidity",
                    "uncertainty"]
    list_select_related = ["volume"]
    search_fields = ["volume__name"]


@admin.register(Correction)
class CorrectionAdmin(_NoDeleteAdmin):
    list_display = ["id", "volume", "correction_type", "label_version", "result_version", "created_by",
                    "review_status", "reviewed_by", "created_at"]
    list_filter = ["correction_type", "review_status"]
    list_select_related = ["volume", "label_version", "result_version", "created_by", "reviewed_by"]
    search_fields = ["volume__name", "created_by__username"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["volume", "student", "state", "due", "assigned_by", "created_at"]
    list_filter = ["state", "project"]
    search_fields = ["volume__name", "student__username"]
    autocomplete_fields = ["student"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(_NoDeleteAdmin):
    list_display = ["created_at", "project", "user", "action", "object_type", "object_id", "label_version"]
    list_filter = ["action", "project"]
    search_fields = ["user__username", "action"]


@admin.register(VolumeImportJob)
class VolumeImportJobAdmin(admin.ModelAdmin):
    """Written by the upload and the worker: shown here, never added, edited or deleted."""

    list_display = ["id", "project", "file_name", "file_bytes", "status", "progress", "volume", "created_by",
                    "created_at"]
    list_filter = ["status", "project"]
    search_fields = ["file_name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
