"""The analysts' API under /api/: read-only study data, its OpenAPI schema and docs."""

from __future__ import annotations

from django.urls import URLPattern, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from analysis import apis

app_name = "api"
urlpatterns: list[URLPattern] = [
    path("studies/", apis.StudyListApi.as_view(), name="study-list"),
    path("studies/<slug:slug>/", apis.StudyDetailApi.as_view(), name="study-detail"),
    path("studies/<slug:slug>/conditions/", apis.ConditionListApi.as_view(), name="condition-list"),
    path("studies/<slug:slug>/articles/", apis.ArticleManifestApi.as_view(), name="article-list"),
    path(
        "studies/<slug:slug>/participants/",
        apis.ParticipantListApi.as_view(),
        name="participant-list",
    ),
    path("studies/<slug:slug>/responses/", apis.ResponseListApi.as_view(), name="response-list"),
    path("studies/<slug:slug>/results/", apis.StudyResultsApi.as_view(), name="study-results"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]
