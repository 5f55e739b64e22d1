"""The researchers' side: the stimulus pool, study design, lifecycle and monitoring.

A study's design is locked once it is live: its design fields are read-only here, its
condition and question inlines can no longer add, change or delete, and every write path
below the forms checks ``study_assert_editable``. Status changes only through the
lifecycle buttons and actions, which call ``study_set_status``. Participants, trials and
responses are read-only: nothing in the admin can edit an answer.

Research teams decide who sees and changes what, not Django's per-model permissions.
Every study-related page (studies, conditions, participants, trials, responses,
withdrawals, and the design inlines) shows only ``surveys.selectors.studies_visible_to``
the user, and its ``has_*_permission`` methods ask the user's role in the study's team
(``study_role_of``): superusers may do everything; a team's researchers may view and
change its studies and add new ones; its analysts may only view (and export on the
results pages); staff outside the team get 404 on its pages. So a researcher needs only
``is_staff`` and a team membership, no model permissions. Teams and memberships are
managed by superusers only.

Articles, and generation runs with their samples (``generation.admin``), belong to the
team that made them (``TeamPoolAdmin``): its members see them, its researchers change
them, and other teams' staff get 404. Those without a team form the shared pool (the
imported corpus): every team reads it; superusers, and staff a superuser gave Django's
model permission, change it. An article used by a study the user may not edit is
read-only for them whatever the study's status (``surveys.selectors.article_editable_by``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypedDict, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry

from studyplatform.measures.planning import sample_size_two_proportions
from surveys import fraud
from surveys.exclusions import exclusions_by_condition
from surveys.importers import FORMATS, articles_import, decode_upload, format_from_filename
from surveys.instruments import INSTRUMENTS, instrument_apply
from surveys.models import (
    Article,
    ArticleScore,
    Condition,
    ExclusionRule,
    Participant,
    Question,
    Response,
    Study,
    Team,
    TeamMembership,
    Trial,
    WithdrawalLog,
    content_hash,
)
from surveys.selectors import (
    CLASSIC_RATES,
    article_editable_by,
    pool_editable_by,
    pool_visible_to,
    role_can_edit,
    studies_editable_by,
    studies_visible_to,
    study_monitor,
    study_power_plan,
    study_role_of,
    teams_for_new_study,
    user_roles,
)
from surveys.services import (
    study_assert_editable,
    study_set_status,
    study_sync_articles_per_participant,
)

LOCKED_STATUSES = (Study.Status.LIVE, Study.Status.CLOSED)
MAX_IMPORT_BYTES = 50 * 1024 * 1024

# ---------------------------------------------------------------------------------------
# Research teams: who sees and changes which study (see the module docstring)


def _study_of(obj: Any, study_path: str) -> Study:
    for name in filter(None, study_path.split("__")):
        obj = getattr(obj, name)
    return cast(Study, obj)


def _may_edit_some_study(request: HttpRequest) -> bool:
    return any(role_can_edit(role) for role in user_roles(user=request.user))


class _TeamScopedView:
    """For the admin of a study-related model: only the studies the user may see, and
    viewing by team role instead of Django's model permissions. ``study_path`` leads from
    the model to its study ("" for Study itself)."""

    study_path = "study"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        lookup = f"{self.study_path}__in" if self.study_path else "pk__in"
        return queryset.filter(**{lookup: studies_visible_to(user=request.user).values("pk")})

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # Django redirects to the index when the object is outside get_queryset; another
        # team's objects are plainly not found.
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:
            raise Http404("No such object, or not one of your team's.")
        return obj

    def _role(self, request: HttpRequest, obj: Any) -> str | None:
        return study_role_of(user=request.user, study=_study_of(obj, self.study_path))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(user_roles(user=request.user))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return bool(user_roles(user=request.user))
        return self._role(request, obj) is not None


class _TeamScopedAdmin(_TeamScopedView):
    """A study design object: researchers (and superusers) change it, analysts only see it."""

    def _may_edit(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None:
            return _may_edit_some_study(request)
        return role_can_edit(self._role(request, obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _may_edit_some_study(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)


class TeamPoolAdmin:
    """For the admin of a team-owned pool (articles, generation runs and their samples):
    see ``surveys.selectors.pool_visible_to``. ``team_path`` leads from the model to the
    owning team ("run__team" for samples); Django's model permissions of the model
    govern only the shared objects (no team)."""

    team_path = "team"

    def _perm(self, action: str) -> str:
        opts = self.model._meta  # type: ignore[attr-defined]
        return f"{opts.app_label}.{action}_{opts.model_name}"

    def _team_id(self, obj: Any) -> int | None:
        *hops, _ = self.team_path.split("__")
        for name in hops:
            obj = getattr(obj, name)
        return cast("int | None", obj.team_id)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        return pool_visible_to(
            user=request.user,
            queryset=queryset,
            view_perm=self._perm("view"),
            team_path=self.team_path,
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:
            raise Http404("No such object, or not one of your team's.")
        return obj

    def _visible(self, request: HttpRequest, obj: Any) -> bool:
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(user_roles(user=request.user)) or bool(
            super().has_module_permission(request)  # type: ignore[misc]
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            return self._visible(request, obj)
        return bool(user_roles(user=request.user)) or bool(
            super().has_view_permission(request)  # type: ignore[misc]
        )

    def _may(self, request: HttpRequest, obj: Any, action: str) -> bool:
        if obj is None:
            return _may_edit_some_study(request) or request.user.has_perm(self._perm(action))
        return self._visible(request, obj) and pool_editable_by(
            user=request.user, team_id=self._team_id(obj), perm=self._perm(action)
        )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return _may_edit_some_study(request) or request.user.has_perm(self._perm("add"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, obj, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, obj, "delete")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "team":
            kwargs["queryset"] = teams_for_new_study(user=request.user)
            if not request.user.is_superuser and not request.user.has_perm(self._perm("add")):
                kwargs["required"] = True  # the shared pool is not theirs to add to
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Below the form's choices: an object is only put in one of your own teams, or
        # in the shared pool by those who curate it.
        perm = self._perm("change" if change else "add")
        if (not change or "team" in form.changed_data) and not pool_editable_by(
            user=request.user, team_id=obj.team_id, perm=perm
        ):
            raise PermissionDenied("Choose one of the teams you are a researcher of.")
        super().save_model(request, obj, form, change)  # type: ignore[misc]


class TeamMembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = TeamMembership
    extra = 1


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Teams and their members: superusers only, whatever model permissions say."""

    inlines = [TeamMembershipInline]
    list_display = ("name", "member_count", "study_count", "created_at")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        queryset: QuerySet[Team] = super().get_queryset(request)
        return queryset.annotate(
            n_members=Count("memberships", distinct=True), n_studies=Count("studies", distinct=True)
        )

    @admin.display(description="Members", ordering="n_members")
    def member_count(self, obj: Any) -> int:
        return int(obj.n_members)

    @admin.display(description="Studies", ordering="n_studies")
    def study_count(self, obj: Any) -> int:
        return int(obj.n_studies)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


