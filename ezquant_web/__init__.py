"""EZQuant Web: the Django project (settings, URLs, ASGI entry point)."""

__version__ = "0.1.0"
