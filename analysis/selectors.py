"""Reads of the analysis API (``analysis.apis``): the querysets its endpoints page
through and serialize. The frames (``analysis.frames``) read the same tables for the
exports and the report, a page of participants at a time with single-table queries; these
are the querysets a paginated endpoint needs (one page of rows, with annotations)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Q, QuerySet

from analysis.frames import RESPONSE_FIELDS
from surveys.models import Condition, Participant, Question, Response, Study, Trial
from surveys.querysets import check_passed
from surveys.selectors import studies_visible_to


def studies_listed_for(*, user: AbstractBaseUser | AnonymousUser) -> list[Study]:
    """The studies ``user`` may read, newest first, each with ``condition_count`` and
    ``participant_count`` (test sessions included)."""
    studies = (
        studies_visible_to(user=user)
        .annotate(
            condition_count=Count("conditions", distinct=True),
            participant_count=Count("participants", distinct=True),
        )
        .order_by("-created_at", "pk")
    )
    return list(studies)


def study_conditions(*, study: Study) -> QuerySet[Condition]:
    """The study's conditions by id, each with ``article_count`` (its pool) and
    ``completed_participants`` (completed real participations assigned to it)."""
    return (
        Condition.objects.filter(study=study)
        .annotate(
            article_count=Count("articles", distinct=True),
            completed_participants=Count(
                "participants",
                filter=Q(
                    participants__status=Participant.Status.COMPLETED, participants__is_test=False
                ),
                distinct=True,
            ),
        )
        .order_by("pk")
    )


def study_participants(
    *, study: Study, condition: str | None, status: str | None, is_test: bool | None
) -> QuerySet[Participant]:
    """The study's participations by id, filtered on ``condition`` (assigned, or shown
    an article of it), ``status`` and ``is_test`` where given (None: any), each with
    ``checks_answered`` and ``checks_failed`` over its attention checks."""
    queryset = Participant.objects.filter(study=study).select_related("condition")
    if condition is not None:
        # Within-subjects participants have no condition of their own: match the
        # conditions of the articles they were shown (a subquery, so no row fan-out
        # reaches the Count annotations below).
        shown = Trial.objects.filter(participant__study=study, condition__name=condition)
        queryset = queryset.filter(
            Q(condition__name=condition) | Q(pk__in=shown.values("participant_id"))
        )
    if status is not None:
        queryset = queryset.filter(status=status)
    if is_test is not None:
        queryset = queryset.filter(is_test=is_test)
    checks = list(study.questions.filter(scope=Question.Scope.ATTENTION_CHECK).order_by())
    attention = Q(responses__trial__isnull=True, responses__question_id__in=[c.pk for c in checks])
    return queryset.annotate(
        checks_answered=Count("responses", filter=attention),
        checks_failed=Count(
            "responses", filter=attention & ~check_passed(checks=checks, path="responses__")
        ),
    ).order_by("pk")


def study_responses(
    *,
    study: Study,
    include_test: bool,
    condition: str | None,
    question_key: str | None,
    article_origin: str | None,
) -> QuerySet[Response]:
    """Ratings about articles, in the long CSV's row order, filtered on the very lookups
    that fill the long CSV's ``condition``, ``question_key`` and ``article_origin``."""
    queryset = Response.objects.filter(participant__study=study, trial__isnull=False)
    if not include_test:
        queryset = queryset.filter(participant__is_test=False)
    for column, value in (
        ("condition", condition),
        ("question_key", question_key),
        ("article_origin", article_origin),
    ):
        if value is not None:
            queryset = queryset.filter(**{RESPONSE_FIELDS[column]: value})
    return queryset.order_by(
        "participant_id", "trial__position", "question__position", "question_id", "pk"
    )