# ---------------------------------------------------------------------------------------
# Articles


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
            study_assert_editable(study=condition.study)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return
        before = condition.articles.count()
        condition.articles.add(*queryset)
        added = condition.articles.count() - before
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


# ---------------------------------------------------------------------------------------
# Studies: conditions and questions


class DesignLockedFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    """Refuses changes to a study's conditions or questions once its design is locked."""

    def clean(self) -> None:
        super().clean()
        changed = any(form.has_changed() for form in self.forms) or bool(self.deleted_forms)
        if changed and self.instance.pk is not None:
            study_assert_editable(study=self.instance)


class _DesignInline:
    """Inline of a study's design: read-only once the study is live or closed."""

    # Declared with InlineModelAdmin's type: a mixin attribute must match it exactly.
    formset: type[BaseInlineFormSet[Any, Any, forms.ModelForm[Any]]] = DesignLockedFormSet
    extra = 0

    @staticmethod
    def _locked(obj: Study | None) -> bool:
        return obj is not None and obj.is_design_locked

    @staticmethod
    def _may_edit(request: HttpRequest, obj: Study | None) -> bool:
        # The team role decides (see the module docstring), not model permissions.
        if obj is None:
            return _may_edit_some_study(request)
        return role_can_edit(study_role_of(user=request.user, study=obj))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return bool(user_roles(user=request.user))
        return study_role_of(user=request.user, study=obj) is not None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._locked(obj) and self._may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._locked(obj) and self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._locked(obj) and self._may_edit(request, obj)


