"""The participant's flow: instructions, comprehension questions, one article per page
with the attention-check pages among them, questions about the participant, finish,
debrief and withdrawal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from uuid import UUID

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from surveys import fraud
from surveys.forms import MAX_TAB_AWAYS, MAX_VISIBLE_MS, AnswersForm, timing_parse
from surveys.models import WIKINEWS_ATTRIBUTION, Participant, Question
from surveys.selectors import (
    ParticipantProgress,
    Step,
    check_pages,
    completion_link,
    participant_next_step,
    participant_progress,
    participant_trial,
    participant_trials,
    questions_for,
    step_is_reachable,
    study_design,
    withdrawal_articles,
)
from surveys.services import (
    ComprehensionOutcome,
    ParticipationClosedError,
    about_answer,
    attention_answer,
    comprehension_answer,
    instructions_mark_seen,
    participant_complete,
    participant_withdraw,
    trial_answer,
    trial_mark_shown,
)
from surveys.views.common import (
    guard,
    participant_input,
    participant_or_404,
    question_fields,
    reload,
    reloaded,
    render_page,
    step_url,
    to_next_step,
    to_step_after,
)


@participant_input
@require_GET
def resume(request: HttpRequest, token: UUID) -> HttpResponse:
    participant = participant_or_404(token)
    return to_next_step(participant)


@participant_input
@require_http_methods(["GET", "POST"])
def instructions(request: HttpRequest, token: UUID) -> HttpResponse:
    participant = participant_or_404(token)
    response, progress = guard(participant, Step("instructions"))
    if response is not None:
        return response
    if request.method == "POST":
        instructions_mark_seen(participant=participant)
        reload(participant)
        return to_next_step(participant)
    return render_page(
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
    participant = participant_or_404(token)
    trial = participant_trial(participant=participant, position=position)
    if trial is None:
        raise Http404("No such article in this participation.")
    response, progress = guard(participant, Step("trial", position))
    if response is not None:
        return response
    questions = questions_for(study=participant.study, scope=Question.Scope.PER_ARTICLE)
    if request.method == "POST":
        form = AnswersForm(questions=questions, data=request.POST)
        if form.is_valid():
            parsed = form.answers
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
                return to_next_step(reloaded(participant))
            fraud.trial_signals_record(trial=trial, data=request.POST)
            return to_step_after(stored, progress, trial_id=trial.pk, answers=parsed)
        errors = form.messages
        values: Mapping[str, str] = request.POST
    else:
        trial_mark_shown(trial=trial)
        errors = {}
        values = progress.values(design=study_design(study=participant.study), trial_id=trial.pk)
    return render_page(
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
            "fields": question_fields(questions, values, errors),
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
    response, progress = guard(participant, step, progress)
    if response is not None:
        return response
    if not questions:
        return to_next_step(participant)
    if request.method == "POST":
        form = AnswersForm(questions=questions, data=request.POST)
        if form.is_valid():
            parsed = form.answers
            try:
                stored = record(participant=participant, answers=parsed)
            except ParticipationClosedError:
                return to_next_step(reloaded(participant))
            fraud.page_pastes_record(participant=stored, page=_page_key(step), data=request.POST)
            return to_step_after(stored, progress, trial_id=None, answers=parsed)
        errors = form.messages
        values: Mapping[str, str] = request.POST
    else:
        errors = {}
        values = progress.values(design=study_design(study=participant.study), trial_id=None)
    return render_page(
        request,
        template,
        {
            "participant": participant,
            "study": participant.study,
            "fields": question_fields(questions, values, errors),
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
    participant = participant_or_404(token)
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
    participant = participant_or_404(token)
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
    participant = participant_or_404(token)
    response, _ = guard(participant, Step("comprehension"))
    if response is not None:
        return response
    study = participant.study
    questions = questions_for(study=study, scope=Question.Scope.COMPREHENSION)
    errors: dict[str, str] = {}
    values: Mapping[str, str] = {}
    if request.method == "POST":
        form = AnswersForm(questions=questions, data=request.POST)
        if form.is_valid():
            attempt = timing_parse(raw=request.POST.get("attempt"), maximum=1000) or 0
            with contextlib.suppress(ParticipationClosedError):
                outcome = comprehension_answer(
                    participant=participant, answers=form.answers, attempt=attempt
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
            reload(participant)
            return to_next_step(participant)
        errors = form.messages
        values = request.POST
    tries = participant.comprehension_tries
    return render_page(
        request,
        "comprehension.html",
        {
            "participant": participant,
            "study": study,
            "fields": question_fields(questions, values, errors),
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
    participant = participant_or_404(token)
    response, _ = guard(participant, Step("finish"))
    if response is not None:
        return response
    if request.method == "POST":
        try:
            completed = participant_complete(participant=participant)
        except (ValidationError, ParticipationClosedError):
            # The redirect shows what is still missing, or the debrief.
            return to_next_step(reloaded(participant))
        return redirect(step_url(completed, Step("done")))
    return render_page(
        request, "finish.html", {"participant": participant, "study": participant.study}
    )


@participant_input
@require_GET
def debrief(request: HttpRequest, token: UUID) -> HttpResponse:
    participant = participant_or_404(token)
    study = participant.study
    if participant.status == Participant.Status.SCREENED_OUT:
        # They read no article: the study's general debrief, and their code.
        return render_page(
            request,
            "screened_out.html",
            {
                "participant": participant,
                "study": study,
                "completion_url": completion_link(study=study, code=participant.completion_code),
            },
        )
    if participant.status == Participant.Status.WITHDRAWN:
        return render_page(
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
        return to_next_step(participant)
    return render_page(
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
    participant = participant_or_404(token)
    if participant.status == Participant.Status.WITHDRAWN:
        return redirect("surveys:debrief", token=participant.token)
    if request.method == "POST":
        participant_withdraw(participant=participant)
        return redirect("surveys:debrief", token=participant.token)
    return render_page(
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
