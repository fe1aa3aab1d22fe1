"""``/api/v1/`` routes of segmentation jobs (included from ``ezquant_web/urls.py``)."""

from django.urls import path

import ezquant_web.converters  # noqa: F401  (registers <id:...>: ids past 18 digits are 404)
from segmentation import apis

urlpatterns = [
    path("volumes/<id:volume_id>/segmentation-jobs/", apis.SegmentationJobListCreateApi.as_view(),
         name="segmentation-job-list"),
    path("segmentation-jobs/<id:job_id>/", apis.SegmentationJobDetailApi.as_view(), name="segmentation-job-detail"),
    path("segmentation-jobs/<id:job_id>/cancel/", apis.SegmentationJobCancelApi.as_view(),
         name="segmentation-job-cancel"),
    path("projects/<id:project_id>/training-jobs/", apis.TrainingJobListCreateApi.as_view(),
         name="training-job-list"),
    path("training-jobs/<id:job_id>/", apis.TrainingJobDetailApi.as_view(), name="training-job-detail"),
    path("training-jobs/<id:job_id>/cancel/", apis.TrainingJobCancelApi.as_view(), name="training-job-cancel"),
    path("training-jobs/<id:job_id>/resume/", apis.TrainingJobResumeApi.as_view(), name="training-job-resume"),
    path("projects/<id:project_id>/model-versions/", apis.ModelVersionListApi.as_view(), name="model-version-list"),
    path("projects/<id:project_id>/default-model/", apis.DefaultModelApi.as_view(), name="default-model"),
]
