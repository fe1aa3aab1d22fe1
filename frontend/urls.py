from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("projects/", views.project_list, name="project-list-page"),
    path("volumes/<int:volume_id>/", views.volume_viewer, name="volume-viewer"),
]