class _ZeroIfEmptyField(forms.IntegerField):
    """``per_participant`` matters in within-subjects designs only: left empty, it is 0."""

    def to_python(self, value: Any) -> int:
        number = super().to_python(value)
        return 0 if number is None else number


def _condition_formfield(db_field: Any, **kwargs: Any) -> Any:
    if db_field.name == "per_participant":
        kwargs.update(form_class=_ZeroIfEmptyField, required=False)
    return db_field.formfield(**kwargs)


class ConditionInline(_DesignInline, admin.TabularInline):  # type: ignore[type-arg]
    model = Condition

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "per_participant":
            return _condition_formfield(db_field, **kwargs)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    fields = ("name", "label", "is_reference", "quota", "per_participant", "article_count")
    readonly_fields = ("article_count",)
    show_change_link = True

    @admin.display(description="Articles")
    def article_count(self, obj: Condition) -> str:
        if obj.pk is None:
            return "save first, then choose articles via the condition's change link"
        return str(obj.articles.count())


class QuestionForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Question
        fields = (
            "study",
            "position",
            "key",
            "text",
            "kind",
            "scope",
            "scale_min",
            "scale_max",
            "min_label",
            "max_label",
            "choices",
            "expected_answer",
            "required",
            "scoring",
        )
        widgets = {
            "text": forms.Textarea(attrs={"rows": 2, "cols": 80}),
            "choices": forms.Textarea(attrs={"rows": 1, "cols": 50}),
            "scoring": forms.Textarea(attrs={"rows": 1, "cols": 80}),
        }

    def clean_scoring(self) -> Any:
        # An emptied box means "not scored" ({}), not JSON null.
        return self.cleaned_data.get("scoring") or {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind == Question.Kind.LIKERT:
            low, high = cleaned.get("scale_min"), cleaned.get("scale_max")
            if low is None or high is None or low >= high:
                self.add_error("scale_max", "A rating scale needs a minimum below its maximum.")
        if kind == Question.Kind.SLIDER:
            low, high = cleaned.get("scale_min"), cleaned.get("scale_max")
            if (low is None) != (high is None) or (low is not None and low >= high):
                self.add_error(
                    "scale_max",
                    "A slider needs a minimum below its maximum (leave both empty for 0-100).",
                )
        if kind in (Question.Kind.CHOICE, Question.Kind.MULTI_CHOICE):
            options = cleaned.get("choices")
            if (
                not isinstance(options, list)
                or len(options) < 2
                or not all(isinstance(o, str) and o for o in options)
            ):
                self.add_error("choices", 'List at least two options, e.g. ["Red", "Blue"].')
            elif cleaned.get("expected_answer") and cleaned["expected_answer"] not in options:
                self.add_error("expected_answer", "The expected answer must be one of the options.")
        if cleaned.get("scope") == Question.Scope.ATTENTION_CHECK and not cleaned.get(
            "expected_answer"
        ):
            self.add_error("expected_answer", "An attention check needs the answer that passes.")
        return cleaned


class QuestionInline(_DesignInline, admin.StackedInline):  # type: ignore[type-arg]
    model = Question
    form = QuestionForm
    # Grouped rows keep a dozen fields per question readable without scrolling sideways.
    fields = (
        ("position", "key", "kind", "scope", "required"),
        "text",
        ("scale_min", "scale_max", "min_label", "max_label"),
        ("choices", "expected_answer"),
        "scoring",
    )


class ExclusionRuleForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ExclusionRule
        fields = ("study", "position", "kind", "threshold", "question_key")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # The check constraint lets a missing threshold through (NULL > 0 is not false).
        if cleaned.get("kind") == ExclusionRule.Kind.TOO_FAST and cleaned.get("threshold") is None:
            self.add_error("threshold", "Set the reading speed in words per second, e.g. 15.")
        return cleaned


class ExclusionRuleInline(_DesignInline, admin.TabularInline):  # type: ignore[type-arg]
    """Pre-registered exclusion rules, locked with the rest of the design at launch.
    Semantics in ``surveys.exclusions``; checked when the study is piloted or launched."""

    model = ExclusionRule
    form = ExclusionRuleForm
    fields = ("position", "kind", "threshold", "question_key")
    verbose_name_plural = (
        "Exclusion rules, applied in order to completed participants (test, incomplete and "
        "screened-out sessions are always excluded first). Failed an attention check: any "
        "check answered wrongly; without this rule, a study with attention checks applies "
        "it first. Too fast: the participant's articles, taken together, read faster than "
        "the threshold in words per second (browser-measured visible time, else server "
        "time). Straight-lining: the same answer to the question (empty: to each rating "
        "question) on every article, with at least two articles."
    )


class ConditionForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Condition
        fields = (
            "study",
            "name",
            "label",
            "is_reference",
            "quota",
            "per_participant",
            "articles",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        study = cleaned.get("study")
        if study is not None:
            study_assert_editable(study=study)
        if self.instance.pk is not None and self.instance.study_id != getattr(study, "pk", None):
            study_assert_editable(study=self.instance.study)
        return cleaned


@admin.register(Condition)
class ConditionAdmin(_TeamScopedAdmin, admin.ModelAdmin):  # type: ignore[type-arg]
    form = ConditionForm
    list_display = (
        "__str__",
        "study",
        "label",
        "is_reference",
        "quota",
        "per_participant",
        "n_articles",
    )
    list_filter = ("study__status", ("study", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "label", "study__slug", "study__title")
    filter_horizontal = ("articles",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Condition]:
        queryset: QuerySet[Condition] = super().get_queryset(request)
        return queryset.select_related("study").annotate(article_total=Count("articles"))

    @admin.display(description="Articles", ordering="article_total")
    def n_articles(self, obj: WithAnnotations[Condition, _ArticleTotal]) -> int:
        return obj.article_total

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "per_participant":
            return _condition_formfield(db_field, **kwargs)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "study":
            kwargs["queryset"] = studies_editable_by(user=request.user).exclude(
                status__in=LOCKED_STATUSES
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "articles":
            # Not another team's articles, not even their titles in the picker.
            kwargs["queryset"] = pool_visible_to(
                user=request.user, queryset=Article.objects.all(), view_perm="surveys.view_article"
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Condition | None = None) -> bool:
        if obj is not None and obj.study.is_design_locked:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Condition | None = None) -> bool:
        if obj is not None and obj.study.is_design_locked:
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Condition]) -> None:
        if queryset.filter(study__status__in=LOCKED_STATUSES).exists():
            raise PermissionDenied("Conditions of a live or closed study cannot be deleted.")
        if queryset.exclude(study__in=studies_editable_by(user=request.user).values("pk")).exists():
            raise PermissionDenied("Analysts cannot delete conditions.")
        super().delete_queryset(request, queryset)


# ---------------------------------------------------------------------------------------
# Studies: lifecycle and monitoring

# Which buttons to offer; study_set_status is the authority and refuses anything else.
_NEXT_STATUSES: dict[str, tuple[str, ...]] = {
    Study.Status.DRAFT: (Study.Status.PILOT, Study.Status.LIVE),
    Study.Status.PILOT: (Study.Status.DRAFT, Study.Status.LIVE, Study.Status.CLOSED),
    Study.Status.LIVE: (Study.Status.CLOSED,),
    Study.Status.CLOSED: (),
}
_STATUS_BUTTONS: dict[str, tuple[str, str]] = {
    # status: (button label, confirmation question or "")
    Study.Status.PILOT: ("Pilot", ""),
    Study.Status.DRAFT: ("Back to draft", ""),
    Study.Status.LIVE: (
        "Launch (go live)",
        "Launch this study? Its design is locked from now on and cannot be unlocked.",
    ),
    Study.Status.CLOSED: ("Close", "Close this study? It stops taking participants for good."),
}
_DESIGN_FIELDS = (
    "slug",
    "design",
    "articles_per_participant",
    "seed",
    "consent_text",
    "instructions_text",
    "debrief_text",
    "flagged_hold_no_place",  # in the design document when set (surveys.fraud)
)


def _url_or(name: str, slug: str, fallback: str) -> str:
    try:
        return reverse(name, kwargs={"slug": slug})
    except NoReverseMatch:
        return fallback


def study_links(*, request: HttpRequest, study: Study) -> dict[str, str]:
    """The participant link (plain and for Prolific / MTurk) and the preview link."""
    start = request.build_absolute_uri(_url_or("surveys:start", study.slug, f"/s/{study.slug}/"))
    return {
        "participant": start,
        "prolific": start
        + "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}",
        "mturk": start + "?workerId=…&hitId=…&assignmentId=…",
        "preview": _url_or("surveys:preview", study.slug, f"/s/{study.slug}/preview/"),
    }


class PowerPlanForm(forms.Form):
    """The planning box's GET form: planned credible rate per condition, alpha, power.
    Empty fields keep their defaults (the GPT-2 release's 0.83 and 0.72, 0.05, 0.8)."""

    alpha = forms.FloatField(required=False, label="Alpha (two-sided)")
    power = forms.FloatField(required=False, label="Power")

    def __init__(self, data: Any, *, conditions: list[Condition]) -> None:
        super().__init__(data)
        for condition in conditions:
            self.fields[f"rate_{condition.name}"] = forms.FloatField(
                required=False,
                label=f"Planned credible rate, {condition.name}",
                widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "max": "1"}),
            )
        self.condition_names = [c.name for c in conditions]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name, value in list(cleaned.items()):
            if value is not None and not 0.0 < value < 1.0:
                self.add_error(name, f"Enter a number strictly between 0 and 1, not {value:g}.")
        return cleaned

    def plan_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``study_power_plan`` from the valid fields given."""
        data = self.cleaned_data
        rates = {
            name: data[f"rate_{name}"]
            for name in self.condition_names
            if data.get(f"rate_{name}") is not None
        }
        arguments: dict[str, Any] = {"rates": rates}
        for key in ("alpha", "power"):
            if data.get(key) is not None:
                arguments[key] = data[key]
        return arguments


def _power_plan_context(request: HttpRequest, study: Study) -> dict[str, Any]:
    """The planning box of a study's change page: the plan at the rates typed into its
    GET form (defaults when none), or the form's errors and the default plan."""
    conditions = list(study.conditions.order_by("id"))
    keys = {"alpha", "power", *(f"rate_{c.name}" for c in conditions)}
    form = PowerPlanForm(request.GET if keys & set(request.GET) else None, conditions=conditions)
    arguments = form.plan_arguments() if form.is_bound and form.is_valid() else {}
    classic_n = math.ceil(sample_size_two_proportions(*CLASSIC_RATES))
    return {
        "power_plan": study_power_plan(study=study, **arguments),
        "power_plan_form": form,
        "power_plan_classic": (*CLASSIC_RATES, classic_n),
    }


