"""``/api/v1/`` routes of segmentation jobs (included from ``ezquant_web/urls.py``)."""

from django.urls import path

from segmentation import apis

urlpatterns = [
    path("volumes/<int:volume_id>/segmentation-jobs/", apis.SegmentationJobListCreateApi.as_view(),
         name="segmentation-job-list"),
    path("segmentation-jobs/<int:job_id>/", apis.SegmentationJobDetailApi.as_view(), name="segmentation-job-detail"),
    path("segmentation-jobs/<int:job_id>/cancel/", apis.SegmentationJobCancelApi.as_view(),
         name="segmentation-job-cancel"),
    path("projects/<int:project_id>/training-jobs/", apis.TrainingJobListCreateApi.as_view(),
         name="training-job-list"),
    path("training-jobs/<int:job_id>/", apis.TrainingJobDetailApi.as_view(), name="training-job-detail"),
    path("training-jobs/<int:job_id>/cancel/", apis.TrainingJobCancelApi.as_view(), name="training-job-cancel"),
    path("training-jobs/<int:job_id>/resume/", apis.TrainingJobResumeApi.as_view(), name="training-job-resume"),
    path("projects/<int:project_id>/model-versions/", apis.ModelVersionListApi.as_view(), name="model-version-list"),
    path("projects/<int:project_id>/default-model/", apis.DefaultModelApi.as_view(), name="default-model"),
]
