from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ezquant_web.api import error_handler
from ezquant_web.login_throttle import AuthTokenApi

# Under /api/ every error is {"message", "extra"} JSON, DEBUG or not (ezquant_web.api).
handler400 = error_handler(400)
handler403 = error_handler(403)
handler404 = error_handler(404)
handler500 = error_handler(500)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="frontend/login.html",
                                                         redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(
        template_name="frontend/password_change.html", extra_context={"version": settings.VERSION}),
        name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(
        template_name="frontend/password_change_done.html", extra_context={"version": settings.VERSION}),
        name="password_change_done"),
    path("api/v1/", include("annotation.urls")),
    path("api/v1/", include("segmentation.urls")),
    path("api/v1/auth/token/", AuthTokenApi.as_view(), name="api-token"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("frontend.urls")),
]
