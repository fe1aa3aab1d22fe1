"""``/api/v1/`` routes of the annotation app (included from ``ezquant_web/urls.py``).

One route per operation (HackSoft's style): a list and a create are two paths.
"""

from django.urls import path, re_path

from annotation import apis, tile_views
from ezquant_web.converters import ID_PATTERN  # registers <id:...>: ids past 18 digits are 404

_TILE = r"(?P<level>[^/]+)/(?P<z>[^/]+)/(?P<ty>[^/]+)/(?P<tx>[^/.]+)\.(?P<fmt>[^/.]+)$"
_ORTHO = r"(?P<plane>xz|yz)/"  # an orthogonal plane's tiles: its index (a row or column) in the z group
_VERSION = "volumes/<id:volume_id>/label-versions/<str:version>/"
_VOLUME = r"^volumes/(?P<volume_id>" + ID_PATTERN + r")/"

urlpatterns = [
    path("projects/", apis.ProjectListApi.as_view(), name="project-list"),
    path("projects/create/", apis.ProjectCreateApi.as_view(), name="project-create"),
    path("projects/<id:project_id>/", apis.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<id:project_id>/members/", apis.ProjectMemberListApi.as_view(), name="project-member-list"),
    path("projects/<id:project_id>/members/add/", apis.ProjectMemberAddApi.as_view(), name="project-member-add"),
    path("projects/<id:project_id>/reviews/", apis.ReviewQueueApi.as_view(), name="review-queue"),
    path("projects/<id:project_id>/agreement/", apis.AgreementApi.as_view(), name="agreement"),
    path("projects/<id:project_id>/audit/", apis.AuditEventListApi.as_view(), name="audit-list"),
    path("projects/<id:project_id>/assignments/", apis.ProjectAssignmentListApi.as_view(),
         name="project-assignment-list"),
    path("projects/<id:project_id>/assignments/create/", apis.AssignmentCreateApi.as_view(),
         name="assignment-create"),
    path("assignments/", apis.MyAssignmentListApi.as_view(), name="my-assignment-list"),
    path("assignments/<id:assignment_id>/submit/", apis.AssignmentSubmitApi.as_view(), name="assignment-submit"),
    path("assignments/<id:assignment_id>/complete/", apis.AssignmentCompleteApi.as_view(),
         name="assignment-complete"),
    path("assignments/<id:assignment_id>/reopen/", apis.AssignmentReopenApi.as_view(), name="assignment-reopen"),
    path("projects/<id:project_id>/volumes/", apis.VolumeListApi.as_view(), name="volume-list"),
    path("projects/<id:project_id>/volumes/upload/", apis.VolumeUploadApi.as_view(), name="volume-upload"),
    path("projects/<id:project_id>/volumes/import-jobs/", apis.VolumeImportJobCreateApi.as_view(),
         name="volume-import-job-create"),
    path("import-jobs/<id:job_id>/", apis.VolumeImportJobDetailApi.as_view(), name="volume-import-job-detail"),
    path("import-jobs/<id:job_id>/cancel/", apis.VolumeImportJobCancelApi.as_view(),
         name="volume-import-job-cancel"),
    path("volumes/<id:volume_id>/", apis.VolumeDetailApi.as_view(), name="volume-detail"),
    path("volumes/<id:volume_id>/curation/", apis.VolumeCurationApi.as_view(), name="volume-curation"),
    path("volumes/<id:volume_id>/label-versions/", apis.LabelVersionListApi.as_view(), name="label-version-list"),
    path("volumes/<id:volume_id>/label-versions/upload/", apis.LabelVersionUploadApi.as_view(),
         name="label-version-upload"),
    path(_VERSION, apis.LabelVersionDetailApi.as_view(), name="label-version-detail"),
    path(_VERSION + "nuclei/", apis.NucleusListApi.as_view(), name="nucleus-list"),
    path(_VERSION + "nuclei/queue/", apis.NucleusReviewQueueApi.as_view(), name="nucleus-review-queue"),
    path(_VERSION + "nuclei.csv", apis.NucleusCsvExportApi.as_view(), name="nucleus-csv"),
    path(_VERSION + "nuclei/<id:label_id>/mesh/", apis.NucleusMeshApi.as_view(), name="nucleus-mesh"),
    path(_VERSION + "export.ome.tif", apis.LabelVersionTiffExportApi.as_view(), name="label-version-export-tiff"),
    path(_VERSION + "export.ome.zarr.zip", apis.LabelVersionZarrExportApi.as_view(),
         name="label-version-export-zarr"),
    path("volumes/<id:volume_id>/corrections/", apis.CorrectionListCreateApi.as_view(), name="correction-list"),
    path("corrections/<id:correction_id>/", apis.CorrectionDetailApi.as_view(), name="correction-detail"),
    path("corrections/<id:correction_id>/undo/", apis.CorrectionUndoApi.as_view(), name="correction-undo"),
    path("corrections/<id:correction_id>/redo/", apis.CorrectionRedoApi.as_view(), name="correction-redo"),
    path("corrections/<id:correction_id>/approve/", apis.CorrectionApproveApi.as_view(), name="correction-approve"),
    path("corrections/<id:correction_id>/reject/", apis.CorrectionRejectApi.as_view(), name="correction-reject"),
    path("corrections/<id:correction_id>/amend/", apis.CorrectionAmendApi.as_view(), name="correction-amend"),
    re_path(_VOLUME + r"tiles/" + _TILE, tile_views.image_tile, name="image-tile"),
    re_path(_VOLUME + r"tiles/" + _ORTHO + _TILE, tile_views.image_tile, name="image-ortho-tile"),
    re_path(_VOLUME + r"labels/(?P<version>[^/]+)/tiles/" + _ORTHO + _TILE, tile_views.label_tile,
            name="label-ortho-tile"),
    re_path(_VOLUME + r"labels/(?P<version>[^/]+)/uncertainty/" + _ORTHO + _TILE, tile_views.uncertainty_tile,
            name="uncertainty-ortho-tile"),
    re_path(_VOLUME + r"labels/(?P<version>[^/]+)/tiles/" + _TILE, tile_views.label_tile, name="label-tile"),
    re_path(_VOLUME + r"labels/(?P<version>[^/]+)/uncertainty/" + _TILE, tile_views.uncertainty_tile,
            name="uncertainty-tile"),
]
