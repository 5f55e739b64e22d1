"""Exclusion rules: which completed participants a study's pre-registered rules remove.

One implementation for everything that counts exclusions: the admin monitor, the analysis
ledger, the exports. Test sessions, incomplete and screened-out participations are always
out before any rule is looked at; the rules judge completed, non-test participants only,
in order, and each excluded participant is recorded with the first rule that removed them.

The rules (``ExclusionRule.kind``):

``failed_check``
    Answered at least one attention check with something other than its expected answer,
    compared stripped and case-insensitively (as ``selectors.participant_passed_checks``).
``too_fast``
    Read their articles, taken together, faster than ``threshold`` words per second: the
    words of every timed article divided by the time spent on them. An article's time is
    the time its page was visible in the browser when JavaScript measured it, otherwise
    the server's time from first showing the page to the accepted answer. One overall
    speed rather than "any article": a participant who skims one story they already knew
    is not removed for it, while one who clicks through everything is. Participants with
    no timed article are not judged.
``straight_lining``
    Gave one and the same answer to a rating-scale or slider question about every article
    they rated (at least two). With ``question_key``, that question; without, every such
    question the participant answered on two or more articles (and there is at least
    one): they are removed only when none of those questions varies.

``duplicate_browser``, ``network_burst``, ``honeypot``, ``copied``, ``pasted``, ``no_javascript``
    The fraud and assisted-answering signals of ``surveys.fraud``, judged there:
    a participation flagged by the signal is removed. ``copied`` and ``pasted`` take a
    ``threshold``, the number of times (over all articles) that removes a participant,
    once when empty. ``network_burst`` uses the site's burst limits
    (``CREDENCE_BURST_PARTICIPATIONS`` within ``CREDENCE_BURST_MINUTES``), which the
    label spells out so that the ledger reports them.

Studies that pre-date the rules excluded failed attention checks implicitly. To keep
their analyses (and their frozen design hashes) unchanged, a study with attention checks
and no ``failed_check`` rule of its own gets one implicitly, applied before its other
rules; a researcher who wants it elsewhere in the order adds it explicitly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, F, FloatField, Func, Q, QuerySet, Sum
from django.db.models.sql.compiler import SQLCompiler

from surveys import fraud
from surveys.models import ExclusionRule, Participant, Question, Response, Study, Trial
from surveys.selectors import study_articles_per_participant

_CHUNK = 5000
RATING_KINDS = (Question.Kind.LIKERT, Question.Kind.SLIDER)


@dataclass(frozen=True)
class AppliedRule:
    """One exclusion rule as applied: ``key`` is the short code exports use for it
    (``attention``, ``too_fast``, ``straight_lining`` or ``straight_lining_<question>``,
    with ``_2``, ``_3`` for repeats), ``label`` the sentence reports show, ``implicit``
    True for the failed-check rule a study gets without having it on record."""

    key: str
    label: str
    # Not compared or hashed: the implicit rule is an unsaved (unhashable) model instance.
    rule: ExclusionRule = field(compare=False)
    implicit: bool = False


def exclusion_rule_label(rule: ExclusionRule) -> str:
    """What the rule removes, in words: "Read faster than 15 words per second"."""
    if rule.kind == ExclusionRule.Kind.FAILED_CHECK:
        return "Failed an attention check"
    if rule.kind == ExclusionRule.Kind.TOO_FAST:
        if rule.threshold is None:
            return "Read faster than (speed not set) words per second"
        return f"Read faster than {rule.threshold:g} words per second"
    if fraud.is_signal_rule(rule):
        return _signal_rule_label(rule)
    if rule.question_key:
        return f'Straight-lining: the same answer to "{rule.question_key}" on every article'
    return "Straight-lining: the same answer to each rating question on every article"


def _signal_rule_label(rule: ExclusionRule) -> str:
    times = fraud.signal_threshold(rule)
    if rule.kind == ExclusionRule.Kind.COPIED:
        return f"Copied article text {times} time{'s' if times != 1 else ''} or more"
    if rule.kind == ExclusionRule.Kind.PASTED:
        return f"Pasted into a free-text answer {times} time{'s' if times != 1 else ''} or more"
    if rule.kind == ExclusionRule.Kind.NETWORK_BURST:
        limits = fraud.burst_limits()
        return (
            f"Arrived in a burst: more than {limits.participations} participations from one "
            f"network within {limits.minutes} minutes"
        )
    return str(rule.get_kind_display())


def _base_key(rule: ExclusionRule) -> str:
    if rule.kind == ExclusionRule.Kind.FAILED_CHECK:
        # The code the exports used before rules existed.
        return "attention"
    if rule.kind == ExclusionRule.Kind.STRAIGHT_LINING and rule.question_key:
        return f"straight_lining_{rule.question_key}"
    return str(rule.kind)


def study_exclusion_rules(*, study: Study) -> list[AppliedRule]:
    """The rules applied to the study's completed participants, in the order they apply:
    the implicit failed-check rule first when the study has attention checks and no
    failed-check rule of its own (see the module docstring), then the study's rules by
    position."""
    rules = list(study.exclusion_rules.order_by("position", "id"))
    has_checks = study.questions.filter(scope=Question.Scope.ATTENTION_CHECK).exists()
    implicit = has_checks and not any(r.kind == ExclusionRule.Kind.FAILED_CHECK for r in rules)
    if implicit:
        rules.insert(0, ExclusionRule(study=study, kind=ExclusionRule.Kind.FAILED_CHECK))
    used: set[str] = set()
    applied = []
    for index, rule in enumerate(rules):
        base = key = _base_key(rule)
        repeat = 2
        while key in used:  # unique even if a question key looks like a repeat's suffix
            key, repeat = f"{base}_{repeat}", repeat + 1
        used.add(key)
        applied.append(
            AppliedRule(
                key=key,
                label=exclusion_rule_label(rule),
                rule=rule,
                implicit=implicit and index == 0,
            )
        )
    return applied


def _judged(study: Study, participants: QuerySet[Participant] | None) -> QuerySet[Participant]:
    """The participations rules judge: completed, not a test session."""
    queryset = Participant.objects.for_study(study).real().completed()
    if participants is not None:
        queryset = queryset.filter(pk__in=participants.values("pk"))
    return queryset


def _failed_check(judged: QuerySet[Participant], study: Study) -> set[int]:
    checks = study.questions.filter(scope=Question.Scope.ATTENTION_CHECK).order_by()
    failing = Response.objects.filter(participant__in=judged).failing(checks).order_by()
    return set(failing.values_list("participant_id", flat=True).distinct())


class _SecondsBetween(Func):
    """Seconds from the second datetime to the first, in the database's own arithmetic:
    Django's portable datetime difference calls a Python function per row on SQLite,
    which costs seconds at a million trials."""

    output_field = FloatField()
    arg_joiner = " - "
    template = "EXTRACT(EPOCH FROM (%(expressions)s))::double precision"  # PostgreSQL

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, Any]:
        # julianday is exact to well under a millisecond at today's dates; rounding to
        # whole milliseconds makes 8.000 s come out as 8.000, not 7.99995.
        return self.as_sql(
            compiler,
            connection,
            template="ROUND((julianday(%(expressions)s)) * 86400000.0) / 1000.0",
            arg_joiner=") - julianday(",
            **extra_context,
        )


def _too_fast(judged: QuerySet[Participant], threshold: float) -> set[int]:
    # Summed per participant in the database: one row per participant, not per article.
    server = _SecondsBetween(F("answered_at"), F("first_shown_at"))
    by_client = Q(visible_ms__isnull=False)
    by_server = Q(visible_ms__isnull=True, first_shown_at__isnull=False, answered_at__isnull=False)
    rows = (
        Trial.objects.filter(participant__in=judged)
        .filter(by_client | by_server)
        .order_by()
        .values("participant_id")
        .annotate(
            words=Sum("article__word_count"),
            client_ms=Sum("visible_ms"),
            server_time=Sum(server, filter=by_server),
        )
        .values_list("participant_id", "words", "client_ms", "server_time")
        .iterator(chunk_size=_CHUNK)
    )
    fast = set()
    for pid, words, client_ms, server_time in rows:
        seconds = max((client_ms or 0) / 1000 + (server_time or 0.0), 0.0)
        if not words:
            continue
        # Zero time (a browser reporting 0 ms) over words read is infinitely fast.
        if seconds == 0 or words / seconds > threshold:
            fast.add(pid)
    return fast


def _rating_questions(study: Study, key: str) -> QuerySet[Question]:
    questions = study.questions.filter(scope=Question.Scope.PER_ARTICLE, kind__in=RATING_KINDS)
    return questions.filter(key=key) if key else questions


def _straight_lining(judged: QuerySet[Participant], study: Study, key: str) -> set[int]:
    rows = (
        Response.objects.filter(
            participant__in=judged,
            trial__isnull=False,
            question__in=_rating_questions(study, key),
        )
        .order_by()
        .values("participant_id", "question_id")
        .annotate(answers=Count("pk"), distinct=Count("value", distinct=True))
        .values_list("participant_id", "answers", "distinct")
        .iterator(chunk_size=_CHUNK)
    )
    # Per participant: does any question answered on two or more articles vary?
    constant: dict[int, bool] = {}
    for pid, answers, distinct in rows:
        if answers < 2:
            continue
        constant[pid] = constant.get(pid, True) and distinct == 1
    return {pid for pid, same in constant.items() if same}


def _excluded_by(rule: ExclusionRule, judged: QuerySet[Participant], study: Study) -> set[int]:
    if rule.kind == ExclusionRule.Kind.FAILED_CHECK:
        return _failed_check(judged, study)
    if rule.kind == ExclusionRule.Kind.TOO_FAST:
        if rule.threshold is None or rule.threshold <= 0:
            return set()  # refused at launch (exclusion_rule_problems); judged as no rule
        return _too_fast(judged, rule.threshold)
    if fraud.is_signal_rule(rule):
        return fraud.signal_rule_excludes(rule=rule, judged=judged)
    return _straight_lining(judged, study, rule.question_key)


def participant_exclusions(
    *, study: Study, participants: QuerySet[Participant] | None = None
) -> dict[int, AppliedRule]:
    """Participant id -> the first rule (in ``study_exclusion_rules`` order) that removes
    them, for every completed, non-test participant a rule removes; participants absent
    from the result are not excluded by any rule (or were never judged: tests,
    incomplete, screened out). ``participants`` narrows the judgement to a subset of the
    study's participations (e.g. an id range of an export). A few aggregate queries per
    rule, whatever the number of participants."""
    rules = study_exclusion_rules(study=study)
    if not rules:
        return {}
    judged = _judged(study, participants)
    excluded: dict[int, AppliedRule] = {}
    for applied in rules:
        for pid in _excluded_by(applied.rule, judged, study):
            excluded.setdefault(pid, applied)
    return excluded


def exclusions_by_condition(
    *, study: Study, participants: QuerySet[Participant] | None = None
) -> dict[int | None, Counter[str]]:
    """For the monitor: condition id (None in within-subjects designs, where participants
    have no condition of their own) -> how many completed participants each rule removed,
    by rule label. Conditions without exclusions are absent."""
    excluded = participant_exclusions(study=study, participants=participants)
    counts: dict[int | None, Counter[str]] = {}
    if not excluded:
        return counts
    rows = (
        _judged(study, participants)
        .order_by()
        .values_list("pk", "condition_id")
        .iterator(chunk_size=_CHUNK)
    )
    for pid, condition_id in rows:
        if pid in excluded:
            counts.setdefault(condition_id, Counter())[excluded[pid].label] += 1
    return counts


def _articles_per_participant(study: Study) -> int:
    return study_articles_per_participant(study=study)


# Complexity kept: one flat list of independent checks, one per rule kind, which a reader looks for
# in one place.
def exclusion_rule_problems(*, study: Study) -> list[str]:  # noqa: C901
    """Why the study's exclusion rules cannot be fixed as they are (empty when they can):
    a speed rule without a positive speed, a straight-lining rule on a question that is
    not a rating scale or slider about the articles or in a study where participants rate
    fewer than two articles, a failed-check rule without attention checks, settings a
    rule does not use, and repeated rules."""
    problems: list[str] = []
    rules: Iterable[ExclusionRule] = study.exclusion_rules.order_by("position", "id")
    seen: set[tuple[str, float | None, str]] = set()
    for number, rule in enumerate(rules, start=1):
        name = f"Exclusion rule {number} ({rule.get_kind_display()})"
        signature = (rule.kind, rule.threshold, rule.question_key)
        if signature in seen:
            problems.append(f"{name} repeats an earlier rule.")
        seen.add(signature)
        counted = rule.kind in (ExclusionRule.Kind.COPIED, ExclusionRule.Kind.PASTED)
        if counted and rule.threshold is not None:
            if rule.threshold < 1 or rule.threshold != int(rule.threshold):
                problems.append(
                    f"{name}: the threshold is a number of times, a whole number from 1 "
                    "(empty for once)."
                )
        elif rule.kind != ExclusionRule.Kind.TOO_FAST and rule.threshold is not None:
            problems.append(
                f"{name}: a threshold is used by the reading-speed, copied and pasted rules only."
            )
        if rule.kind != ExclusionRule.Kind.STRAIGHT_LINING and rule.question_key:
            problems.append(f"{name}: a question key is used by the straight-lining rule only.")
        if rule.kind == ExclusionRule.Kind.FAILED_CHECK:
            if not study.questions.filter(scope=Question.Scope.ATTENTION_CHECK).exists():
                problems.append(f"{name}: the study has no attention check.")
        elif rule.kind == ExclusionRule.Kind.TOO_FAST:
            if rule.threshold is None or rule.threshold <= 0:
                problems.append(
                    f"{name}: set the reading speed, in words per second, above which a "
                    "participant is excluded (e.g. 15; people read about 4)."
                )
        elif rule.kind == ExclusionRule.Kind.STRAIGHT_LINING:
            if not _rating_questions(study, rule.question_key).exists():
                problems.append(
                    f'{name}: "{rule.question_key}" is not a rating-scale or slider question '
                    "about the articles."
                    if rule.question_key
                    else f"{name}: the study has no rating-scale or slider question about "
                    "the articles."
                )
            if _articles_per_participant(study) < 2:
                problems.append(
                    f"{name}: each participant rates fewer than two articles, so there are "
                    "no answers to compare across articles."
                )
    return problems
