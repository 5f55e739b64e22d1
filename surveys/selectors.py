"""Reads shared by the participant pages, the admin and the simulation bot."""

from __future__ import annotations

import functools
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote
from uuid import UUID

from django.db.models import Count, DurationField, ExpressionWrapper, F, Model, Q, QuerySet
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Lower, Trim
from django.db.models.lookups import Exact

from studyplatform.measures.planning import power_two_proportions, sample_size_two_proportions
from surveys.models import (
    Article,
    Condition,
    Participant,
    Question,
    Response,
    Study,
    Team,
    TeamMembership,
    Trial,
    WithdrawalLog,
    completion_url_is_safe,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


@dataclass(frozen=True)
class Step:
    """Where a participant is in the flow. ``position`` is set for trial steps (the
    article's position) and check steps (the position of the article they follow)."""

    # "instructions" | "comprehension" | "trial" | "check" | "about" | "finish" | "done"
    # | "withdrawn" | "screened_out"
    name: str
    position: int | None = None


@dataclass(frozen=True)
class StudyDesign:
    """What the participant pages need of a study's design: its questions by scope (in
    the order asked), which questions are required, and whether every condition has a
    quota. Immutable once built; see :func:`study_design`."""

    study_id: int
    by_scope: Mapping[str, tuple[Question, ...]]
    required_ids: frozenset[int]
    # True when the study has conditions and each has a quota: only then can completing
    # a participation fill the study (services.study_close_if_full).
    every_condition_has_quota: bool

    def questions(self, scope: str) -> list[Question]:
        return list(self.by_scope.get(scope, ()))

    @functools.cached_property
    def keys_by_id(self) -> Mapping[int, str]:
        """Every question's key, by its id."""
        return {q.pk: q.key for questions in self.by_scope.values() for q in questions}


def _design_build(study_id: int) -> StudyDesign:
    by_scope: dict[str, list[Question]] = {}
    for question in Question.objects.filter(study_id=study_id).order_by("position", "id"):
        by_scope.setdefault(question.scope, []).append(question)
    quotas = list(Condition.objects.filter(study_id=study_id).values_list("quota", flat=True))
    return StudyDesign(
        study_id=study_id,
        by_scope={scope: tuple(questions) for scope, questions in by_scope.items()},
        required_ids=frozenset(q.pk for qs in by_scope.values() for q in qs if q.required),
        every_condition_has_quota=bool(quotas) and all(q is not None for q in quotas),
    )


@functools.lru_cache(maxsize=128)
def _frozen_design(study_id: int, design_hash: str) -> StudyDesign:
    # ``design_hash`` is only part of the key: a study whose frozen design were ever
    # replaced (it cannot be: live and closed designs are locked) would get a new entry.
    return _design_build(study_id)


def study_design(*, study: Study) -> StudyDesign:
    """The study's design as the participant pages use it.

    A live or closed study's design is frozen (its hash was stored when it went live and
    the admin locks it), so it is read from the database once per process and kept,
    keyed by the study and its design hash: derived, immutable data that every process
    computes alike, so no process holds anything another one needs. Drafts and pilots
    (editable designs) and any study without a stored hash are read afresh every time."""
    if study.is_design_locked and study.design_hash:
        return _frozen_design(study.pk, study.design_hash)
    return _design_build(study.pk)


def study_articles_per_participant(*, study: Study) -> int:
    """How many articles each participant reads: the study's setting in a between-subjects
    design, the sum of the conditions' ``per_participant`` in a within-subjects one."""
    if study.design == Study.Design.WITHIN:
        return sum(study.conditions.values_list("per_participant", flat=True))
    return study.articles_per_participant


def questions_for(*, study: Study, scope: str) -> list[Question]:
    return study_design(study=study).questions(scope)


def check_slot(*, after_article: int | None, n_articles: int) -> int:
    """The position of the article an attention check follows for a participant with
    ``n_articles`` articles: its ``after_article``, or the last article when that is
    empty or beyond the participant's articles (a design edited during a pilot)."""
    if after_article is None or after_article > n_articles:
        return n_articles
    return max(after_article, 1)


def check_pages(*, study: Study, n_articles: int) -> dict[int, list[Question]]:
    """The attention checks by the article position they follow; checks at the same
    point share one page. Ordered as the questions are."""
    return _check_pages(study_design(study=study), n_articles)


def _check_pages(design: StudyDesign, n_articles: int) -> dict[int, list[Question]]:
    pages: dict[int, list[Question]] = {}
    for question in design.questions(Question.Scope.ATTENTION_CHECK):
        slot = check_slot(after_article=question.after_article, n_articles=n_articles)
        pages.setdefault(slot, []).append(question)
    return dict(sorted(pages.items()))


def answer_matches(*, question: Question, value: str) -> bool:
    """Whether a stored answer is a check's expected answer (case and surrounding
    spaces aside)."""
    return value.strip().lower() == question.expected_answer.strip().lower()


def comprehension_passed(*, participant: Participant) -> bool:
    """True when the study asks no comprehension questions, or when the stored answers
    (those of the participant's last try) are all right."""
    questions = questions_for(study=participant.study, scope=Question.Scope.COMPREHENSION)
    if not questions:
        return True
    stored = dict(
        participant.responses.filter(trial__isnull=True, question__in=questions).values_list(
            "question_id", "value"
        )
    )
    return _comprehension_passed(questions, stored)


def _comprehension_passed(questions: list[Question], stored: Mapping[int, str]) -> bool:
    return all(q.pk in stored and answer_matches(question=q, value=stored[q.pk]) for q in questions)


# A stored answer's place: (its trial's id, or None for a once-asked question; the
# question's id).
AnswerKey = tuple[int | None, int]


@dataclass(frozen=True)
class ParticipantProgress:
    """Where a participant is (their next step) and how many articles they have, with
    what that was derived from: their trials' (id, position) and their stored answers.
    A page prefills its form from those, and after storing answers derives the next
    step from them (:func:`progress_after_answers`) instead of reading them back."""

    step: Step
    n_articles: int
    trials: tuple[tuple[int, int], ...] = ()
    answers: Mapping[AnswerKey, str] = field(default_factory=dict)

    def values(self, *, design: StudyDesign, trial_id: int | None) -> dict[str, str]:
        """The stored answers of one trial (or, for None, the once-asked questions'),
        by question key: what a form is prefilled with."""
        keys = design.keys_by_id
        return {
            keys[question_id]: value
            for (answer_trial, question_id), value in self.answers.items()
            if answer_trial == trial_id and question_id in keys
        }


def participant_progress(*, participant: Participant) -> ParticipantProgress:
    """The participant's next step (:func:`participant_next_step`) and their number of
    articles, from two queries (their trials, their answers) and the study's design."""
    trials = tuple(participant.trials.order_by("position").values_list("pk", "position"))
    # order_by(): the models' default orderings (a response by participant, trial and
    # question, each by its own ordering) would join four tables for nothing.
    answers: dict[AnswerKey, str] = {
        (trial_id, question_id): value
        for trial_id, question_id, value in participant.responses.order_by().values_list(
            "trial_id", "question_id", "value"
        )
    }
    return _progress(participant, trials, answers)


def progress_after_answers(
    *,
    participant: Participant,
    progress: ParticipantProgress,
    trial_id: int | None,
    answers: Iterable[tuple[Question, str]],
) -> ParticipantProgress:
    """The progress once ``answers`` (to one trial, or once-asked for None) are stored:
    ``progress`` (read before they were) with them added, for ``participant`` as it is
    now (its status and flags as the writing service left them). No query: a page that
    has just stored its answers knows them. Answers another tab stored meanwhile are
    not seen, which at worst sends the participant to a page they have already
    answered, shown prefilled."""
    merged: dict[AnswerKey, str] = dict(progress.answers)
    merged.update({(trial_id, question.pk): value for question, value in answers})
    return _progress(participant, progress.trials, merged)


def _progress(
    participant: Participant,
    trials: tuple[tuple[int, int], ...],
    answers: Mapping[AnswerKey, str],
) -> ParticipantProgress:
    def progress(step: Step) -> ParticipantProgress:
        return ParticipantProgress(step, len(trials), trials, answers)

    if participant.status == Participant.Status.COMPLETED:
        return progress(Step("done"))
    if participant.status == Participant.Status.WITHDRAWN:
        return progress(Step("withdrawn"))
    if participant.status == Participant.Status.SCREENED_OUT:
        return progress(Step("screened_out"))
    if participant.instructions_seen_at is None:
        return progress(Step("instructions"))
    design = study_design(study=participant.study)
    once: dict[int, str] = {}
    answered: dict[int, int] = defaultdict(int)
    for (trial_id, question_id), value in answers.items():
        if trial_id is None:
            once[question_id] = value
        elif question_id in design.required_ids:
            answered[trial_id] += 1
    return progress(_next_step(participant, design, list(trials), once, answered))


def _next_step(
    participant: Participant,
    design: StudyDesign,
    trials: list[tuple[int, int]],
    once: Mapping[int, str],
    answered: Mapping[int, int],
) -> Step:
    if not _comprehension_passed(design.questions(Question.Scope.COMPREHENSION), once):
        return Step("comprehension")
    required = sum(
        1 for q in design.questions(Question.Scope.PER_ARTICLE) if q.pk in design.required_ids
    )
    pages = _check_pages(design, len(trials))
    for trial_id, position in trials:
        if answered.get(trial_id, 0) < required:
            return Step("trial", position)
        if any(q.required and q.pk not in once for q in pages.get(position, [])):
            return Step("check", position)
    about = design.questions(Question.Scope.PARTICIPANT)
    # Submitted once (its questions may all be optional) and every required one in: a
    # required question added by a pilot's edit brings the page back.
    if about and (
        participant.about_submitted_at is None
        or any(q.required and q.pk not in once for q in about)
    ):
        return Step("about")
    return Step("finish")


def participant_next_step(*, participant: Participant) -> Step:
    """The first thing this participant still has to do. Derived from stored answers
    only, so a refresh, a second tab or a return visit all land on the same step.

    The sequence: instructions, comprehension questions (when the study has any), the
    articles with the attention-check pages among them (after the article each check
    names), the "about you" page, finish."""
    return participant_progress(participant=participant).step


def participant_trials(*, participant: Participant) -> list[Trial]:
    return list(participant.trials.select_related("article").order_by("position"))


def participant_passed_checks(*, participant: Participant) -> bool:
    """True when every attention check was answered with its expected answer."""
    for response in (
        participant.responses.filter(
            trial__isnull=True, question__scope=Question.Scope.ATTENTION_CHECK
        )
        .order_by()
        .select_related("question")
    ):
        if not answer_matches(question=response.question, value=response.value):
            return False
    return True


# Rank of each step in the sequence; articles and the check pages among them share a
# rank and are ordered by position, a check page right after the article it follows.
_STEP_ORDER = {
    "instructions": 0,
    "comprehension": 1,
    "trial": 2,
    "check": 2,
    "about": 3,
    "finish": 4,
}
_FINAL_STEPS = ("done", "withdrawn", "screened_out")


def _step_key(step: Step) -> tuple[int, int, int]:
    return (_STEP_ORDER[step.name], step.position or 0, 1 if step.name == "check" else 0)


def step_is_reachable(*, requested: Step, current: Step) -> bool:
    """Whether a participant whose next step is ``current`` may open ``requested``:
    any step up to the current one (going back is allowed), nothing beyond it. Once
    the comprehension questions are passed they cannot be retaken; after the end (done,
    withdrawn, screened out) only that end is reachable."""
    if current.name in _FINAL_STEPS or requested.name in _FINAL_STEPS:
        return requested.name == current.name
    if requested.name == "comprehension":
        return current.name == "comprehension"
    return _step_key(requested) <= _step_key(current)


def participant_by_token(*, token: UUID | str) -> Participant | None:
    # Unordered: the token is unique, and the default ordering (by study, whose own is
    # by creation) would only cost compiling and sorting.
    rows = Participant.objects.select_related("study", "condition").filter(token=token)
    return next(iter(rows.order_by()[:1]), None)


def withdrawal_articles(*, participant: Participant) -> list[Article]:
    """The articles a withdrawn participant read, in the order shown (from their
    WithdrawalLog; their trials are gone). Empty when there is no log."""
    log = WithdrawalLog.objects.filter(participant=participant).first()
    if log is None:
        return []
    by_id = Article.objects.in_bulk(log.article_ids)
    return [by_id[pk] for pk in log.article_ids if pk in by_id]


def completion_link(*, study: Study, code: str) -> str:
    """The study's completion URL with ``{code}`` filled in; empty without a URL or code,
    and empty when the stored URL is not http(s) (a row written before the validator):
    participants then see their code without a link. Only the study's own URL is ever
    linked; nothing from the request takes part."""
    if not study.completion_url or not code or not completion_url_is_safe(study.completion_url):
        return ""
    return study.completion_url.replace("{code}", quote(code, safe=""))


# ---------------------------------------------------------------------------------------
# Who sees which study. The rule itself is StudyQuerySet.visible_to; everything that
# shows study data (admin, results pages, exports, API) asks these functions.

SUPERUSER = "superuser"
_EDITING_ROLES = frozenset({SUPERUSER, TeamMembership.Role.RESEARCHER})


def studies_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Study]:
    """The studies whose design and data ``user`` may see: all of them for superusers,
    their teams' studies for other staff, none for anyone else. A study without a team is
    seen by superusers only."""
    return Study.objects.visible_to(user)


