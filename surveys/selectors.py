"""Reads shared by the participant pages, the admin and the simulation bot."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from django.db.models import Count, Q

from surveys.models import Article, Participant, Question, Study, Trial, WithdrawalLog


@dataclass(frozen=True)
class Step:
    """Where a participant is in the flow. ``position`` is set for trial steps."""

    # "instructions" | "trial" | "about" | "check" | "finish" | "done" | "withdrawn"
    name: str
    position: int | None = None


def questions_for(*, study: Study, scope: str) -> list[Question]:
    return list(study.questions.filter(scope=scope).order_by("position", "id"))


def participant_next_step(*, participant: Participant) -> Step:
    """The first thing this participant still has to do. Derived from stored answers
    only, so a refresh, a second tab or a return visit all land on the same step."""
    if participant.status == Participant.Status.COMPLETED:
        return Step("done")
    if participant.status == Participant.Status.WITHDRAWN:
        return Step("withdrawn")
    if participant.instructions_seen_at is None:
        return Step("instructions")
    required = participant.study.questions.filter(
        scope=Question.Scope.PER_ARTICLE, required=True
    ).count()
    unanswered = (
        participant.trials.annotate(
            answered=Count("responses", filter=Q(responses__question__required=True))
        )
        .filter(answered__lt=required)
        .order_by("position")
        .first()
    )
    if unanswered is not None:
        return Step("trial", unanswered.position)
    about = participant.study.questions.filter(scope=Question.Scope.PARTICIPANT)
    if about.exists():
        # Submitted once (its questions may all be optional) and every required one in:
        # a required question added by a pilot's edit brings the page back.
        required_about = about.filter(required=True)
        answered_about = participant.responses.filter(
            trial__isnull=True, question__in=required_about
        )
        if (
            participant.about_submitted_at is None
            or answered_about.count() < required_about.count()
        ):
            return Step("about")
    checks = participant.study.questions.filter(scope=Question.Scope.ATTENTION_CHECK, required=True)
    answered_checks = participant.responses.filter(trial__isnull=True, question__in=checks)
    if answered_checks.count() < checks.count():
        return Step("check")
    return Step("finish")


def participant_trials(*, participant: Participant) -> list[Trial]:
    return list(participant.trials.select_related("article").order_by("position"))


def participant_passed_checks(*, participant: Participant) -> bool:
    """True when every attention check was answered with its expected answer."""
    for response in participant.responses.filter(
        trial__isnull=True, question__scope=Question.Scope.ATTENTION_CHECK
    ).select_related("question"):
        if response.value.strip().lower() != response.question.expected_answer.strip().lower():
            return False
    return True


_STEP_ORDER = {
    "instructions": 0,
    "trial": 1,
    "about": 2,
    "check": 3,
    "finish": 4,
    "done": 5,
    "withdrawn": 5,
}


def step_is_reachable(*, requested: Step, current: Step) -> bool:
    """Whether a participant whose next step is ``current`` may open ``requested``:
    any step up to the current one (going back is allowed), nothing beyond it."""
    if current.name in ("done", "withdrawn"):
        return requested.name == current.name
    want = (_STEP_ORDER[requested.name], requested.position or 0)
    have = (_STEP_ORDER[current.name], current.position or 0)
    return want <= have


def participant_by_token(*, token: UUID | str) -> Participant | None:
    return Participant.objects.select_related("study", "condition").filter(token=token).first()


def trial_answers(*, trial: Trial) -> dict[str, str]:
    """Stored answers about one trial, by question key (to prefill the form)."""
    return dict(trial.responses.values_list("question__key", "value"))


def attention_answers(*, participant: Participant) -> dict[str, str]:
    """Stored answers to the once-asked questions (attention checks and the "about you"
    page), by question key."""
    return dict(
        participant.responses.filter(trial__isnull=True).values_list("question__key", "value")
    )


def withdrawal_articles(*, participant: Participant) -> list[Article]:
    """The articles a withdrawn participant read, in the order shown (from their
    WithdrawalLog; their trials are gone). Empty when there is no log."""
    log = WithdrawalLog.objects.filter(participant=participant).first()
    if log is None:
        return []
    by_id = Article.objects.in_bulk(log.article_ids)
    return [by_id[pk] for pk in log.article_ids if pk in by_id]


def completion_link(*, study: Study, code: str) -> str:
    """The study's completion URL with ``{code}`` filled in; empty without a URL or code."""
    if not study.completion_url or not code:
        return ""
    return study.completion_url.replace("{code}", code)
