from django.apps import AppConfig


class FrontendConfig(AppConfig):
    """The pages people see: templates, static files and the views that render them."""

    name = "frontend"