def study_role_of(*, user: AbstractBaseUser | AnonymousUser, study: Study) -> str | None:
    """``"superuser"``, the user's team role for the study (``"researcher"`` or
    ``"analyst"``), or None when the user may not see the study at all."""
    if not (user.is_authenticated and user.is_active):
        return None
    if getattr(user, "is_superuser", False):
        return SUPERUSER
    if not getattr(user, "is_staff", False) or study.team_id is None:
        return None
    return (
        TeamMembership.objects.filter(team_id=study.team_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def role_can_edit(role: str | None) -> bool:
    """Whether a role returned by :func:`study_role_of` may change designs and the
    lifecycle (researchers and superusers) rather than only view and export (analysts)."""
    return role in _EDITING_ROLES


def user_roles(*, user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """Every role the user holds in any team (``{"superuser"}`` for superusers): whether
    the admin shows the study pages at all, and whether the user may add a study."""
    if not (user.is_authenticated and user.is_active):
        return frozenset()
    if getattr(user, "is_superuser", False):
        return frozenset({SUPERUSER})
    if not getattr(user, "is_staff", False):
        return frozenset()
    return frozenset(TeamMembership.objects.filter(user_id=user.pk).values_list("role", flat=True))


def studies_editable_by(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Study]:
    """The visible studies whose design and lifecycle ``user`` may change: all of them for
    superusers, those of the teams where the user is a researcher otherwise (whether the
    design is still unlocked is a separate question, see ``study_assert_editable``)."""
    visible = studies_visible_to(user=user)
    if getattr(user, "is_superuser", False):
        return visible
    # A subquery: a second filter() over team__memberships would join the memberships
    # again and match a team where *someone* is a researcher.
    return visible.filter(team__in=teams_for_new_study(user=user))


def teams_for_new_study(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Team]:
    """The teams a study created or moved by ``user`` may belong to: any team for a
    superuser, the teams where the user is a researcher otherwise."""
    if not (user.is_authenticated and user.is_active):
        return Team.objects.none()
    if getattr(user, "is_superuser", False):
        return Team.objects.all()
    if not getattr(user, "is_staff", False):
        return Team.objects.none()
    return Team.objects.filter(
        memberships__user_id=user.pk, memberships__role=TeamMembership.Role.RESEARCHER
    )


# ---------------------------------------------------------------------------------------
# Team-owned pools: articles and generation runs. An object with a team belongs to it:
# its members see it, its researchers change it. One without a team is shared (the
# imported corpus, runs from before teams owned runs): every team member reads it, and
# only superusers or holders of Django's model permission (granted by a superuser to the
# pool's curators) change it.


M = TypeVar("M", bound=Model)


def _has_perm(user: AbstractBaseUser | AnonymousUser, perm: str) -> bool:
    # AbstractBaseUser lacks has_perm in the stubs; the project's users (auth.User) have it.
    has_perm = getattr(user, "has_perm", None)
    return bool(has_perm is not None and has_perm(perm))


def _own_teams(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user_id=user.pk or 0)


def pool_visible_to(
    *,
    user: AbstractBaseUser | AnonymousUser,
    queryset: QuerySet[M],
    view_perm: str,
    team_path: str = "team",
) -> QuerySet[M]:
    """``queryset`` narrowed to what ``user`` may see: everything for superusers; for
    other active staff, their teams' objects, and the shared ones (no team) when they
    hold a team role or ``view_perm``; nothing for anyone else."""
    if not (user.is_authenticated and user.is_active and getattr(user, "is_staff", False)):
        return queryset.none()
    if getattr(user, "is_superuser", False):
        return queryset
    mine = Q(**{f"{team_path}__in": _own_teams(user=user)})
    if user_roles(user=user) or _has_perm(user, view_perm):
        mine |= Q(**{f"{team_path}__isnull": True})
    return queryset.filter(mine)


def pool_editable_by(
    *, user: AbstractBaseUser | AnonymousUser, team_id: int | None, perm: str
) -> bool:
    """Whether ``user`` may change an object of a team-owned pool whose team is
    ``team_id``: superusers; researchers of that team; for a shared object, ``perm``."""
    if not (user.is_authenticated and user.is_active and getattr(user, "is_staff", False)):
        return False
    if getattr(user, "is_superuser", False):
        return True
    if team_id is None:
        return _has_perm(user, perm)
    return teams_for_new_study(user=user).filter(pk=team_id).exists()


def article_editable_by(
    *, user: AbstractBaseUser | AnonymousUser, article: Article, perm: str
) -> bool:
    """Whether ``user`` may change (``perm`` "surveys.change_article") or delete
    ("surveys.delete_article") ``article``: the pool rule, and, below superusers, no
    study the user may not edit uses it, whatever its status, so nobody changes the text
    another team's draft is about to show. (Live and closed studies lock their articles
    for everyone: ``surveys.admin``.)"""
    if not pool_editable_by(user=user, team_id=article.team_id, perm=perm):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return not (
        Study.objects.filter(conditions__articles=article)
        .exclude(pk__in=studies_editable_by(user=user).values("pk"))
        .exists()
    )


# ---------------------------------------------------------------------------------------
# The live monitor


@dataclass(frozen=True)
class ParticipantStats:
    """Participations of a condition (or of the whole study), test sessions left out."""

    started: int
    completed: int
    screened_out: int
    # Consent to completion, over completers; None before anyone completed.
    median_completion_s: float | None
    # Completers who answered at least one attention check, and those of them who
    # failed at least one (compared stripped and case-insensitively, as the flow does).
    checks_answered: int
    checks_failed: int

    @property
    def check_failure_rate(self) -> float | None:
        if not self.checks_answered:
            return None
        return self.checks_failed / self.checks_answered


@dataclass(frozen=True)
class ArticleMonitor:
    """How often one article of a condition was handed out, shown, rated, and rated by
    someone who went on to complete; test sessions left out."""

    article_id: int
    title: str
    origin: str
    assigned: int
    started: int
    rated: int
    completed: int
    # First shown to answered (server clock), over rated trials.
    median_reading_s: float | None


@dataclass(frozen=True)
class ConditionMonitor:
    name: str
    label: str
    # None in within-subjects designs, where participants have no condition of their own.
    participants: ParticipantStats | None
    articles: tuple[ArticleMonitor, ...]


@dataclass(frozen=True)
class StudyMonitor:
    total: ParticipantStats
    conditions: tuple[ConditionMonitor, ...]


def _duration(start: str, end: str) -> ExpressionWrapper[CombinedExpression]:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def _median_seconds(values: Iterable[timedelta | None]) -> float | None:
    seconds = [value.total_seconds() for value in values if value is not None]
    return statistics.median(seconds) if seconds else None


_CHECK_PASSED: Exact[str] = Exact(Lower(Trim("value")), Lower(Trim("question__expected_answer")))


def study_monitor(*, study: Study) -> StudyMonitor:
    """Per condition and per article: participants started, completed and screened out,
    median time to complete, attention-check failure rate, and article exposure with its
    median reading time. Counts are SQL aggregates; medians are taken over the durations
    SQL computes (SQLite has no median aggregate), one query per kind of duration."""
    real = Participant.objects.filter(study=study, is_test=False)
    completed = real.filter(status=Participant.Status.COMPLETED)
    counts = {
        row["condition_id"]: row
        for row in real.values("condition_id")
        .annotate(
            started=Count("pk"),
            completed=Count("pk", filter=Q(status=Participant.Status.COMPLETED)),
            screened_out=Count("pk", filter=Q(status=Participant.Status.SCREENED_OUT)),
        )
        .order_by()
    }
    completion_times: dict[int | None, list[timedelta | None]] = defaultdict(list)
    for condition_id, took in (
        completed.filter(completed_at__isnull=False)
        .annotate(took=_duration("consented_at", "completed_at"))
        .values_list("condition_id", "took")
    ):
        completion_times[condition_id].append(took)
    checks = {
        row["participant__condition_id"]: row
        for row in Response.objects.filter(
            participant__in=completed,
            trial__isnull=True,
            question__scope=Question.Scope.ATTENTION_CHECK,
        )
        .values("participant__condition_id")
        .annotate(
            answered=Count("participant_id", distinct=True),
            failed=Count("participant_id", filter=~Q(_CHECK_PASSED), distinct=True),
        )
        .order_by()
    }

    def stats_of(keys: Iterable[int | None]) -> ParticipantStats:
        keys = list(keys)
        return ParticipantStats(
            started=sum(counts.get(k, {}).get("started", 0) for k in keys),
            completed=sum(counts.get(k, {}).get("completed", 0) for k in keys),
            screened_out=sum(counts.get(k, {}).get("screened_out", 0) for k in keys),
            median_completion_s=_median_seconds(t for k in keys for t in completion_times[k]),
            checks_answered=sum(checks.get(k, {}).get("answered", 0) for k in keys),
            checks_failed=sum(checks.get(k, {}).get("failed", 0) for k in keys),
        )

    trials = Trial.objects.filter(participant__in=real)
    exposure = {
        (row["condition_id"], row["article_id"]): row
        for row in trials.values("condition_id", "article_id")
        .annotate(
            assigned=Count("pk"),
            started=Count("pk", filter=Q(first_shown_at__isnull=False)),
            rated=Count("pk", filter=Q(answered_at__isnull=False)),
            completed=Count("pk", filter=Q(participant__status=Participant.Status.COMPLETED)),
        )
        .order_by()
    }
    reading_times: dict[tuple[int | None, int], list[timedelta | None]] = defaultdict(list)
    for condition_id, article_id, took in (
        trials.filter(first_shown_at__isnull=False, answered_at__isnull=False)
        .annotate(took=_duration("first_shown_at", "answered_at"))
        .values_list("condition_id", "article_id", "took")
    ):
        reading_times[(condition_id, article_id)].append(took)
    pairs = set(exposure) | set(
        Condition.articles.through.objects.filter(condition__study=study).values_list(
            "condition_id", "article_id"
        )
    )
    articles = Article.objects.only("title", "origin").in_bulk({a for _, a in pairs})

    within = study.design == Study.Design.WITHIN
    conditions = []
    for condition in study.conditions.order_by("id"):
        rows = []
        for article_id in sorted(a for c, a in pairs if c == condition.pk):
            seen: Mapping[str, int] = exposure.get((condition.pk, article_id), {})
            rows.append(
                ArticleMonitor(
                    article_id=article_id,
                    title=articles[article_id].title,
                    origin=articles[article_id].origin,
                    assigned=seen.get("assigned", 0),
                    started=seen.get("started", 0),
                    rated=seen.get("rated", 0),
                    completed=seen.get("completed", 0),
                    median_reading_s=_median_seconds(reading_times[(condition.pk, article_id)]),
                )
            )
        conditions.append(
            ConditionMonitor(
                name=condition.name,
                label=condition.label,
                participants=None if within else stats_of([condition.pk]),
                articles=tuple(rows),
            )
        )
    return StudyMonitor(
        total=stats_of(set(counts) | set(completion_times)), conditions=tuple(conditions)
    )


# ---------------------------------------------------------------------------------------
# Power at design time

# The GPT-2 release's headline rates: 83% of people found real New York Times articles
# credible, 72% found GPT-2 774M's (Solaiman et al. 2019, "Release strategies and the
# social impacts of language models", section on the Kreps et al. study).
CLASSIC_RATES = (0.83, 0.72)


@dataclass(frozen=True)
class PowerPlanRow:
    """One comparison of a condition with the reference condition."""

    condition: str
    reference: str
    p_reference: float
    p_condition: float
    # Participants per condition for the planned power, rounded up; None for equal rates.
    n_needed: int | None
    quota_reference: int | None
    quota_condition: int | None
    # Power of the comparison at the two quotas; None unless both are set.
    quota_power: float | None


@dataclass(frozen=True)
class PowerPlan:
    alpha: float
    power: float
    reference: str | None
    rows: tuple[PowerPlanRow, ...] = field(default_factory=tuple)


def study_power_plan(
    *,
    study: Study,
    rates: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> PowerPlan:
    """For the reference condition against each other condition: participants per
    condition that the two-sided two-proportion z test (R ``power.prop.test``'s normal
    approximation, :mod:`studyplatform.measures.planning`) needs at ``alpha`` to reach
    ``power`` if the credible rates are as planned, and the power the current quotas give.

    ``rates`` maps condition names to planned credible rates; conditions left out get the
    classic GPT-2 numbers (0.83 for the reference, 0.72 for the others). Each participant
    is counted as one independent rating: with several articles per participant their
    ratings are correlated, so this is the conservative count."""
    planned = dict(rates or {})
    conditions = list(study.conditions.order_by("id"))
    reference = next((c for c in conditions if c.is_reference), None)
    if reference is None:
        return PowerPlan(alpha=alpha, power=power, reference=None)
    within = study.design == Study.Design.WITHIN
    p_ref = planned.get(reference.name, CLASSIC_RATES[0])
    rows = []
    for condition in conditions:
        if condition.pk == reference.pk:
            continue
        p = planned.get(condition.name, CLASSIC_RATES[1])
        n_needed = (
            None
            if p == p_ref
            else math.ceil(sample_size_two_proportions(p_ref, p, alpha=alpha, power=power))
        )
        quotas = (None, None) if within else (reference.quota, condition.quota)
        quota_power = (
            power_two_proportions(p_ref, p, quotas[0], quotas[1], alpha=alpha)
            if quotas[0] and quotas[1] and p != p_ref
            else None
        )
        rows.append(
            PowerPlanRow(
                condition=condition.name,
                reference=reference.name,
                p_reference=p_ref,
                p_condition=p,
                n_needed=n_needed,
                quota_reference=quotas[0],
                quota_condition=quotas[1],
                quota_power=quota_power,
            )
        )
    return PowerPlan(alpha=alpha, power=power, reference=reference.name, rows=tuple(rows))
