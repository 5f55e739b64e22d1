"""Participant pages: consent, instructions, comprehension questions, one article per page
with the attention-check pages among them, questions about the participant, finish,
debrief. Server-rendered, no JavaScript needed.

Where a participant may go is derived from stored answers only
(``participant_next_step``): pages ahead of them redirect back to their step, earlier
trials can be revisited and re-answered, and after completion everything leads to the
debrief. Every write is a POST followed by a redirect (POST/redirect/GET), so a refresh
never re-submits, and the services make a re-submission idempotent anyway.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_ratelimit.core import is_ratelimited

from surveys import fraud
from surveys.forms import MAX_TAB_AWAYS, MAX_VISIBLE_MS, answers_validate, timing_parse
from surveys.models import WIKINEWS_ATTRIBUTION, Participant, Question, Study, Trial
from surveys.privacy import network_hash
from surveys.selectors import (
    ParticipantProgress,
    Step,
    check_pages,
    completion_link,
    participant_by_token,
    participant_next_step,
    participant_progress,
    participant_trials,
    progress_after_answers,
    questions_for,
    step_is_reachable,
    study_design,
    study_role_of,
    withdrawal_articles,
)
from surveys.services import (
    ComprehensionOutcome,
    PanelIdRequiredError,
    PanelIds,
    ParticipationClosedError,
    StudyClosedError,
    StudyFullError,
    about_answer,
    attention_answer,
    comprehension_answer,
    instructions_mark_seen,
    participant_complete,
    participant_enroll,
    participant_find,
    participant_withdraw,
    study_is_full,
    study_validate_design,
    trial_answer,
    trial_mark_shown,
)

# Session key holding {study slug: participant token}, so that someone who came without
# a panel id and reopens the study link resumes instead of starting again.
SESSION_KEY = "credence_participations"

PANEL_FIELDS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "hitId", "assignmentId")


# ---------------------------------------------------------------------------------------
# Helpers


def step_url(participant: Participant, step: Step) -> str:
    token = participant.token
    if step.name == "instructions":
        return reverse("surveys:instructions", args=[token])
    if step.name == "comprehension":
        return reverse("surveys:comprehension", args=[token])
    if step.name == "trial":
        return reverse("surveys:article", args=[token, step.position])
    if step.name == "about":
        return reverse("surveys:about_you", args=[token])
    if step.name == "check":
        return reverse("surveys:check", args=[token, step.position])
    if step.name == "finish":
        return reverse("surveys:finish", args=[token])
    return reverse("surveys:debrief", args=[token])


def _to_next_step(participant: Participant) -> HttpResponseRedirect:
    return redirect(step_url(participant, participant_next_step(participant=participant)))


def _participant_or_404(token: UUID) -> Participant:
    participant = participant_by_token(token=token)
    if participant is None:
        raise Http404("No such participation.")
    return participant


# The participant's own fields (not its study or condition, which never change): what a
# service may have written. Reloading only these keeps the study loaded with the row.
_OWN_FIELDS = [f.attname for f in Participant._meta.concrete_fields if not f.is_relation]


def _reload(participant: Participant) -> None:
    participant.refresh_from_db(fields=_OWN_FIELDS)


def _reloaded(participant: Participant) -> Participant:
    _reload(participant)
    return participant


def _to_step_after(
    participant: Participant,
    progress: ParticipantProgress,
    *,
    trial_id: int | None,
    answers: Mapping[Question, tuple[str, float | None]],
) -> HttpResponseRedirect:
    """The redirect after a page stored ``answers`` (to trial ``trial_id``, or
    once-asked for None): its next step, from what the page read before and what it
    stored, without reading the answers back. ``participant`` is as the service left it."""
    after = progress_after_answers(
        participant=participant,
        progress=progress,
        trial_id=trial_id,
        answers=[(question, value) for question, (value, _) in answers.items()],
    )
    return redirect(step_url(participant, after.step))


def _guard(
    participant: Participant, requested: Step, progress: ParticipantProgress | None = None
) -> tuple[HttpResponseRedirect | None, ParticipantProgress]:
    """A redirect to the participant's own step when ``requested`` is ahead of it (or
    anything but the debrief after completion), None when the page may be shown; and
    the participant's progress, computed once per request (``progress`` when given)."""
    if progress is None:
        progress = participant_progress(participant=participant)
    if step_is_reachable(requested=requested, current=progress.step):
        return None, progress
    return redirect(step_url(participant, progress.step)), progress


