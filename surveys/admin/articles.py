"""The article pool: articles of a team or shared, their import from JSON Lines or CSV,
and adding them to a condition."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from surveys.admin.teams import LOCKED_STATUSES, MAX_IMPORT_BYTES, TeamPoolAdmin
from surveys.importers import FORMATS, articles_import, decode_upload, format_from_filename
from surveys.models import Article, Condition, Team, content_hash
from surveys.selectors import (
    article_editable_by,
    pool_visible_to,
    studies_editable_by,
    studies_visible_to,
    teams_for_new_study,
)
from surveys.services import condition_add_articles


class ArticleImportForm(forms.Form):
    file = forms.FileField(help_text="JSON Lines (.jsonl) or CSV (.csv), UTF-8.")
    format = forms.ChoiceField(
        choices=[("", "From the file name")] + [(f, f.upper()) for f in FORMATS],
        required=False,
    )
    default_license = forms.CharField(
        max_length=64, required=False, help_text="For lines without a license, e.g. CC-BY-4.0."
    )
    default_outlet = forms.CharField(
        max_length=200, required=False, help_text="For lines without a source/outlet."
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        required=False,
        help_text="The team the articles belong to. Empty: the shared pool.",
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError(
                f"The file is {upload.size // (1024 * 1024)} MB; import at most "
                f"{MAX_IMPORT_BYTES // (1024 * 1024)} MB at a time."
            )
        return upload


def _formfield(db_field: models.Field[Any, Any], **kwargs: Any) -> forms.Field | None:
    # Django 6 assumes https for scheme-less URLs; opt in now (and silence the warning).
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class ArticleForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Article
        fields = (
            "origin",
            "title",
            "body",
            "lede",
            "in_demo_pool",
            "external_id",
            "outlet",
            "url",
            "published",
            "license",
            "attribution",
            "source_article",
            "model_name",
            "team",
        )
        formfield_callback = _formfield

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        origin = cleaned.get("origin", self.instance.origin)
        source = cleaned.get("source_article", self.instance.source_article_id)
        if origin == Article.Origin.GENERATED and not source:
            self.add_error("source_article", "A generated article needs its source article.")
        title = cleaned.get("title", self.instance.title)
        body = cleaned.get("body", self.instance.body)
        if title and body:
            duplicate = (
                Article.objects.filter(content_hash=content_hash(title, body))
                .exclude(pk=self.instance.pk)
                .first()
            )
            if duplicate is not None:
                raise ValidationError(self._duplicate_message(duplicate))
        return cleaned

    def _duplicate_message(self, duplicate: Article) -> str:
        """Names the article with this text only to someone who may see it: an article
        of another team is not theirs to look up (the text is unique in the whole pool)."""
        user = getattr(self, "user", None)
        visible = user is not None and (
            pool_visible_to(
                user=user,
                queryset=Article.objects.filter(pk=duplicate.pk),
                view_perm="surveys.view_article",
            ).exists()
        )
        if visible:
            return f"The pool already has this text as article #{duplicate.pk}."
        return "Another team already has an article with this title and text."


class ArticleActionForm(helpers.ActionForm):
    condition = forms.ModelChoiceField(
        queryset=Condition.objects.exclude(study__status__in=LOCKED_STATUSES).select_related(
            "study"
        ),
        required=False,
        label="Condition",
        help_text="For “Add selected articles to the condition”.",
    )


def _editable_conditions(request: HttpRequest) -> QuerySet[Condition]:
    """Conditions whose articles this user may change: unlocked studies they may edit."""
    return (
        Condition.objects.filter(study__in=studies_editable_by(user=request.user).values("pk"))
        .exclude(study__status__in=LOCKED_STATUSES)
        .select_related("study")
    )


def _locked_article_ids() -> QuerySet[Article]:
    return Article.objects.filter(conditions__study__status__in=LOCKED_STATUSES)


@admin.register(Article)
class ArticleAdmin(TeamPoolAdmin, admin.ModelAdmin):  # type: ignore[type-arg]
    form = ArticleForm
    action_form = ArticleActionForm
    actions = ["add_to_condition"]
    list_display = ("title", "origin", "outlet", "published", "word_count", "in_demo_pool")
    list_filter = ("origin", "in_demo_pool", "outlet", "license", "model_name")
    search_fields = ("title", "external_id", "url")
    date_hierarchy = "published"
    list_per_page = 100
    raw_id_fields = ("source_article",)
    readonly_fields = ("word_count", "content_hash", "created_at", "source_link", "used_in")
    fieldsets = (
        (None, {"fields": ("origin", "title", "body", "lede", "in_demo_pool", "team")}),
        (
            "Source",
            {"fields": ("external_id", "outlet", "url", "published", "license", "attribution")},
        ),
        ("Generation", {"fields": ("source_article", "source_link", "model_name")}),
        ("Record", {"fields": ("word_count", "content_hash", "created_at", "used_in")}),
    )

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, models.URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(
        self, request: HttpRequest, obj: Article | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        # The form's duplicate check words its message for the user who asked.
        return type(form.__name__, (form,), {"user": request.user})

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="surveys_article_import",
            ),
        ]
        return custom + super().get_urls()

    def get_readonly_fields(self, request: HttpRequest, obj: Article | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Where a text came from does not change after the fact.
            fields += ["origin", "source_article", "model_name"]
            if _locked_article_ids().filter(pk=obj.pk).exists():
                # Participants of a live or closed study read this exact text.
                fields += ["title", "body", "lede"]
        return fields

    def has_change_permission(self, request: HttpRequest, obj: Article | None = None) -> bool:
        if obj is not None:
            return self._visible(request, obj) and article_editable_by(
                user=request.user, article=obj, perm="surveys.change_article"
            )
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Article | None = None) -> bool:
        if obj is not None:
            if _locked_article_ids().filter(pk=obj.pk).exists():
                return False
            return self._visible(request, obj) and article_editable_by(
                user=request.user, article=obj, perm="surveys.delete_article"
            )
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        # The bulk delete action bypasses has_delete_permission(obj).
        if queryset.filter(pk__in=_locked_article_ids()).exists():
            raise PermissionDenied("Some selected articles are used by a live or closed study.")
        if not all(
            article_editable_by(user=request.user, article=a, perm="surveys.delete_article")
            for a in queryset
        ):
            raise PermissionDenied("Some selected articles are not yours to delete.")
        super().delete_queryset(request, queryset)

    @admin.display(description="Source article")
    def source_link(self, obj: Article) -> str:
        if obj.source_article_id is None:
            return "—"
        url = reverse("admin:surveys_article_change", args=[obj.source_article_id])
        return format_html('<a href="{}">{}</a>', url, obj.source_article)

    @admin.display(description="Used in conditions")
    def used_in(self, obj: Article) -> str:
        conditions = obj.conditions.select_related("study").filter(
            study_id__in=getattr(obj, "credence_visible_study_ids", ())
        )
        if not conditions:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            (
                (reverse("admin:surveys_condition_change", args=[c.pk]), str(c), c.study.status)
                for c in conditions
            ),
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        # The action form is built without the request: offer only the conditions this
        # user may change (the response is rendered later, so this is in time).
        action_form = getattr(response, "context_data", {}).get("action_form")
        if action_form is not None and "condition" in action_form.fields:
            action_form.fields["condition"].queryset = _editable_conditions(request)
        return response

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # For used_in, which has no request: only the studies this user may see.
            obj.credence_visible_study_ids = set(
                studies_visible_to(user=request.user).values_list("pk", flat=True)
            )
        return obj

    @admin.action(description="Add selected articles to the condition chosen below")
    def add_to_condition(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        condition_id = request.POST.get("condition")
        condition = (
            _editable_conditions(request).filter(pk=condition_id).first()
            if condition_id and str(condition_id).isdigit()
            else None
        )
        if condition is None:
            self.message_user(request, "Choose a condition next to the action.", messages.ERROR)
            return
        try:
            added = condition_add_articles(condition=condition, articles=queryset)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return
        self.message_user(request, f"Added {added} article(s) to {condition}.", messages.SUCCESS)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a JSONL/CSV file; per-line errors are shown on this page, nothing written."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        result = None
        teams = teams_for_new_study(user=request.user)
        may_share = request.user.is_superuser or request.user.has_perm("surveys.add_article")
        if request.method == "POST":
            form = ArticleImportForm(request.POST, request.FILES)
            form.fields["team"].queryset = teams  # type: ignore[attr-defined]
            if form.is_valid() and form.cleaned_data["team"] is None and not may_share:
                form.add_error("team", "Choose one of the teams you are a researcher of.")
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    fmt = form.cleaned_data["format"] or format_from_filename(upload.name)
                    text = decode_upload(upload.read())
                except ValueError as error:
                    form.add_error("file", str(error))
                else:
                    result = articles_import(
                        text=text,
                        fmt=fmt,
                        default_license=form.cleaned_data["default_license"],
                        default_outlet=form.cleaned_data["default_outlet"],
                        team=form.cleaned_data["team"],
                    )
                    if result.ok:
                        self.message_user(
                            request,
                            f"Imported {upload.name}: {result.created} article(s) created, "
                            f"{result.skipped} skipped (already in the pool or repeated).",
                            messages.SUCCESS,
                        )
                        return redirect("admin:surveys_article_changelist")
        else:
            form = ArticleImportForm()
            form.fields["team"].queryset = teams  # type: ignore[attr-defined]
        context = {
            **self.admin_site.each_context(request),
            "title": "Import articles",
            "opts": self.model._meta,
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/surveys/article/import.html", context)
