"""Studies: their design fields, the lifecycle buttons, the power plan and the monitor
(started and completed per condition, exclusions, fraud signals)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from studyplatform.measures.planning import sample_size_two_proportions
from surveys import fraud
from surveys.admin.design import ConditionInline, ExclusionRuleInline, QuestionInline
from surveys.admin.studyfile import StudyFileAdminMixin
from surveys.admin.teams import TeamScopedAdmin
from surveys.exclusions import exclusions_by_condition
from surveys.instruments import INSTRUMENTS, instrument_apply
from surveys.models import Condition, Study
from surveys.querysets import StudyParticipantCounts, StudyQuerySet
from surveys.selectors import (
    CLASSIC_RATES,
    StudyMonitor,
    studies_visible_to,
    study_monitor,
    study_power_plan,
    teams_for_new_study,
)
from surveys.services import (
    study_assert_editable,
    study_set_status,
    study_sync_articles_per_participant,
)
from surveys.study_templates import study_apply_template

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


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
    "multiple_comparisons",  # in the design document unless Holm (the default)
    "hypotheses",  # the preregistration's fields: in the design document when filled in
    "primary_comparison",
    "original_citation",  # in the design document when set (the replication plan)
    "equivalence_bound",  # likewise
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


@admin.register(Study)
class StudyAdmin(StudyFileAdminMixin, TeamScopedAdmin, admin.ModelAdmin):  # type: ignore[type-arg]
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
    actions = [
        "add_kreps",
        "add_attention",
        "setup_kreps_template",
        "set_pilot",
        "set_live",
        "set_closed",
    ]
    change_form_template = "admin/surveys/study/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Study]:
        queryset = cast("StudyQuerySet", super().get_queryset(request))
        return queryset.with_participant_counts()

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
                        "multiple_comparisons",
                        "original_citation",
                        "equivalence_bound",
                    )
                },
            ),
            (
                "Preregistration (locked once live)",
                {
                    "fields": ("hypotheses", "primary_comparison", "preregistration"),
                    "description": "Downloadable once the study is piloted or launched, "
                    "with the design, the sample-size plan, the exclusion rules and the "
                    "analysis plan written out from the frozen design.",
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
        fields = [
            "status",
            "design_hash",
            "launched_at",
            "closed_at",
            "monitor",
            "monitor_details",
            "preregistration",
        ]
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

    @admin.action(
        description="Set up as the Kreps et al. GPT-2 experiment (empty drafts only)",
        permissions=["change"],
    )
    def setup_kreps_template(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            if not self.has_change_permission(request, study):
                self.message_user(request, f"{study}: analysts cannot change it.", messages.ERROR)
                continue
            try:
                created = study_apply_template(study=study, name="kreps")
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
                continue
            names = ", ".join(c.name for c in created)
            self.log_change(request, study, f"Set up from the kreps template: {names}.")
            self.message_user(
                request,
                f"{study}: set up as the Kreps et al. experiment ({names}); add each "
                "condition's articles, check the original rates and sample sizes, then launch.",
                messages.SUCCESS,
            )

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
    def completed(self, obj: WithAnnotations[Study, StudyParticipantCounts]) -> int:
        return obj.n_completed

    @admin.display(description="In progress", ordering="n_in_progress")
    def in_progress(self, obj: WithAnnotations[Study, StudyParticipantCounts]) -> int:
        return obj.n_in_progress

    @admin.display(description="Test sessions", ordering="n_test")
    def test_sessions(self, obj: WithAnnotations[Study, StudyParticipantCounts]) -> int:
        return obj.n_test

    @admin.display(description="Monitor")
    def monitor(self, obj: Study) -> str:
        """Per condition: articles, participants started / in progress / completed against
        the quota, withdrawn, test sessions; then who each exclusion rule removes."""
        if obj.pk is None:
            return "—"
        return render_to_string(
            "admin/surveys/study/monitor.html",
            {"monitor": _monitor_of(obj), "exclusions": _rule_exclusions(obj)},
        )

    @admin.display(description="Preregistration document")
    def preregistration(self, obj: Study) -> str:
        """Links to the preregistration written from the frozen design (analysis app)."""
        if obj.pk is None or not obj.design_hash:
            return "Pilot or launch the study to freeze its design; then download it here."
        markdown = reverse("analysis:preregistration", args=[obj.slug, "md"])
        page = reverse("analysis:preregistration", args=[obj.slug, "html"])
        return format_html(
            '<a href="{}">Markdown</a> · <a href="{}">web page</a> (design {})',
            markdown,
            page,
            obj.design_hash[:12],
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
                "monitor": _monitor_of(obj),
                "signals": fraud.SIGNALS,
                "signal_rows": fraud.study_signal_counts(study=obj),
            },
        )


def _monitor_of(study: Study) -> StudyMonitor:
    """The study's monitor, read once for both monitor fields of its change page."""
    cached: StudyMonitor | None = getattr(study, "_credence_monitor", None)
    if cached is None:
        cached = study_monitor(study=study)
        study._credence_monitor = cached  # type: ignore[attr-defined]
    return cached


def _rule_exclusions(study: Study) -> list[tuple[str, str, int]]:
    """Completed participants each exclusion rule removes: (condition, rule, count), one
    row per condition ("all" in within-subjects designs), counted by
    ``surveys.exclusions``, the same code the analysis ledger uses."""
    counts = exclusions_by_condition(study=study)
    names: dict[int | None, str] = dict(study.conditions.values_list("pk", "name"))
    return [
        (names.get(condition_id, "all"), label, n)
        for condition_id, by_label in sorted(counts.items(), key=lambda kv: kv[0] or 0)
        for label, n in by_label.items()
    ]
