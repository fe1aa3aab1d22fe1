"""WebSocket URL routes, the counterpart of urls.py for the channel layer.

Each app's consumers are added here as they arrive (job progress, review sessions).
"""

websocket_urlpatterns: list = []
