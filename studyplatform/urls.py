"""Top-level URL map: participant pages, the admin, analysis pages."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("analysis/", include("analysis.urls")),
    path("api/", include("analysis.api_urls")),
    path("", include("surveys.urls")),
]

# A database failure outside a view (e.g. saving the session) gets the 503 page too.
handler500 = "studyplatform.middleware.server_error"
