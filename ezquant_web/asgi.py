"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Run with ``daphne ezquant_web.asgi:application`` (``make run``) or ``manage.py runserver``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ezquant_web.settings")
# Set up Django (apps, models) before anything below imports a model.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from annotation.tile_asgi import TileRouter  # noqa: E402
from ezquant_web.routing import websocket_urlpatterns  # noqa: E402

http_app = django_asgi_app
if settings.SERVE_STATIC:
    # Daphne serves no files of its own. Django's handler serves /static/ from the apps'
    # static folders, reading each file in a thread so the event loop never blocks. That is
    # plenty for a stylesheet and the admin's files; a deployment behind nginx or a CDN turns
    # SERVE_STATIC off and serves STATIC_ROOT (filled by collectstatic) from there instead.
    http_app = ASGIStaticFilesHandler(django_asgi_app)
# Image and label tiles are answered before Django's middleware, which costs more per request
# than a tile does (annotation/tile_asgi.py); everything else passes through.
http_app = TileRouter(http_app)

if settings.EZQUANT_EMBEDDED_WORKER:
    # One machine, no other server: run jobs in a thread of this process (segmentation/worker.py).
    from segmentation.worker import start_embedded_worker

    start_embedded_worker()

application = ProtocolTypeRouter({
    "http": http_app,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
