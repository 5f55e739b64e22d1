"""Participants, their trials and answers, withdrawals and article scores: read-only.
Nothing in the admin can edit an answer."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from surveys.admin.teams import TeamScopedView
from surveys.models import ArticleScore, Participant, Response, Trial, WithdrawalLog
from surveys.selectors import pool_visible_to


class _ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Shows data participants produced; nothing here can create, edit or delete it."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Shown on a participant's page, which the team rule already let the user open.
        return True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TrialInline(_ReadOnlyInline):
    model = Trial
    fields = readonly_fields = (
        "position",
        "article",
        "condition",
        "first_shown_at",
        "answered_at",
        "visible_ms",
        "tab_aways",
    )


class ResponseInline(_ReadOnlyInline):
    model = Response
    fields = readonly_fields = (
        "trial",
        "question",
        "value",
        "value_numeric",
        "created_at",
        "updated_at",
    )


@admin.register(Participant)
class ParticipantAdmin(TeamScopedView, _ReadOnlyAdmin):
    inlines = [TrialInline, ResponseInline]
    list_display = (
        "token",
        "study",
        "condition",
        "status",
        "panel",
        "panel_pid",
        "is_test",
        "consented_at",
        "completed_at",
    )
    list_filter = (
        ("study", admin.RelatedOnlyFieldListFilter),
        "status",
        "is_test",
        "panel",
        ("condition", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("study", "condition")
    search_fields = ("panel_pid", "token")
    date_hierarchy = "consented_at"


@admin.register(Trial)
class TrialAdmin(TeamScopedView, _ReadOnlyAdmin):
    study_path = "participant__study"
    list_display = (
        "participant",
        "position",
        "article",
        "condition",
        "first_shown_at",
        "answered_at",
        "visible_ms",
        "tab_aways",
    )
    list_filter = (
        ("participant__study", admin.RelatedOnlyFieldListFilter),
        ("condition", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("participant__study", "article", "condition")


@admin.register(Response)
class ResponseAdmin(TeamScopedView, _ReadOnlyAdmin):
    study_path = "participant__study"
    list_display = ("participant", "trial", "question", "value", "updated_at")
    list_filter = (
        ("question__study", admin.RelatedOnlyFieldListFilter),
        ("question", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("participant__study", "trial", "question")


@admin.register(WithdrawalLog)
class WithdrawalLogAdmin(TeamScopedView, _ReadOnlyAdmin):
    list_display = (
        "withdrawn_at",
        "study",
        "panel_pid",
        "token",
        "condition_name",
        "previous_status",
        "is_test",
    )
    list_filter = (("study", admin.RelatedOnlyFieldListFilter), "previous_status", "is_test")
    list_select_related = ("study",)
    search_fields = ("panel_pid", "token")
    date_hierarchy = "withdrawn_at"


@admin.register(ArticleScore)
class ArticleScoreAdmin(_ReadOnlyAdmin):
    """Detector scores (written by ``manage.py score_articles``): read-only, but
    deletable, since deleting an article in the admin deletes its scores with it."""

    list_display = ("article", "scorer", "n_tokens", "mean_logprob", "perplexity",
                    "rank_lt_10", "rank_lt_100", "rank_lt_1000", "fast_detectgpt",
                    "binoculars", "created_at")  # fmt: skip
    list_filter = ("scorer", "article__origin")
    list_select_related = ("article",)
    search_fields = ("article__title", "scorer")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ArticleScore]:
        # Scores name their article: only those of articles the user may see.
        return pool_visible_to(
            user=request.user,
            queryset=super().get_queryset(request),
            view_perm="surveys.view_articlescore",
            team_path="article__team",
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such score, or not one of your team's.")
        return obj

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("surveys.delete_articlescore"))