def _remember(request: HttpRequest, participant: Participant) -> None:
    remembered = dict(request.session.get(SESSION_KEY, {}))
    remembered[participant.study.slug] = str(participant.token)
    request.session[SESSION_KEY] = remembered


def _remembered(request: HttpRequest, study: Study) -> Participant | None:
    token = request.session.get(SESSION_KEY, {}).get(study.slug)
    if not token:
        return None
    participant = participant_by_token(token=token)
    if participant is None or participant.study_id != study.pk:
        return None
    return participant


# Characters no form field or panel id legitimately holds: C0 controls but tab, newline
# and carriage return (NUL above all, which PostgreSQL cannot store in text), DEL, C1
# controls, and lone surrogates (not encodable as UTF-8, so not storable either).
_UNREADABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _unreadable_input(request: HttpRequest) -> str:
    """Why the request's query or form data cannot be taken, or "" when it can."""
    for data in (request.GET, request.POST):
        for key, values in data.lists():
            if _UNREADABLE.search(key) or any(_UNREADABLE.search(v) for v in values):
                return (
                    "The link or a form field contains characters that are not text "
                    "(such as a null byte or a control character)."
                )
    return ""


def _rate_limited(request: HttpRequest, *, group: str, rate_setting: str, key: str) -> bool:
    """Count this request against ``group``'s limit for ``key`` (in the shared cache, so
    every worker and server counts together); True once the limit is exceeded. The rate
    ("30/m") comes from the setting named, which may be empty to switch the limit off."""
    rate = str(getattr(settings, rate_setting))
    if not rate:
        return False
    return bool(
        is_ratelimited(
            request,
            group=group,
            key=lambda _group, _request: key,
            rate=rate,
            method="POST",
            increment=True,
        )
    )


def _too_many(request: HttpRequest) -> HttpResponse:
    response = _render(request, "too_many_requests.html", {}, status=429)
    response["Retry-After"] = "60"
    return response


