"""What every participant page shares: the guard on unreadable input and the POST rate
limit (``participant_input``), where a participant's step is and the redirect to it,
the participation remembered in the session, and the questions as the templates draw
them."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django_ratelimit.core import is_ratelimited

from surveys.models import Participant, Question, Study
from surveys.selectors import (
    ParticipantProgress,
    Step,
    participant_by_token,
    participant_next_step,
    participant_progress,
    progress_after_answers,
    step_is_reachable,
)

# Session key holding {study slug: participant token}, so that someone who came without
# a panel id and reopens the study link resumes instead of starting again.
SESSION_KEY = "credence_participations"

PANEL_FIELDS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "hitId", "assignmentId")


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


def to_next_step(participant: Participant) -> HttpResponseRedirect:
    return redirect(step_url(participant, participant_next_step(participant=participant)))


def participant_or_404(token: UUID) -> Participant:
    participant = participant_by_token(token=token)
    if participant is None:
        raise Http404("No such participation.")
    return participant


# The participant's own fields (not its study or condition, which never change): what a
# service may have written. Reloading only these keeps the study loaded with the row.
_OWN_FIELDS = [f.attname for f in Participant._meta.concrete_fields if not f.is_relation]


def reload(participant: Participant) -> None:
    participant.refresh_from_db(fields=_OWN_FIELDS)


def reloaded(participant: Participant) -> Participant:
    reload(participant)
    return participant


def to_step_after(
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


def guard(
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


def remember(request: HttpRequest, participant: Participant) -> None:
    remembered = dict(request.session.get(SESSION_KEY, {}))
    remembered[participant.study.slug] = str(participant.token)
    request.session[SESSION_KEY] = remembered


def remembered(request: HttpRequest, study: Study) -> Participant | None:
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


def rate_limited(request: HttpRequest, *, group: str, rate_setting: str, key: str) -> bool:
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


def too_many(request: HttpRequest) -> HttpResponse:
    response = render_page(request, "too_many_requests.html", {}, status=429)
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
            return render_page(request, "bad_input.html", {"message": message}, status=400)
        token = kwargs.get("token")
        if token is not None and rate_limited(
            request, group="surveys.post", rate_setting="CREDENCE_POST_RATE", key=str(token)
        ):
            return too_many(request)
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


def question_fields(
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


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, object],
    status: int = 200,
) -> HttpResponse:
    return render(request, f"surveys/{template}", context, status=status)
