"""WebSocket URL routes, the counterpart of urls.py for the channel layer.

Each app's consumers are added here as they arrive (job progress, review sessions).
"""

from django.urls import path

from annotation.consumers import ImportJobConsumer, VolumeConsumer
from segmentation.consumers import JobConsumer, TrainingConsumer

websocket_urlpatterns: list = [
    path("ws/jobs/<int:job_id>/", JobConsumer.as_asgi()),
    path("ws/volumes/<int:volume_id>/jobs/", JobConsumer.as_asgi()),
    path("ws/volumes/<int:volume_id>/live/", VolumeConsumer.as_asgi()),
    path("ws/training-jobs/<int:job_id>/", TrainingConsumer.as_asgi()),
    path("ws/import-jobs/<int:job_id>/", ImportJobConsumer.as_asgi()),
    path("ws/projects/<int:project_id>/training/", TrainingConsumer.as_asgi()),
]
