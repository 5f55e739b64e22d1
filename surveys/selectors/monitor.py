"""The live monitor of a study: started and completed per condition against the quotas,
times, check failures, per-article exposure."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.db.models.expressions import CombinedExpression

from surveys.models import Article, Condition, Participant, Question, Response, Study, Trial
from surveys.querysets import check_passed
from surveys.selectors.participation import study_design


@dataclass(frozen=True)
class ParticipantStats:
    """Participations of a condition (or of the whole study), test sessions left out."""

    started: int
    in_progress: int
    completed: int
    screened_out: int
    withdrawn: int
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
    quota: int | None
    per_participant: int  # articles each participant reads from it (within-subjects)
    # None in within-subjects designs, where participants have no condition of their own.
    participants: ParticipantStats | None
    test_sessions: int
    # The articles in the condition now, then any handed out before they were removed.
    articles: tuple[ArticleMonitor, ...]
    n_articles: int  # in the condition now

    @property
    def trials_assigned(self) -> int:
        return sum(article.assigned for article in self.articles)

    @property
    def trials_rated(self) -> int:
        return sum(article.rated for article in self.articles)


@dataclass(frozen=True)
class StudyMonitor:
    within: bool
    total: ParticipantStats
    test_sessions: int
    conditions: tuple[ConditionMonitor, ...]


def _duration(start: str, end: str) -> ExpressionWrapper[CombinedExpression]:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def _median_seconds(values: Iterable[timedelta | None]) -> float | None:
    seconds = [value.total_seconds() for value in values if value is not None]
    return statistics.median(seconds) if seconds else None


def study_monitor(*, study: Study) -> StudyMonitor:
    """Per condition and per article: participants started, in progress, completed,
    screened out and withdrawn, test sessions, median time to complete, attention-check
    failure rate, and article exposure with its median reading time. Counts are SQL
    aggregates; medians are taken over the durations SQL computes (SQLite has no median
    aggregate), one query per kind of duration. Both monitors of the study's admin page
    (the counts against the quotas, and quality and articles) are drawn from it."""
    real = Participant.objects.for_study(study).real()
    completed = real.completed()
    not_test = Q(is_test=False)
    counts = {
        row["condition_id"]: row
        for row in Participant.objects.for_study(study)
        .values("condition_id")
        .annotate(
            started=Count("pk", filter=not_test),
            **{
                status.value: Count("pk", filter=not_test & Q(status=status))
                for status in Participant.Status
            },
            tests=Count("pk", filter=Q(is_test=True)),
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
    checks = study_design(study=study).questions(Question.Scope.ATTENTION_CHECK)
    check_rows = {
        row["participant__condition_id"]: row
        for row in Response.objects.filter(participant__in=completed)
        .to_checks(checks)
        .values("participant__condition_id")
        .annotate(
            answered=Count("participant_id", distinct=True),
            failed=Count("participant_id", filter=~check_passed(checks=checks), distinct=True),
        )
        .order_by()
    }

    def stats_of(keys: Iterable[int | None]) -> ParticipantStats:
        keys = list(keys)
        return ParticipantStats(
            started=sum(counts.get(k, {}).get("started", 0) for k in keys),
            in_progress=sum(counts.get(k, {}).get("in_progress", 0) for k in keys),
            completed=sum(counts.get(k, {}).get("completed", 0) for k in keys),
            screened_out=sum(counts.get(k, {}).get("screened_out", 0) for k in keys),
            withdrawn=sum(counts.get(k, {}).get("withdrawn", 0) for k in keys),
            median_completion_s=_median_seconds(t for k in keys for t in completion_times[k]),
            checks_answered=sum(check_rows.get(k, {}).get("answered", 0) for k in keys),
            checks_failed=sum(check_rows.get(k, {}).get("failed", 0) for k in keys),
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
    in_condition = set(
        Condition.articles.through.objects.filter(condition__study=study).values_list(
            "condition_id", "article_id"
        )
    )
    pairs = set(exposure) | in_condition
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
                quota=condition.quota,
                per_participant=condition.per_participant,
                participants=None if within else stats_of([condition.pk]),
                test_sessions=counts.get(condition.pk, {}).get("tests", 0),
                articles=tuple(rows),
                n_articles=sum(c == condition.pk for c, _ in in_condition),
            )
        )
    return StudyMonitor(
        within=within,
        total=stats_of(set(counts) | set(completion_times)),
        test_sessions=sum(row["tests"] for row in counts.values()),
        conditions=tuple(conditions),
    )
