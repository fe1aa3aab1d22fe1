from django.urls import path

import ezquant_web.converters  # noqa: F401  (registers <id:...>: ids past 18 digits are 404)
from frontend import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("projects/", views.project_list, name="project-list-page"),
    path("projects/<id:project_id>/", views.project_detail, name="project-page"),
    path("projects/<id:project_id>/review/", views.project_review, name="project-review-page"),
    path("projects/<id:project_id>/agreement/", views.project_agreement, name="project-agreement-page"),
    path("projects/<id:project_id>/audit/", views.project_audit, name="project-audit-page"),
    path("projects/<id:project_id>/training/", views.project_training, name="project-training-page"),
    path("volumes/<id:volume_id>/", views.volume_viewer, name="volume-viewer"),
]