class _ArticleTotal(TypedDict):
    article_total: int


class _ParticipantCounts(TypedDict):
    """The annotations ``_participant_counts`` adds."""

    n_completed: int
    n_in_progress: int
    n_test: int


class _ConditionMonitor(_ParticipantCounts):
    n_articles: int
    n_started: int
    n_withdrawn: int


def _participant_counts() -> dict[str, Count]:
    real = Q(participants__is_test=False)
    return {
        "n_completed": Count(
            "participants",
            filter=real & Q(participants__status=Participant.Status.COMPLETED),
            distinct=True,
        ),
        "n_in_progress": Count(
            "participants",
            filter=real & Q(participants__status=Participant.Status.IN_PROGRESS),
            distinct=True,
        ),
        "n_test": Count("participants", filter=Q(participants__is_test=True), distinct=True),
    }


@admin.register(Study)
class StudyAdmin(_TeamScopedAdmin, admin.ModelAdmin):  # type: ignore[type-arg]
    study_path = ""
    inlines = [ConditionInline, QuestionInline, ExclusionRuleInline]
    list_display = (
        "title",
        "slug",
        "team",
        "status",
        "completed",
        "in_progress",
        "test_sessions",
        "launched_at",
        "closed_at",
    )
    list_filter = ("status", ("team", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "slug")
    actions = ["add_kreps", "add_attention", "set_pilot", "set_live", "set_closed"]
    change_form_template = "admin/surveys/study/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        queryset: QuerySet[Study] = super().get_queryset(request)
        return queryset.annotate(**_participant_counts())

    def get_fieldsets(self, request: HttpRequest, obj: Study | None = None) -> Any:
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ("title", "slug", "team", "status")}),
            (
                "Design (locked once live)",
                {
                    "fields": (
                        "design",
                        "articles_per_participant",
                        "seed",
                        "consent_text",
                        "instructions_text",
                        "debrief_text",
                    )
                },
            ),
            (
                "Participants",
                {
                    "fields": (
                        "reservation_minutes",
                        "flagged_hold_no_place",
                        "completion_code",
                        "failed_check_code",
                        "withdrawn_code",
                        "completion_url",
                    )
                },
            ),
        ]
        if obj is not None:
            fieldsets.append(
                (
                    "Lifecycle",
                    {
                        "fields": (
                            "monitor",
                            "monitor_details",
                            "design_hash",
                            "launched_at",
                            "closed_at",
                        )
                    },
                )
            )
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Study | None = None) -> Any:
        fields = ["status", "design_hash", "launched_at", "closed_at", "monitor", "monitor_details"]
        if obj is not None and obj.is_design_locked:
            fields += list(_DESIGN_FIELDS)
        return fields

    def get_prepopulated_fields(self, request: HttpRequest, obj: Study | None = None) -> Any:
        if obj is not None and obj.is_design_locked:
            return {}
        return {"slug": ("title",)}

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "team":
            teams = teams_for_new_study(user=request.user)
            kwargs["queryset"] = teams
            if not request.user.is_superuser:
                # Other staff see only their teams' studies: a study without a team, or
                # in a team where they are not researchers, would be lost to them.
                kwargs["required"] = True
                if len(mine := list(teams[:2])) == 1:
                    kwargs["initial"] = mine[0].pk
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Study, form: Any, change: bool) -> None:
        if not request.user.is_superuser and (
            obj.team_id is None
            or not teams_for_new_study(user=request.user).filter(pk=obj.team_id).exists()
        ):
            # Below the form's choices: a study is only ever put in one of your own teams.
            raise PermissionDenied("Choose one of the teams you are a researcher of.")
        if change and any(name in form.changed_data for name in _DESIGN_FIELDS):
            # Below the read-only widgets: a form opened before launch cannot write after.
            study_assert_editable(study=obj)
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Within-subjects: articles per participant follows the conditions just saved.
        study_sync_articles_per_participant(study=form.instance)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            # A launch raced this form's submission; nothing was written.
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return HttpResponseRedirect(request.path)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        study = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if study is not None:
            may_edit = self.has_change_permission(request, study)
            extra["study_links"] = study_links(request=request, study=study)
            extra["status_buttons"] = (
                [(status, *_STATUS_BUTTONS[status]) for status in _NEXT_STATUSES[study.status]]
                if may_edit
                else []
            )
            extra["instrument_buttons"] = (
                [(k, v.label) for k, v in INSTRUMENTS.items()]
                if may_edit and not study.is_design_locked
                else []
            )
            extra.update(_power_plan_context(request, study))
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<path:object_id>/status/<str:status>/",
                self.admin_site.admin_view(require_POST(self.status_view)),
                name="surveys_study_status",
            ),
            path(
                "<path:object_id>/instrument/<str:name>/",
                self.admin_site.admin_view(require_POST(self.instrument_view)),
                name="surveys_study_instrument",
            ),
        ]
        return custom + super().get_urls()

    def _editable_study(self, request: HttpRequest, object_id: str) -> Study:
        if not str(object_id).isdigit():
            raise Http404("No such study.")
        study = get_object_or_404(studies_visible_to(user=request.user), pk=object_id)
        if not self.has_change_permission(request, study):
            raise PermissionDenied
        return study

    def status_view(self, request: HttpRequest, object_id: str, status: str) -> HttpResponse:
        study = self._editable_study(request, object_id)
        if status not in Study.Status.values:
            self.message_user(request, f"Unknown status {status!r}.", messages.ERROR)
        else:
            self._set_status(request, study, status)
        return redirect("admin:surveys_study_change", study.pk)

    def instrument_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        study = self._editable_study(request, object_id)
        if name not in INSTRUMENTS:
            self.message_user(request, f"Unknown question set {name!r}.", messages.ERROR)
        else:
            self._apply_instrument(request, study, name)
        return redirect("admin:surveys_study_change", study.pk)

    def _set_status(self, request: HttpRequest, study: Study, status: str) -> bool:
        if not self.has_change_permission(request, study):
            # A changelist action may select studies of a team where the user is an analyst.
            self.message_user(request, f"{study}: analysts cannot change it.", messages.ERROR)
            return False
        try:
            study_set_status(study=study, status=status)
        except ValidationError as error:
            for message in error.messages:
                self.message_user(request, f"{study}: {message}", messages.ERROR)
            return False
        self.log_change(request, study, f"Status set to {status}.")
        self.message_user(request, f"{study}: status is now {status}.", messages.SUCCESS)
        return True

    def _apply_instrument(self, request: HttpRequest, study: Study, name: str) -> None:
        if not self.has_change_permission(request, study):
            self.message_user(request, f"{study}: analysts cannot change it.", messages.ERROR)
            return
        try:
            created = instrument_apply(study=study, name=name)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return
        if created:
            keys = ", ".join(q.key for q in created)
            self.log_change(request, study, f"Added {INSTRUMENTS[name].label}: {keys}.")
            self.message_user(request, f"{study}: added {keys}.", messages.SUCCESS)
        else:
            self.message_user(
                request, f"{study}: already has every question of that set.", messages.INFO
            )

    @admin.action(description="Add Kreps question set", permissions=["change"])
    def add_kreps(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            self._apply_instrument(request, study, "kreps")

    @admin.action(description="Add attention check", permissions=["change"])
    def add_attention(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            self._apply_instrument(request, study, "attention")

    @admin.action(description="Pilot selected studies", permissions=["change"])
    def set_pilot(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            self._set_status(request, study, Study.Status.PILOT)

    @admin.action(description="Launch (go live) selected studies", permissions=["change"])
    def set_live(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            self._set_status(request, study, Study.Status.LIVE)

    @admin.action(description="Close selected studies", permissions=["change"])
    def set_closed(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            self._set_status(request, study, Study.Status.CLOSED)

    @admin.display(description="Completed", ordering="n_completed")
    def completed(self, obj: WithAnnotations[Study, _ParticipantCounts]) -> int:
        return obj.n_completed

    @admin.display(description="In progress", ordering="n_in_progress")
    def in_progress(self, obj: WithAnnotations[Study, _ParticipantCounts]) -> int:
        return obj.n_in_progress

    @admin.display(description="Test sessions", ordering="n_test")
    def test_sessions(self, obj: WithAnnotations[Study, _ParticipantCounts]) -> int:
        return obj.n_test

    @admin.display(description="Monitor")
    def monitor(self, obj: Study) -> str:
        """Per condition: articles, participants started / in progress / completed, tests."""
        if obj.pk is None:
            return "—"
        if obj.design == Study.Design.WITHIN:
            return format_html("{}{}", self._monitor_within(obj), _rule_exclusions(obj))
        # django-stubs cannot see annotations passed as **kwargs: name them for it.
        rows = cast(
            "QuerySet[WithAnnotations[Condition, _ConditionMonitor]]",
            obj.conditions.annotate(
                n_articles=Count("articles", distinct=True),
                n_started=Count(
                    "participants", filter=Q(participants__is_test=False), distinct=True
                ),
                n_withdrawn=Count(
                    "participants",
                    filter=Q(participants__is_test=False)
                    & Q(participants__status=Participant.Status.WITHDRAWN),
                    distinct=True,
                ),
                **_participant_counts(),
            ).order_by("id"),
        )
        if not rows:
            return "No conditions yet."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>",
            (
                (
                    c.name,
                    c.n_articles,
                    c.n_started,
                    c.n_in_progress,
                    c.n_completed,
                    "—" if c.quota is None else c.quota,
                    c.n_withdrawn,
                    c.n_test,
                )
                for c in rows
            ),
        )
        return format_html(
            '<table class="credence-monitor"><thead><tr><th>Condition</th><th>Articles</th>'
            "<th>Started</th><th>In progress</th><th>Completed</th><th>Quota</th>"
            "<th>Withdrawn</th><th>Test sessions</th></tr></thead><tbody>{}</tbody></table>{}",
            body,
            _rule_exclusions(obj),
        )

    @admin.display(description="Quality and articles")
    def monitor_details(self, obj: Study) -> str:
        """Screen-outs, median time to complete, attention-check failures per condition,
        and per article: assigned, started, rated, completed, median reading time."""
        if obj.pk is None:
            return "—"
        return render_to_string(
            "admin/surveys/study/monitor_details.html",
            {
                "monitor": study_monitor(study=obj),
                "signals": fraud.SIGNALS,
                "signal_rows": fraud.study_signal_counts(study=obj),
            },
        )

    def _monitor_within(self, obj: Study) -> str:
        """Within-subjects: everyone sees every condition, so participants are counted
        once for the study and each condition shows how often its articles were read."""
        real = Participant.objects.filter(study=obj, is_test=False)
        totals = real.aggregate(
            started=Count("pk"),
            in_progress=Count("pk", filter=Q(status=Participant.Status.IN_PROGRESS)),
            completed=Count("pk", filter=Q(status=Participant.Status.COMPLETED)),
            withdrawn=Count("pk", filter=Q(status=Participant.Status.WITHDRAWN)),
        )
        n_test = Participant.objects.filter(study=obj, is_test=True).count()
        rows = obj.conditions.annotate(
            n_articles=Count("articles", distinct=True),
            n_shown=Count("trials", filter=Q(trials__participant__is_test=False), distinct=True),
            n_answered=Count(
                "trials",
                filter=Q(trials__participant__is_test=False, trials__answered_at__isnull=False),
                distinct=True,
            ),
        ).order_by("id")
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((c.name, c.per_participant, c.n_articles, c.n_shown, c.n_answered) for c in rows),
        )
        return format_html(
            "<p>Within subjects: {} started, {} in progress, {} completed, {} withdrawn, "
            "{} test sessions.</p>"
            '<table class="credence-monitor"><thead><tr><th>Condition</th>'
            "<th>Per participant</th><th>Articles</th><th>Articles shown</th>"
            "<th>Articles rated</th></tr></thead><tbody>{}</tbody></table>",
            totals["started"],
            totals["in_progress"],
            totals["completed"],
            totals["withdrawn"],
            n_test,
            body,
        )


def _rule_exclusions(study: Study) -> str:
    """Completed participants each exclusion rule removes, per condition (one row for
    the whole study in within-subjects designs), counted by ``surveys.exclusions``, the
    same code the analysis ledger uses."""
    counts = exclusions_by_condition(study=study)
    if not counts:
        return format_html("<p>{}</p>", "Excluded by rule: none.")
    names: dict[int | None, str] = dict(study.conditions.values_list("pk", "name"))
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (names.get(condition_id, "all"), label, n)
            for condition_id, by_label in sorted(counts.items(), key=lambda kv: kv[0] or 0)
            for label, n in by_label.items()
        ),
    )
    return format_html(
        '<table class="credence-monitor"><caption>Excluded by rule (completed '
        "participants, first rule that applies)</caption><thead><tr><th>Condition</th>"
        "<th>Rule</th><th>Excluded</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )


# ---------------------------------------------------------------------------------------
# Participants and their answers: read-only


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
class ParticipantAdmin(_TeamScopedView, _ReadOnlyAdmin):
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
class TrialAdmin(_TeamScopedView, _ReadOnlyAdmin):
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
class ResponseAdmin(_TeamScopedView, _ReadOnlyAdmin):
    study_path = "participant__study"
    list_display = ("participant", "trial", "question", "value", "updated_at")
    list_filter = (
        ("question__study", admin.RelatedOnlyFieldListFilter),
        ("question", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("participant__study", "trial", "question")


@admin.register(WithdrawalLog)
class WithdrawalLogAdmin(_TeamScopedView, _ReadOnlyAdmin):
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
                    "rank_lt_10", "rank_lt_100", "rank_lt_1000", "created_at")  # fmt: skip
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


# ---------------------------------------------------------------------------------------
# The audit trail (surveys.audit): read-only, as django-auditlog's own admin is


if admin.site.is_registered(LogEntry):
    admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class TeamLogEntryAdmin(LogEntryAdmin):  # type: ignore[misc]
    """Superusers see every entry; a team's researchers see the entries about their
    team's objects (tagged with the team by ``surveys.audit``) and exports of its
    studies. Nobody adds, changes or deletes an entry here."""

    def _team_ids(self, request: HttpRequest) -> list[int]:
        return list(teams_for_new_study(user=request.user).values_list("pk", flat=True))

    def get_queryset(self, request: HttpRequest) -> QuerySet[LogEntry]:
        queryset: QuerySet[LogEntry] = super().get_queryset(request)
        if request.user.is_active and request.user.is_superuser:
            return queryset
        return queryset.filter(additional_data__team_id__in=self._team_ids(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such entry, or not one of your team's.")
        return obj

    def has_module_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and (user.is_superuser or self._team_ids(request)))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return self.get_queryset(request).filter(pk=obj.pk).exists()
