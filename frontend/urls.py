from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("projects/", views.project_list, name="project-list-page"),
    path("projects/<int:project_id>/", views.project_detail, name="project-page"),
    path("projects/<int:project_id>/review/", views.project_review, name="project-review-page"),
    path("projects/<int:project_id>/agreement/", views.project_agreement, name="project-agreement-page"),
    path("projects/<int:project_id>/audit/", views.project_audit, name="project-audit-page"),
    path("projects/<int:project_id>/training/", views.project_training, name="project-training-page"),
    path("volumes/<int:volume_id>/", views.volume_viewer, name="volume-viewer"),
]
