"""A study's design in the admin: conditions, questions and exclusion rules, as inlines
of the study and on their own pages, locked once the study is live."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from surveys.admin.teams import LOCKED_STATUSES, TeamScopedAdmin, may_edit_some_study
from surveys.models import Article, Condition, ExclusionRule, Question, Study
from surveys.selectors import (
    pool_visible_to,
    role_can_edit,
    studies_editable_by,
    study_role_of,
    user_roles,
)
from surveys.services import study_assert_editable

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _ArticleTotal(TypedDict):
    article_total: int


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
            return may_edit_some_study(request)
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

    fields = (
        "name",
        "label",
        "is_reference",
        "quota",
        "per_participant",
        "original_rate",
        "original_n",
        "article_count",
    )
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
            "original_rate",
            "original_n",
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
class ConditionAdmin(TeamScopedAdmin, admin.ModelAdmin):  # type: ignore[type-arg]
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
