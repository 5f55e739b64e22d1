"""Participant pages. Tokens are UUIDs: anything else does not match and is a 404."""

from __future__ import annotations

from django.urls import URLPattern, path

from surveys import views

app_name = "surveys"
urlpatterns: list[URLPattern] = [
    path("about/", views.about, name="about"),
    path("s/<slug:slug>/", views.start, name="start"),
    path("s/<slug:slug>/preview/", views.preview, name="preview"),
    path("p/<uuid:token>/", views.resume, name="resume"),
    path("p/<uuid:token>/instructions/", views.instructions, name="instructions"),
    path("p/<uuid:token>/article/<int:position>/", views.article, name="article"),
    path("p/<uuid:token>/about-you/", views.about_you, name="about_you"),
    path("p/<uuid:token>/comprehension/", views.comprehension, name="comprehension"),
    # The attention checks asked after the participant's article <after>; without it,
    # wherever the participant is. One name: reverse() picks by the arguments given.
    path("p/<uuid:token>/check/<int:after>/", views.check, name="check"),
    path("p/<uuid:token>/check/", views.check, name="check"),
    path("p/<uuid:token>/finish/", views.finish, name="finish"),
    path("p/<uuid:token>/debrief/", views.debrief, name="debrief"),
    path("p/<uuid:token>/withdraw/", views.withdraw, name="withdraw"),
]
