"""Staff-only analysis pages under /analysis/."""

from __future__ import annotations

from django.urls import URLPattern, path

from analysis import views

app_name = "analysis"
urlpatterns: list[URLPattern] = [
    path("<slug:slug>/", views.results, name="results"),
    path("<slug:slug>/export.csv", views.export_csv, name="export"),
    path("<slug:slug>/participants.csv", views.export_wide_csv, name="export_wide"),
    path("<slug:slug>/replication.zip", views.replication_archive, name="replication"),
    path("<slug:slug>/plots/<slug:name>.svg", views.plot, name="plot"),
    path("<slug:slug>/preregistration.<str:fmt>", views.preregistration, name="preregistration"),
]
