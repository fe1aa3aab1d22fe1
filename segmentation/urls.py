"""``/api/v1/`` routes of segmentation jobs (included from ``ezquant_web/urls.py``)."""

from django.urls import path

from segmentation import apis

urlpatterns = [
    path("volumes/<int:volume_id>/segmentation-jobs/", apis.SegmentationJobListCreateApi.as_view(),
         name="segmentation-job-list"),
    path("segmentation-jobs/<int:job_id>/", apis.SegmentationJobDetailApi.as_view(), name="segmentation-job-detail"),
    path("segmentation-jobs/<int:job_id>/cancel/", apis.SegmentationJobCancelApi.as_view(),
         name="segmentation-job-cancel"),
]