def participant_input(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Every participant view: refuse unreadable input with a 400 page before the view
    reads any of it, and count POSTs to a participation against its rate limit.

    A decorator on the views rather than a middleware: it guards exactly the pages
    participants reach (the admin and the API validate through their own forms and
    serializers), and lives next to them."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if message := _unreadable_input(request):
            return _render(request, "bad_input.html", {"message": message}, status=400)
        token = kwargs.get("token")
        if token is not None and _rate_limited(
            request, group="surveys.post", rate_setting="CREDENCE_POST_RATE", key=str(token)
        ):
            return _too_many(request)
        return view(request, *args, **kwargs)

    return wrapped


@dataclass
class QuestionField:
    """One question as the template draws it."""

    question: Question
    value: str = ""
    error: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    # Ticked options of a multiple-choice question.
    selected: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.question.key

    @property
    def widget(self) -> str:
        return {
            Question.Kind.BINARY: "radios",
            Question.Kind.LIKERT: "scale",
            Question.Kind.CHOICE: "radios",
            Question.Kind.SLIDER: "slider",
            Question.Kind.MULTI_CHOICE: "checkboxes",
        }.get(Question.Kind(self.question.kind), "textarea")

    @property
    def bounds(self) -> tuple[int, int] | None:
        return self.question.bounds


def _ticked(values: Mapping[str, str], key: str) -> list[str]:
    """Ticked options: every value posted (a QueryDict), or a stored JSON list."""
    getlist = getattr(values, "getlist", None)
    if getlist is not None:
        return [str(v) for v in getlist(key)]
    try:
        stored = json.loads(values.get(key) or "[]")
    except ValueError:
        return []
    return [str(v) for v in stored] if isinstance(stored, list) else []


def _question_fields(
    questions: list[Question], values: Mapping[str, str], errors: Mapping[str, str]
) -> list[QuestionField]:
    fields = []
    for question in questions:
        if question.kind == Question.Kind.BINARY:
            options = [("yes", "Yes"), ("no", "No")]
        elif question.kind == Question.Kind.LIKERT:
            assert question.scale_min is not None
            assert question.scale_max is not None
            options = [(str(n), str(n)) for n in range(question.scale_min, question.scale_max + 1)]
        elif question.kind in (Question.Kind.CHOICE, Question.Kind.MULTI_CHOICE):
            options = [(str(c), str(c)) for c in question.choices]
        else:
            options = []
        multi = question.kind == Question.Kind.MULTI_CHOICE
        fields.append(
            QuestionField(
                question=question,
                value="" if multi else str(values.get(question.key, "")).strip(),
                error=errors.get(question.key, ""),
                options=options,
                selected=_ticked(values, question.key) if multi else [],
            )
        )
    return fields


def _render(
    request: HttpRequest,
    template: str,
    context: dict[str, object],
    status: int = 200,
) -> HttpResponse:
    return render(request, f"surveys/{template}", context, status=status)


# ---------------------------------------------------------------------------------------
# Public pages


@participant_input
@require_GET
def about(request: HttpRequest) -> HttpResponse:
    return _render(request, "about.html", {"attribution": WIKINEWS_ATTRIBUTION})


def _panel_or_400(
    request: HttpRequest, source: Mapping[str, str]
) -> tuple[PanelIds, HttpResponse | None]:
    try:
        return PanelIds.from_query(source), None
    except ValidationError as error:
        page = _render(request, "bad_input.html", {"message": error.messages[0]}, status=400)
        return PanelIds(), page


@participant_input
@require_http_methods(["GET", "POST"])
def start(request: HttpRequest, slug: str) -> HttpResponse:
    """Consent page. A GET never writes (link scanners open study links); consent is a
    POST. Someone who already has a participation is sent back to where they are.

    A draft or closed study says it is not open, without its title: the page is
    public. Consents are rate-limited per client network and study."""
    study = next(iter(Study.objects.filter(slug=slug).order_by()[:1]), None)
    if study is None:
        return _render(request, "study_not_found.html", {"slug": slug}, status=404)
    source = request.POST if request.method == "POST" else request.GET
    panel, bad = _panel_or_400(request, source)
    if bad is not None:
        return bad
    existing = participant_find(study=study, panel=panel) if panel.pid else None
    if existing is None and not panel.pid:
        existing = _remembered(request, study)
    if existing is not None:
        if panel.pid:
            # Returning through the panel's link, maybe in another browser: this one
            # remembers it too, so the bare study link later leads back to it.
            _remember(request, existing)
        # Resuming is allowed after the study closes, so nobody loses a started session.
        return redirect("surveys:resume", token=existing.token)
    if not study.accepts_participants:
        return _render(request, "study_closed.html", {"study": study}, status=410)
    if study.require_panel_id and not panel.pid:
        return _render(request, "panel_id_required.html", {}, status=403)
    if study_is_full(study=study):
        # Before consent, so nobody agrees to a study that cannot take them.
        return _render(request, "study_closed.html", {"study": study, "full": True}, status=503)
    hidden = {name: source[name] for name in PANEL_FIELDS if source.get(name)}
    context: dict[str, object] = {"study": study, "hidden": hidden, "error": ""}
    if request.method == "GET":
        return _render(request, "start.html", context)
    client = network_hash(request)
    if _rate_limited(
        request,
        group="surveys.entry",
        rate_setting="CREDENCE_ENTRY_RATE",
        key=f"{client}:{study.pk}",
    ):
        return _too_many(request)
    if request.POST.get("consent") != "yes":
        context["error"] = "Please tick the box to agree to take part, or close this page."
        return _render(request, "start.html", context)
    try:
        participant = participant_enroll(
            study=study,
            panel=panel,
            user_agent=request.headers.get("user-agent", ""),
            network_hash=client,
        )
    except StudyClosedError:
        return _render(request, "study_closed.html", {"study": study}, status=410)
    except StudyFullError:
        return _render(request, "study_closed.html", {"study": study, "full": True}, status=503)
    except PanelIdRequiredError:
        return _render(request, "panel_id_required.html", {}, status=403)
    _remember(request, participant)
    browser_id = fraud.enrolment_signals_record(participant=participant, request=request)
    response = redirect("surveys:resume", token=participant.token)
    fraud.browser_cookie_set(response=response, request=request, browser_id=browser_id)
    return response


@participant_input
@staff_member_required
@require_http_methods(["GET", "POST"])
def preview(request: HttpRequest, slug: str) -> HttpResponse:
    """Enrol a flagged test participant (any status but closed) and enter the flow.
    A GET only shows a button (a link opened by a mail scanner or prefetched by a
    browser must not enrol anyone); the POST enrols. Panel parameters are honoured, so
    the panel round trip can be tried out too."""
    study = Study.objects.filter(slug=slug).first()
    # Another team's study is as good as absent: previews show its design.
    if study is None or study_role_of(user=request.user, study=study) is None:
        return _render(request, "study_not_found.html", {"slug": slug}, status=404)
    if study.status == Study.Status.CLOSED:
        return _render(request, "study_closed.html", {"study": study}, status=410)
    try:
        study_validate_design(study=study)
    except ValidationError as error:
        return _render(
            request,
            "preview_problems.html",
            {"study": study, "problems": error.messages},
            status=409,
        )
    source = request.POST if request.method == "POST" else request.GET
    panel, bad = _panel_or_400(request, source)
    if bad is not None:
        return bad
    if request.method == "GET":
        hidden = {name: source[name] for name in PANEL_FIELDS if source.get(name)}
        return _render(request, "preview_confirm.html", {"study": study, "hidden": hidden})
    existing = participant_find(study=study, panel=panel)
    if existing is not None and not existing.is_test:
        # Never let a preview take over a real participation.
        return _render(
            request,
            "preview_problems.html",
            {"study": study, "problems": ["That panel id belongs to a real participant."]},
            status=409,
        )
    try:
        participant = participant_enroll(
            study=study,
            panel=panel,
            is_test=True,
            user_agent=request.headers.get("user-agent", ""),
        )
    except StudyFullError as error:
        return _render(
            request, "preview_problems.html", {"study": study, "problems": [str(error)]}, status=409
        )
    return redirect("surveys:resume", token=participant.token)


# ---------------------------------------------------------------------------------------
# The flow


@participant_input
@require_GET
def resume(request: HttpRequest, token: UUID) -> HttpResponse:
    participant = _participant_or_404(token)
    return _to_next_step(participant)


@participant_input
@require_http_methods(["GET", "POST"])
def instructions(request: HttpRequest, token: UUID) -> HttpResponse:
    participant = _participant_or_404(token)
    response, progress = _guard(participant, Step("instructions"))
    if response is not None:
        return response
    if request.method == "POST":
        instructions_mark_seen(participant=participant)
        _reload(participant)
        return _to_next_step(participant)
    return _render(
        request,
        "instructions.html",
        {
            "participant": participant,
            "study": participant.study,
            "total": progress.n_articles,
        },
    )


@participant_input
@require_http_methods(["GET", "POST"])
def article(request: HttpRequest, token: UUID, position: int) -> HttpResponse:
    participant = _participant_or_404(token)
    trial = next(
        iter(
            Trial.objects.select_related("article", "condition")
            .filter(participant=participant, position=position)
            .order_by()[:1]
        ),
        None,
    )
    if trial is None:
        raise Http404("No such article in this participation.")
    response, progress = _guard(participant, Step("trial", position))
    if response is not None:
        return response
    questions = questions_for(study=participant.study, scope=Question.Scope.PER_ARTICLE)
    if request.method == "POST":
        parsed, errors = answers_validate(questions=questions, data=request.POST)
        if not errors:
            try:
                stored = trial_answer(
                    participant=participant,
                    trial=trial,
                    answers=parsed,
                    visible_ms=timing_parse(
                        raw=request.POST.get("visible_ms"), maximum=MAX_VISIBLE_MS
                    ),
                    tab_aways=timing_parse(
                        raw=request.POST.get("tab_aways"), maximum=MAX_TAB_AWAYS
                    ),
                )
            except ParticipationClosedError:
                # Completed in another tab meanwhile: nothing is written, the redirect
                # goes to the debrief.
                return _to_next_step(_reloaded(participant))
            fraud.trial_signals_record(trial=trial, data=request.POST)
            return _to_step_after(stored, progress, trial_id=trial.pk, answers=parsed)
        values: Mapping[str, str] = request.POST
    else:
        trial_mark_shown(trial=trial)
        errors = {}
        values = progress.values(design=study_design(study=participant.study), trial_id=trial.pk)
    return _render(
        request,
        "article.html",
        {
            "participant": participant,
            "study": participant.study,
            "trial": trial,
            "article": trial.article,
            # The presentation manipulations of the condition this article was drawn
            # from: the only things that differ between conditions' pages.
            "condition": trial.condition or participant.condition,
            "total": progress.n_articles,
            "fields": _question_fields(questions, values, errors),
            "errors": errors,
            # Re-rendered after an error: the script adds to what was measured so far.
            "timing": {
                "visible_ms": timing_parse(raw=values.get("visible_ms"), maximum=MAX_VISIBLE_MS)
                or 0,
                "tab_aways": timing_parse(raw=values.get("tab_aways"), maximum=MAX_TAB_AWAYS) or 0,
            },
            "signals": fraud.page_signals_carry(values=values),
        },
    )


def _once_asked_page(
    request: HttpRequest,
    participant: Participant,
    *,
    step: Step,
    questions: list[Question],
    template: str,
    record: Callable[..., Participant],
    context: Mapping[str, object] | None = None,
    progress: ParticipantProgress | None = None,
) -> HttpResponse:
    """A page of questions asked once per participant (trial-less answers): show them
    prefilled, validate, record idempotently, go on to the next step. ``record`` stores
    the answers and returns the participant as stored now."""
    response, progress = _guard(participant, step, progress)
    if response is not None:
        return response
    if not questions:
        return _to_next_step(participant)
    if request.method == "POST":
        parsed, errors = answers_validate(questions=questions, data=request.POST)
        if not errors:
            try:
                stored = record(participant=participant, answers=parsed)
            except ParticipationClosedError:
                return _to_next_step(_reloaded(participant))
            fraud.page_pastes_record(participant=stored, page=_page_key(step), data=request.POST)
            return _to_step_after(stored, progress, trial_id=None, answers=parsed)
        values: Mapping[str, str] = request.POST
    else:
        errors = {}
        values = progress.values(design=study_design(study=participant.study), trial_id=None)
    return _render(
        request,
        template,
        {
            "participant": participant,
            "study": participant.study,
            "fields": _question_fields(questions, values, errors),
            "errors": errors,
            "signals": fraud.page_signals_carry(values=values),
            **(context or {}),
        },
    )


def _page_key(step: Step) -> str:
    """A page asked once, as its pastes are stored: "about", "check-2" (the check page
    after article 2)."""
    return step.name if step.position is None else f"{step.name}-{step.position}"


@participant_input
@require_http_methods(["GET", "POST"])
def about_you(request: HttpRequest, token: UUID) -> HttpResponse:
    """Questions asked once per participant (demographics and the like), after the
    articles and the attention checks."""
    participant = _participant_or_404(token)
    return _once_asked_page(
        request,
        participant,
        step=Step("about"),
        questions=questions_for(study=participant.study, scope=Question.Scope.PARTICIPANT),
        template="about_you.html",
        record=about_answer,
    )


@participant_input
@require_http_methods(["GET", "POST"])
def check(request: HttpRequest, token: UUID, after: int | None = None) -> HttpResponse:
    """The attention checks asked right after the participant's article ``after`` (one
    page for every check placed there). Without ``after``: the check page the
    participant is at, else the last one they have reached (so that a study with one
    check page keeps one plain address)."""
    participant = _participant_or_404(token)
    progress = participant_progress(participant=participant)
    pages = check_pages(study=participant.study, n_articles=progress.n_articles)
    if after is None:
        current = progress.step
        reached = [
            slot
            for slot in pages
            if step_is_reachable(requested=Step("check", slot), current=current)
        ]
        if not reached:
            return redirect(step_url(participant, current))
        after = current.position if current.name == "check" else reached[-1]
    if after not in pages:
        raise Http404("No attention check after this article.")
    return _once_asked_page(
        request,
        participant,
        step=Step("check", after),
        questions=pages[after],
        template="check.html",
        record=attention_answer,
        context={"after": after},
        progress=progress,
    )


@participant_input
@require_http_methods(["GET", "POST"])
def comprehension(request: HttpRequest, token: UUID) -> HttpResponse:
    """The comprehension questions, after the instructions. Wrong answers bring the page
    back, empty, with a neutral message, until the study's tries are used up; then the
    participant is screened out (the debrief page tells them, with their code)."""
    participant = _participant_or_404(token)
    response, _ = _guard(participant, Step("comprehension"))
    if response is not None:
        return response
    study = participant.study
    questions = questions_for(study=study, scope=Question.Scope.COMPREHENSION)
    errors: dict[str, str] = {}
    values: Mapping[str, str] = {}
    if request.method == "POST":
        parsed, errors = answers_validate(questions=questions, data=request.POST)
        if not errors:
            attempt = timing_parse(raw=request.POST.get("attempt"), maximum=1000) or 0
            with contextlib.suppress(ParticipationClosedError):
                outcome = comprehension_answer(
                    participant=participant, answers=parsed, attempt=attempt
                )
                if outcome != ComprehensionOutcome.STALE:
                    fraud.page_pastes_record(
                        participant=participant,
                        page=f"comprehension-{attempt}",
                        data=request.POST,
                    )
                if outcome == ComprehensionOutcome.RETRY:
                    # Shown again by a GET, so that a refresh re-submits nothing.
                    return redirect(reverse("surveys:comprehension", args=[participant.token]))
            _reload(participant)
            return _to_next_step(participant)
        values = request.POST
    tries = participant.comprehension_tries
    return _render(
        request,
        "comprehension.html",
        {
            "participant": participant,
            "study": study,
            "fields": _question_fields(questions, values, errors),
            "errors": errors,
            "attempt": tries + 1,
            "retry": tries > 0 and not errors,
            "tries_left": max(study.comprehension_attempts, 1) - tries,
            "signals": fraud.page_signals_carry(values=values),
        },
    )


@participant_input
@require_http_methods(["GET", "POST"])
def finish(request: HttpRequest, token: UUID) -> HttpResponse:
    """GET shows a last page with the submit button; POST completes. Before every answer
    is in, both lead back to the participant's step."""
    participant = _participant_or_404(token)
    response, _ = _guard(participant, Step("finish"))
    if response is not None:
        return response
    if request.method == "POST":
        try:
            completed = participant_complete(participant=participant)
        except (ValidationError, ParticipationClosedError):
            # The redirect shows what is still missing, or the debrief.
            return _to_next_step(_reloaded(participant))
        return redirect(step_url(completed, Step("done")))
    return _render(request, "finish.html", {"participant": participant, "study": participant.study})


@participant_input
@require_GET
def debrief(request: HttpRequest, token: UUID) -> HttpResponse:
    participant = _participant_or_404(token)
    study = participant.study
    if participant.status == Participant.Status.SCREENED_OUT:
        # They read no article: the study's general debrief, and their code.
        return _render(
            request,
            "screened_out.html",
            {
                "participant": participant,
                "study": study,
                "completion_url": completion_link(study=study, code=participant.completion_code),
            },
        )
    if participant.status == Participant.Status.WITHDRAWN:
        return _render(
            request,
            "withdrawn.html",
            {
                "participant": participant,
                "study": study,
                "articles": withdrawal_articles(participant=participant),
                "completion_url": completion_link(study=study, code=participant.completion_code),
                "attribution": WIKINEWS_ATTRIBUTION,
            },
        )
    if participant.status != Participant.Status.COMPLETED:
        return _to_next_step(participant)
    return _render(
        request,
        "debrief.html",
        {
            "participant": participant,
            "study": study,
            "articles": [t.article for t in participant_trials(participant=participant)],
            "completion_url": completion_link(study=study, code=participant.completion_code),
            "attribution": WIKINEWS_ATTRIBUTION,
            "can_withdraw": True,
        },
    )


@participant_input
@require_http_methods(["GET", "POST"])
def withdraw(request: HttpRequest, token: UUID) -> HttpResponse:
    """GET asks for confirmation (writes nothing); POST withdraws and shows the debrief.
    After withdrawal both lead to the debrief of the withdrawn participation."""
    participant = _participant_or_404(token)
    if participant.status == Participant.Status.WITHDRAWN:
        return redirect("surveys:debrief", token=participant.token)
    if request.method == "POST":
        participant_withdraw(participant=participant)
        return redirect("surveys:debrief", token=participant.token)
    return _render(
        request,
        "withdraw.html",
        {
            "participant": participant,
            "study": participant.study,
            "back_url": step_url(participant, participant_next_step(participant=participant)),
            # Nothing to reveal to someone who has not seen an article (e.g. screened out).
            "read_articles": participant.trials.filter(first_shown_at__isnull=False).exists(),
        },
    )
