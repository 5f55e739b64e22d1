"""Chainable queryset methods shared by views, services, admin and analysis."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Self, TypedDict

from django.apps import apps
from django.db import models
from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import Lower, Trim
from django.db.models.lookups import Exact
from django.utils import timezone
from typing_extensions import TypeVar

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from surveys.models import Article, Participant, Question, Response, Study

# The row type of each queryset: the model itself, or the model with the attributes an
# .annotate() added (django-stubs' WithAnnotations), which later methods keep. TypeVar
# defaults (PEP 696) are in typing only from Python 3.13: typing_extensions until then.
_ArticleRow = TypeVar("_ArticleRow", covariant=True, default="Article")
_StudyRow = TypeVar("_StudyRow", covariant=True, default="Study")
_ParticipantRow = TypeVar("_ParticipantRow", covariant=True, default="Participant")
_ResponseRow = TypeVar("_ResponseRow", covariant=True, default="Response")


def check_passed(*, checks: Iterable[Question], path: str = "") -> Q:
    """The rule for passing an attention check, the one place it is written: the answer,
    stripped and lower-cased, equals the check's expected answer, stripped and
    lower-cased. A condition on answers to ``checks`` (the study's attention-check
    questions) that needs no join: each check's expected answer is written into the SQL.
    ``path`` leads from the queried model to the answer ("responses__" from a
    participant). ``surveys.selectors.answer_matches`` applies the same rule to one
    answer in Python."""
    passed = Q(pk__in=[])
    for check in checks:
        expected = check.expected_answer.strip().lower()
        passed |= Q(**{f"{path}question_id": check.pk}) & Q(
            Exact(Lower(Trim(f"{path}value")), expected)
        )
    return passed


class ResponseQuerySet(models.QuerySet["Response", _ResponseRow]):
    def to_checks(self, checks: Iterable[Question]) -> Self:
        """The answers to ``checks`` (attention-check questions, asked once)."""
        return self.filter(trial__isnull=True, question_id__in=[c.pk for c in checks])

    def failing(self, checks: Iterable[Question]) -> Self:
        """The answers to ``checks`` that do not pass (:func:`check_passed`)."""
        checks = list(checks)
        return self.to_checks(checks).exclude(check_passed(checks=checks))


class ArticleQuerySet(models.QuerySet["Article", _ArticleRow]):
    def real(self) -> Self:
        return self.filter(origin="real")

    def generated(self) -> Self:
        return self.filter(origin="generated")

    def in_demo_pool(self) -> Self:
        return self.filter(in_demo_pool=True)


class StudyParticipantCounts(TypedDict):
    """What ``StudyQuerySet.with_participant_counts`` annotates (test sessions apart)."""

    n_completed: int
    n_in_progress: int
    n_test: int


class StudyQuerySet(models.QuerySet["Study", _StudyRow]):
    def accepting(self) -> Self:
        return self.filter(status__in=["pilot", "live"])

    def with_participant_counts(self) -> Self:
        """Each study with ``StudyParticipantCounts``: the admin's list of studies."""
        real = Q(participants__is_test=False)
        return self.annotate(
            n_completed=Count(
                "participants", filter=real & Q(participants__status="completed"), distinct=True
            ),
            n_in_progress=Count(
                "participants", filter=real & Q(participants__status="in_progress"), distinct=True
            ),
            n_test=Count("participants", filter=Q(participants__is_test=True), distinct=True),
        )

    def visible_to(self, user: AbstractBaseUser | AnonymousUser) -> Self:
        """The studies whose data ``user`` may see: every study for an active superuser;
        for other active staff, the studies of the teams they belong to (any role); none
        for anyone else. The one place this rule lives (see surveys.selectors)."""
        if not (user.is_authenticated and user.is_active):
            return self.none()
        if getattr(user, "is_superuser", False):
            return self
        if not getattr(user, "is_staff", False):
            return self.none()
        # One membership per team and user (a constraint), so the join adds no duplicates.
        return self.filter(team__memberships__user=user)


class ParticipantQuerySet(models.QuerySet["Participant", _ParticipantRow]):
    def for_study(self, study: Study) -> Self:
        return self.filter(study=study)

    def real(self) -> Self:
        """Not preview/test sessions."""
        return self.filter(is_test=False)

    def completed(self) -> Self:
        return self.filter(status="completed")

    def holding_a_place(self, study: Study) -> Self:
        """Participants who count towards their condition's fill: completed, or still
        in progress, seen within the study's reservation window, and either sent by a
        panel (a panel id) or having answered something.

        A consent alone costs a client one request and no answers; if it held a place, a
        script could fill a study's quotas for the reservation window and turn real
        participants away. Panels send as many people as they have places and vouch for
        each id, so a panel participant holds a place from consent; someone on an
        anonymous link holds one from their first answer, as a response counts towards
        a quota on the platforms that count only started responses."""
        # By the app registry: the models module imports this one.
        response = apps.get_model("surveys", "Response")
        cutoff = timezone.now() - timedelta(minutes=study.reservation_minutes)
        answered = Exists(response.objects.filter(participant=OuterRef("pk")))
        return self.filter(
            Q(status="completed")
            | (
                Q(status="in_progress", last_seen_at__gte=cutoff)
                & (~Q(panel_pid_hash="") | Q(answered))
            )
        )
