from django.contrib import admin

from annotation.models import LabelVersion, Membership, Nucleus, Project, Volume


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


@admin.register(Volume)
class VolumeAdmin(_ReadOnlyAdmin):
    list_display = ["name", "project", "shape_z", "shape_y", "shape_x", "dtype", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "path"]


@admin.register(LabelVersion)
class LabelVersionAdmin(_ReadOnlyAdmin):
    list_display = ["volume", "name", "parent", "source", "n_labels", "model_version", "created_by", "created_at"]
    list_filter = ["source"]
    search_fields = ["volume__name"]


@admin.register(Nucleus)
class NucleusAdmin(_ReadOnlyAdmin):
    list_display = ["label_version", "label_id", "z_min", "z_max", "volume_um3", "solidity", "uncertainty"]
    list_select_related = ["label_version__volume"]
    search_fields = ["label_version__volume__name"]
