"""Admin for generation: create runs, start them in the background, curate samples.

Runs belong to the team that made them, and their samples and chunks with them
(``surveys.admin.TeamPoolAdmin``): another team's staff get 404, and runs made before
teams owned runs are shared, read-only but for superusers and model-permission holders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from generation import selection, services, tasks
from generation.models import GenerationChunk, GenerationRun, Sample
from surveys.admin import TeamPoolAdmin
from surveys.models import Article
from surveys.selectors import pool_visible_to

SETTINGS_FIELDS = (
    "model_name",
    "source_articles",
    "prompt_kind",
    "samples_per_prompt",
    "max_new_tokens",
    "top_k",
    "top_p",
    "temperature",
    "seed",
    "batch_size",
    "context_articles",
    "length_match",
    "word_budget",
    "prepend_lede",
)


class GenerationRunForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = GenerationRun
        fields = ("name", "team", *SETTINGS_FIELDS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk and self.instance.status != GenerationRun.Status.QUEUED:
            return data  # settings are read-only once a run has started
        needed = [f for f in SETTINGS_FIELDS if f not in {"source_articles", "word_budget"}]
        if any(data.get(f) is None for f in needed):
            return data  # the field errors already say what is missing
        errors = services.run_validate(
            model_name=str(data["model_name"]).strip(),
            articles=list(data.get("source_articles") or []),
            samples_per_prompt=data["samples_per_prompt"],
            max_new_tokens=data["max_new_tokens"],
            top_k=data["top_k"],
            top_p=data["top_p"],
            temperature=data["temperature"],
            batch_size=data["batch_size"],
            prompt_kind=data["prompt_kind"],
            context_articles=data["context_articles"],
            length_match=data["length_match"],
            word_budget=data.get("word_budget"),
        )
        for field, problems in errors.items():
            self.add_error(field if field in self.fields else None, problems)
        return data


@admin.register(GenerationRun)
class GenerationRunAdmin(TeamPoolAdmin, admin.ModelAdmin):  # type: ignore[type-arg]
    form = GenerationRunForm
    actions = ["run_on_workers"]
    list_display = (
        "id",
        "__str__",
        "model_name",
        "status",
        "progress",
        "samples_link",
        "created_at",
    )
    list_filter = ("status", "model_name")
    search_fields = ("name", "model_name")
    filter_horizontal = ("source_articles",)
    readonly_fields = (
        "status",
        "progress",
        "samples_link",
        "error",
        "model_identity",
        "started_at",
        "finished_at",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "team", "model_name", "source_articles", "prompt_kind",
                           "context_articles")}),
        ("Clean-up", {"fields": ("length_match", "word_budget", "prepend_lede")}),
        (
            "Sampling",
            {"fields": ("samples_per_prompt", "max_new_tokens", "top_k", "top_p", "temperature",
                        "seed", "batch_size")},
        ),
        (
            "Progress",
            {"fields": ("status", "progress", "samples_link", "error", "started_at", "finished_at",
                        "model_identity", "created_at")},
        ),
    )  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: GenerationRun | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and (
            obj.status != GenerationRun.Status.QUEUED or obj.samples.exists() or obj.chunks.exists()
        ):
            # Samples record the settings they were made with; changing the run's
            # settings halfway would mix two designs in one run.
            fields += list(SETTINGS_FIELDS)
        return fields

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "source_articles":
            kwargs["queryset"] = pool_visible_to(
                user=request.user,
                queryset=Article.objects.real().order_by("title"),
                view_perm="surveys.view_article",
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        run = form.instance
        total = run.source_articles.count() * run.samples_per_prompt
        if run.samples_total != total:
            run.samples_total = total
            run.save(update_fields=["samples_total"])

    def _changeable(
        self, request: HttpRequest, queryset: QuerySet[GenerationRun]
    ) -> list[GenerationRun]:
        """The selected runs this user may start; the others are reported and skipped
        (a shared run, or one of a team where the user is an analyst)."""
        runs = []
        for run in queryset:
            if self.has_change_permission(request, run):
                runs.append(run)
            else:
                self.message_user(request, f"{run}: you may not run it.", messages.ERROR)
        return runs

    @admin.display(description="Progress")
    def progress(self, obj: GenerationRun) -> str:
        if not obj.samples_total:
            return "—"
        percent = 100 * obj.samples_done // obj.samples_total
        return f"{obj.samples_done}/{obj.samples_total} ({percent}%)"

    @admin.display(description="Samples")
    def samples_link(self, obj: GenerationRun) -> SafeString | str:
        if obj.pk is None:
            return "—"
        url = reverse("admin:generation_sample_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">Review samples</a>', url)

    @admin.action(description="Run on the task queue's workers", permissions=["change"])
    def run_on_workers(self, request: HttpRequest, queryset: QuerySet[GenerationRun]) -> None:
        # A web request never starts a process: the run goes to the queue, or where there
        # is none (the demo) the message says how to run it.
        for run in self._changeable(request, queryset):
            if run.status == GenerationRun.Status.DONE and not services.run_pending(run=run):
                self.message_user(request, f"{run} is already done.", messages.INFO)
                continue
            if not tasks.queue_configured():
                self.message_user(
                    request,
                    f"{run}: no task queue is configured here (CELERY_BROKER_URL). Run it "
                    f"with `manage.py generate {run.pk}`; it resumes where it stopped.",
                    messages.WARNING,
                )
                continue
            try:
                queued = tasks.run_enqueue(run=run)
            except Exception as error:  # the broker may be down: say so, do not crash
                self.message_user(
                    request,
                    f"Could not queue {run}: {type(error).__name__}: {error}. Is Redis "
                    "running (CELERY_BROKER_URL)?",
                    messages.ERROR,
                )
                continue
            if not queued:
                self.message_user(request, f"{run} is already done.", messages.INFO)
                continue
            self.message_user(
                request,
                f"{run}: {queued} chunk(s) queued for the workers; reload this page to "
                "follow its progress.",
                messages.SUCCESS,
            )


@admin.register(GenerationChunk)
class GenerationChunkAdmin(TeamPoolAdmin, admin.ModelAdmin):  # type: ignore[type-arg]
    team_path = "run__team"
    list_display = ("run", "index", "status", "worker", "attempts", "started_at", "finished_at")
    list_filter = ("status", "run")
    list_select_related = ("run",)

    def get_readonly_fields(self, request: HttpRequest, obj: GenerationChunk | None = None) -> Any:
        return [f.name for f in GenerationChunk._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class FlagFilter(admin.SimpleListFilter):
    title = "quality flag"
    parameter_name = "flag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(flag, flag.replace("_", " ")) for flag in selection.FLAGS] + [("none", "no flag")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Sample]) -> QuerySet[Sample]:
        value = self.value()
        if value == "none":
            return queryset.filter(flags=[])
        if value in selection.FLAGS:
            # Flags are a JSON list of plain names; matching the quoted name works on
            # SQLite and PostgreSQL alike (JSON "contains" does not exist on SQLite).
            return queryset.filter(flags__icontains=f'"{value}"')
        return queryset


REVIEW_DECISIONS = ("approve", "reject", "approve_next")


@admin.register(Sample)
class SampleAdmin(TeamPoolAdmin, admin.ModelAdmin):  # type: ignore[type-arg]
    team_path = "run__team"
    actions = ["approve_selected", "reject_selected"]
    list_display = (
        "id",
        "run_model",
        "source_title",
        "sample_index",
        "review",
        "flag_badges",
        "words",
        "target_words",
        "selected_by",
        "rank",
        "run",
    )
    list_filter = ("review", FlagFilter, "run__model_name", "run", "selected_by")
    list_select_related = ("run", "source_article")
    search_fields = ("source_article__title", "clean_text")
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("run", "source_article", "sample_index", "review", "rank",
                           "selected_by", "reviewed_by", "reviewed_at", "article")}),
        ("Texts", {"fields": ("side_by_side", "raw_text_block")}),
        ("Clean-up", {"fields": ("flags", "cleanup_version", "cleanup_steps", "word_budget")}),
        ("Reproduction", {"fields": ("prompt", "seed", "new_tokens", "settings")}),
    )  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Sample | None = None) -> Any:
        # Samples are a record of what the model produced; review goes through the
        # buttons and actions. Only the curator's rank is edited in the form.
        fields = [f.name for f in Sample._meta.fields if f.name != "rank"]
        return [*fields, "side_by_side", "raw_text_block"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        review = path(
            "<int:object_id>/review/",
            self.admin_site.admin_view(self.review_view),
            name="generation_sample_review",
        )
        return [review, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        if object_id.isdigit():
            context["review_url"] = reverse("admin:generation_sample_review", args=[object_id])
            sample = self.get_queryset(request).filter(pk=object_id).first()
            if sample is None:
                raise Http404("No such sample, or not one of your team's.")
            context["sample_flags"] = sample.flags if sample else []
            context["sample_review"] = sample.get_review_display() if sample else ""
        return super().change_view(request, object_id, form_url, context)

    def review_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The curation buttons: approve, reject, or approve and open the next pending
        sample of the same run."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        sample = get_object_or_404(self.get_queryset(request).select_related("run"), pk=object_id)
        if not self.has_change_permission(request, sample):
            raise PermissionDenied
        change_url = reverse("admin:generation_sample_change", args=[sample.pk])
        decision = request.POST.get("decision", "")
        if decision not in REVIEW_DECISIONS:
            self.message_user(request, f'Unknown decision "{decision}".', messages.ERROR)
            return redirect(change_url)
        reviewer = request.user.get_username()
        try:
            if decision == "reject":
                services.sample_reject(sample=sample, reviewer=reviewer)
            else:
                services.sample_approve(sample=sample, reviewer=reviewer)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return redirect(change_url)
        verb = "Rejected" if decision == "reject" else "Approved"
        self.message_user(request, f"{verb} sample {sample.pk}.", messages.SUCCESS)
        if decision != "approve_next":
            return redirect(change_url)
        pending = Sample.objects.filter(run=sample.run, review=Sample.Review.PENDING).order_by("id")
        following = pending.filter(id__gt=sample.pk).first() or pending.first()
        if following is None:
            self.message_user(request, "No pending sample is left in this run.", messages.INFO)
            return redirect(
                reverse("admin:generation_sample_changelist") + f"?run__id__exact={sample.run_id}"
            )
        return redirect(reverse("admin:generation_sample_change", args=[following.pk]))

    @admin.display(description="Model", ordering="run__model_name")
    def run_model(self, obj: Sample) -> str:
        return obj.run.model_name

    @admin.display(description="Source article", ordering="source_article__title")
    def source_title(self, obj: Sample) -> str:
        return obj.source_article.title

    @admin.display(description="Words")
    def words(self, obj: Sample) -> int:
        return len(obj.clean_text.split())

    @admin.display(description="Budget", ordering="word_budget")
    def target_words(self, obj: Sample) -> int | str:
        return obj.word_budget if obj.word_budget is not None else "—"

    @admin.display(description="Flags")
    def flag_badges(self, obj: Sample) -> SafeString | str:
        if not obj.flags:
            return ""
        return format_html_join(
            " ",
            '<span class="credence-flag" style="background:#ba2121;color:#fff;'
            'border-radius:3px;padding:1px 5px;font-size:11px">{}</span>',
            ((flag.replace("_", " "),) for flag in obj.flags),
        )

    @admin.display(description="Source article and sample, side by side")
    def side_by_side(self, obj: Sample) -> SafeString:
        source = obj.source_article
        source_html = format_html_join("", "<p>{}</p>", ((p,) for p in source.paragraphs))
        clean = [p for p in obj.clean_text.split("\n\n") if p.strip()]
        generated_html = format_html_join("", "<p>{}</p>", ((p,) for p in clean)) or format_html(
            "<p><em>{}</em></p>", "No complete sentence after clean-up."
        )
        opening = services.sample_prompt_body(sample=obj) if obj.run.prepend_lede else ""
        column = "flex:1 1 0;min-width:0;max-width:42em;line-height:1.6;font-size:15px"
        return format_html(
            '<div style="display:flex;gap:2em;align-items:flex-start">'
            '<div style="{}"><h3>Real article: {}</h3><p style="color:#666">{} words</p>{}</div>'
            '<div style="{}"><h3>Generated by {}</h3><p style="color:#666">{} words '
            "(budget {}) {}</p>"
            '<p style="color:#666">{}</p>{}</div></div>',
            column,
            source.title,
            source.word_count,
            source_html,
            column,
            obj.run.model_name,
            len(obj.clean_text.split()),
            obj.word_budget if obj.word_budget is not None else "none",
            self.flag_badges(obj),
            opening,
            generated_html,
        )

    @admin.display(description="Raw continuation")
    def raw_text_block(self, obj: Sample) -> SafeString:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', obj.raw_text)

    @admin.action(description="Approve selected samples (add to the stimulus pool)",
                  permissions=["change"])  # fmt: skip
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Sample]) -> None:
        self._review_each(request, queryset, services.sample_approve, "Approved")

    @admin.action(description="Reject selected samples", permissions=["change"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Sample]) -> None:
        self._review_each(request, queryset, services.sample_reject, "Rejected")

    def _review_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Sample],
        review: Callable[..., object],
        done: str,
    ) -> None:
        """Apply one review service to each selected sample; report successes and every
        refusal (a sample without a complete sentence, an article already in a study)."""
        reviewed, problems = 0, []
        for sample in queryset.order_by("id"):
            if not self.has_change_permission(request, sample):
                problems.append(f"Sample {sample.pk}: you may not review it.")
                continue
            try:
                review(sample=sample, reviewer=request.user.get_username())
            except ValidationError as error:
                problems.extend(error.messages)
                continue
            reviewed += 1
        if reviewed:
            self.message_user(request, f"{done} {reviewed} sample(s).", messages.SUCCESS)
        for problem in problems:
            self.message_user(request, problem, messages.ERROR)
